"""The `tokenbot` console script (SPEC 2), run as real subprocesses against real databases."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, inspect, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from bot.clock import month_key
from storage.db import Database, upgrade
from storage.models import Base, UsageDaily, UsageDailyModel, UsageEvent, UsageMonthly
from tests.conftest import IS_POSTGRES
from tests.fakes.blockkit import validate_blocks, validate_view

SCRIPT = Path(sys.executable).with_name("tokenbot")
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "bot.cli"]
SCRUBBED = ("SLACK_", "TOKENBOT_", "DATABASE_URL", "USAGE_WEBHOOK_", "LIMITS_WEBHOOK_", "OPENAI_", "PORT", "HOST")
BACKENDS = ["sqlite", "postgresql"] if IS_POSTGRES else ["sqlite"]


def clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without any tokenbot setting, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED)}
    env.update(extra)
    return env


def tokenbot(*args: str, cwd: Path, timeout: float = 60, prefix: tuple[str, ...] = (), **env: str):
    return subprocess.run([*prefix, *COMMAND, *args], cwd=cwd, env=clean_env(**env), capture_output=True,
                          text=True, timeout=timeout)


def one_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def run_db(url: str, work):
    async def go():
        db = Database(url)
        try:
            async with db.session() as session:
                return await work(session)
        finally:
            await db.dispose()

    return asyncio.run(go())


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path) -> str:
    """A fresh SQLite file (not migrated), or the migrated, emptied PostgreSQL test database."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/cli.db"
    return request.getfixturevalue("database_url")


def ts(days_ago: float = 1) -> str:
    return (datetime.now(UTC) - timedelta(days=days_ago)).replace(microsecond=0).isoformat()


def line(event_id: str, **fields) -> str:
    base = {"id": event_id, "timestamp": ts(), "user": "U0ALICE", "model": "gpt-4o",
            "input_tokens": 1000, "output_tokens": 100}
    base.update(fields)
    return json.dumps(base)


# --- db upgrade -----------------------------------------------------------------------------------------------


def test_db_upgrade_creates_the_tables(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path}/sub/dir/fresh.db"
    result = tokenbot("db", "upgrade", cwd=tmp_path, DATABASE_URL=url)
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout
    assert result.stderr == ""

    async def tables(session):
        return await session.run_sync(lambda s: set(inspect(s.connection()).get_table_names()))

    assert set(Base.metadata.tables) | {"alembic_version"} <= run_db(url, tables)


@pytest.mark.skipif(not IS_POSTGRES, reason="PostgreSQL only")
def test_db_upgrade_on_an_empty_postgresql_schema(database_url, tmp_path):
    async def reset():
        engine = create_async_engine(database_url)
        async with engine.begin() as conn:
            await conn.execute(text("DROP SCHEMA public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
        await engine.dispose()

    asyncio.run(reset())
    try:
        # a plain postgres:// URL, as hosting platforms hand out, is accepted
        plain = database_url.replace("postgresql+asyncpg://", "postgres://")
        result = tokenbot("db", "upgrade", cwd=tmp_path, DATABASE_URL=plain)
        assert result.returncode == 0, result.stderr

        async def tables(session):
            return await session.run_sync(lambda s: set(inspect(s.connection()).get_table_names()))

        assert set(Base.metadata.tables) <= run_db(database_url, tables)
    finally:
        upgrade(database_url)  # leave the shared test database migrated whatever happened


# --- import ---------------------------------------------------------------------------------------------------


def write_import_file(path: Path) -> Path:
    path.write_text("\n".join([
        line("imp-a"),
        "",
        line("imp-a"),                                   # 3: duplicate of line 1
        line("imp-b", input_tokens=-1),                  # 4: invalid
        "{not json",                                     # 5: not JSON
        line("imp-c", model="acme-x", user="U0BOB"),     # 6: unknown model: stored unpriced
        line("imp-d", cost_usd="0.25"),                  # 7: priced by the source
    ]) + "\n")
    return path


async def event_summary(session):
    events = {e.event_id: e for e in await session.scalars(select(UsageEvent))}
    monthly = {(m.user_key, m.events, m.cost_usd) for m in await session.scalars(select(UsageMonthly))}
    return events, monthly


def test_import_stores_valid_lines_once_and_names_bad_ones(db_url, tmp_path):
    path = write_import_file(tmp_path / "usage.jsonl")
    first = tokenbot("import", str(path), cwd=tmp_path, DATABASE_URL=db_url)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "imported 3 events, 1 duplicates skipped, 2 rejected"
    bad = first.stderr.splitlines()
    assert len(bad) == 2, first.stderr
    assert bad[0].startswith(f"{path}:4: input_tokens")
    assert bad[1].startswith(f"{path}:5: not valid JSON")

    events, monthly = run_db(db_url, event_summary)
    assert sorted(events) == ["imp-a", "imp-c", "imp-d"]
    assert events["imp-d"].cost_usd == Decimal("0.25") and events["imp-d"].price_source == "source"
    assert events["imp-c"].unpriced is True
    assert events["imp-a"].source == "import"
    alice_cost = events["imp-a"].cost_usd + Decimal("0.25")
    assert monthly == {("U0ALICE", 2, alice_cost), ("U0BOB", 1, Decimal(0))}

    second = tokenbot("import", str(path), cwd=tmp_path, DATABASE_URL=db_url)
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == "imported 0 events, 4 duplicates skipped, 2 rejected"
    events_after, monthly_after = run_db(db_url, event_summary)
    assert sorted(events_after) == ["imp-a", "imp-c", "imp-d"]
    assert monthly_after == monthly


def test_import_of_nothing_valid_fails(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text("nope\n" + line("x", model="") + "\n")
    result = tokenbot("import", str(path), cwd=tmp_path, DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/t.db")
    assert result.returncode != 0
    assert "imported 0 events, 0 duplicates skipped, 2 rejected" in result.stdout
    assert [x.split(": ")[0] for x in result.stderr.splitlines()] == [f"{path}:1", f"{path}:2"]


def test_import_of_a_missing_file_is_one_line(tmp_path):
    result = tokenbot("import", str(tmp_path / "missing.jsonl"), cwd=tmp_path,
                      DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/t.db")
    assert result.returncode == 2
    assert "missing.jsonl" in one_line(result.stderr)


# --- reprice --------------------------------------------------------------------------------------------------


def seed(url: str, events: list[dict]) -> None:
    """Store events the way the webhook does, in this process (faster than another subprocess)."""
    from bot.config import Settings
    from bot.wiring import build_services

    if url.startswith("sqlite"):
        upgrade(url)

    async def go():
        services = build_services(Settings(database_url=url), with_slack=False)
        try:
            result = await services.ingestor.ingest(events, source="import")
        finally:
            await services.close()
        assert (result.accepted, result.rejected) == (len(events), [])

    asyncio.run(go())


def test_reprice_prices_formerly_unknown_model_and_its_rollups(db_url, tmp_path):
    seed(db_url, [json.loads(x) for x in (
        line("rp-1", model="acme-x", input_tokens=1_000_000, cached_input_tokens=400_000, output_tokens=100_000),
        line("rp-2", model="ACME-X", input_tokens=10, output_tokens=3, timestamp=ts(2)),
        line("rp-3", model="gpt-4o", input_tokens=1_000, output_tokens=100),
    )])

    async def unpriced(session):
        return await session.scalar(select(func.sum(UsageMonthly.unpriced_events)))

    assert run_db(db_url, unpriced) == 2
    config = tmp_path / "prices.toml"
    config.write_text('[pricing.models."acme-x"]\ninput = 2.5\ncached_input = 0.5\noutput = 10\n')
    result = tokenbot("reprice", cwd=tmp_path, DATABASE_URL=db_url, TOKENBOT_CONFIG=str(config))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "examined 2 events, changed 2, 0 still without a price"

    async def after(session):
        events = {e.event_id: e for e in await session.scalars(select(UsageEvent))}
        monthly = list(await session.scalars(select(UsageMonthly)))
        daily = await session.scalar(select(func.sum(UsageDaily.cost_usd)))
        by_model = dict((await session.execute(
            select(UsageDailyModel.model, func.sum(UsageDailyModel.cost_usd)).group_by(UsageDailyModel.model)
        )).all())
        return events, monthly, daily, by_model

    events, monthly, daily, by_model = run_db(db_url, after)
    one = Decimal("1.5") + Decimal("0.2") + Decimal("1.0")  # 600k * 2.5 + 400k * 0.5 + 100k * 10 per million
    two = (Decimal(10) * Decimal("2.5") + Decimal(3) * 10) / 10**6
    assert (events["rp-1"].cost_usd, events["rp-1"].price_source, events["rp-1"].unpriced) == (one, "override", False)
    assert (events["rp-2"].cost_usd, events["rp-2"].price_source) == (two, "override")
    gpt = events["rp-3"].cost_usd
    assert events["rp-3"].price_source.startswith("genai-prices ") and gpt > 0
    assert sum(m.cost_usd for m in monthly) == one + two + gpt
    assert sum(m.unpriced_events for m in monthly) == 0
    assert sum(m.events for m in monthly) == 3
    assert daily == one + two + gpt
    assert by_model["acme-x"] + by_model.get("ACME-X", Decimal(0)) == one + two


# --- bad configuration: exit 2, one line naming the key ------------------------------------------------------


@pytest.mark.parametrize(("args", "env", "key"), [
    (("db", "upgrade"), {"DATABASE_URL": "mysql://root:pw@localhost/tokenbot"}, "DATABASE_URL"),
    (("db", "upgrade"), {"DATABASE_URL": "postgresql://postgres:hunter2@127.0.0.1:1/x"}, "DATABASE_URL"),
    (("import", "usage.jsonl"), {"DATABASE_URL": "postgresql://postgres@127.0.0.1:1/x"}, "DATABASE_URL"),
    (("reprice",), {"TOKENBOT_CONFIG": "bad.toml"}, "bad.toml"),
    (("db", "upgrade"), {"TOKENBOT_CONFIG": "missing.toml"}, "TOKENBOT_CONFIG"),
    (("serve",), {}, "SLACK_BOT_TOKEN"),
    (("serve",), {"SLACK_BOT_TOKEN": "xoxb-1"}, "SLACK_SIGNING_SECRET"),
    (("serve",), {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s", "PORT": "99999"}, "PORT"),
    (("db", "upgrade"), {"USAGE_WEBHOOK_SECRET": "secret"}, "USAGE_WEBHOOK_SECRET"),
])
def test_bad_configuration_exits_2_with_one_line(tmp_path, args, env, key):
    (tmp_path / "bad.toml").write_text("timezone = \n")
    (tmp_path / "usage.jsonl").write_text(line("x") + "\n")
    env.setdefault("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/t.db")
    started = time.monotonic()
    result = tokenbot(*args, cwd=tmp_path, timeout=30, **env)
    assert result.returncode == 2, (result.stdout, result.stderr)
    message = one_line(result.stderr)
    assert message.startswith(f"tokenbot: {key}"), message
    assert "hunter2" not in message
    assert result.stdout == ""
    assert time.monotonic() - started < 20


# --- demo -----------------------------------------------------------------------------------------------------


def _no_network_prefix() -> tuple[str, ...]:
    """Run inside a fresh network namespace (loopback only) when the machine allows it."""
    if not (shutil.which("unshare") and shutil.which("ip")):
        return ()
    probe = subprocess.run(["unshare", "-n", "ip", "link", "set", "lo", "up"], capture_output=True)
    if probe.returncode != 0:
        return ()
    return ("unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh")


SURFACES = (
    "card", "card-over-budget", "card-no-usage", "leaderboard", "budget", "help", "digest-daily", "digest-weekly",
    "alert-99", "alert-108", "alert-forecast", "alert-approver", "approval-pending", "approval-approved",
    "approval-denied", "approval-expired", "approval-reminder", "requester-submitted", "requester-approved",
    "requester-denied", "requester-expired", "modal-request", "modal-approve-amount", "modal-deny", "home-approver",
    "home-first-run", "home-admin", "audit", "admin-set-budget", "admin-link", "admin-digest-failed",
    "digest-daily-thread", "digest-weekly-thread",
    "team-card", "team-admin", "team-digest", "modal-team-raise", "teams-section", "team-request-pending",
    "team-request-approved",
)


def check_shots(shots: Path) -> None:
    """`--shots` wrote every surface, each one Slack would accept (the strict fake's checks), and the charts."""
    names = json.loads((shots / "names.json").read_text())
    assert all(key[0] in "UC" for key in names)
    for surface in SURFACES:
        payload = json.loads((shots / f"{surface}.json").read_text())
        if payload.get("type") in ("modal", "home"):
            assert validate_view(payload) == [], surface
        else:
            assert payload["text"], surface
            assert validate_blocks(payload["blocks"], surface="message") == [], surface
    for chart in ("chart-daily.png", "chart-weekly.png"):
        assert (shots / chart).read_bytes().startswith(b"\x89PNG"), chart
    texts = (shots / "texts.txt").read_text()
    assert all(f"{surface}: " in texts for surface in SURFACES)


def test_demo_needs_no_slack_and_no_network(tmp_path):
    database = tmp_path / "demo.db"
    shots = tmp_path / "shots"
    result = tokenbot("demo", "--database", str(database), "--shots", str(shots), cwd=tmp_path, timeout=90,
                      prefix=_no_network_prefix())
    assert result.returncode == 0, result.stderr
    for heading in ("Top 10 by cost", "Unlinked spend", "Models without a price", "Teams\n",
                    "/tokens team (as the lead", "approves with the same buttons as a personal request (approved)"):
        assert heading in result.stdout
    # SPEC 11, 12: the approval raises the demo proxy's budget; a runaway loop trips, Pause is refused, Resume answers
    for step in ("tokenbot pushes it to the proxy: POST /user/update", "the breaker trips", "presses Pause",
                 "The agent's next call: HTTP 401", "reason \"paused\"",
                 "The agent's next call: HTTP 200"):
        assert step in result.stdout
    assert {"breaker-trip-alert.json", "breaker-trip-paused.json", "admin-breaker.json",
            "admin-status.json"} <= {p.name for p in shots.iterdir()}
    check_shots(shots)
    url = f"sqlite+aiosqlite:///{database}"

    async def shape(session):
        return {
            "people": await session.scalar(text("SELECT COUNT(*) FROM people")),
            "days": await session.scalar(select(func.count(func.distinct(UsageEvent.day)))),
            "models": await session.scalar(select(func.count(func.distinct(UsageEvent.model)))),
            "teams": await session.scalar(select(func.count(func.distinct(UsageEvent.team)))),
            "users": await session.scalar(select(func.count(func.distinct(UsageEvent.user_key)))),
            "unpriced": await session.scalar(select(func.count()).where(UsageEvent.unpriced.is_(True))),
            "this_month": await session.scalar(
                select(func.count()).select_from(UsageMonthly).where(UsageMonthly.month == month_key(
                    datetime.now(UTC).date()))
            ),
        }

    got = run_db(url, shape)
    assert got["people"] >= 20, got
    assert got["days"] >= 25, got
    assert got["models"] >= 5, got
    assert got["teams"] >= 4, got
    assert got["users"] >= 20, got
    assert got["unpriced"] > 0, got


# --- serve ----------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_answers_health_and_stops_on_sigterm(tmp_path):
    port = free_port()
    url = f"sqlite+aiosqlite:///{tmp_path}/serve.db"
    env = clean_env(DATABASE_URL=url, SLACK_BOT_TOKEN="xoxb-test", SLACK_SIGNING_SECRET="secret",
                    SLACK_API_URL="http://127.0.0.1:9/api/", HOST="127.0.0.1", PORT=str(port))
    process = subprocess.Popen([*COMMAND, "serve"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        answer = None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and process.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
                    answer = (resp.status, json.loads(resp.read()))
                    break
            except OSError:
                time.sleep(0.1)
        assert answer == (200, {"status": "ok"}), process.poll()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0
    finally:
        if process.poll() is None:
            process.kill()
        _out, err = process.communicate(timeout=5)
    assert "Traceback" not in err, err

    async def tables(session):  # serve applied the migrations on start
        return await session.run_sync(lambda s: set(inspect(s.connection()).get_table_names()))

    assert set(Base.metadata.tables) <= run_db(url, tables)
