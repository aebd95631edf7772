"""Teams benchmark: `/tokens team` and the chargeback export on a large ledger, beside the same
figures computed from the raw events, in one process and one run.

    .venv/bin/python bench/bench_teams.py [--events 1000000] [--people 5000] [--teams 200] [--calls 300]
        [--raw-calls 10] [--database-url postgresql+asyncpg://...]

- fills a fresh database directly: --events events over --people people in --teams teams (25 a
  team by default) and the 45 local days up to "now" (this month and the last), each event
  charged to its person's team as ingest would (5% name another team in their `team` field, 2%
  are unlinked ids in no team); then storage.rewrites.rebuild_rollups builds every rollup,
  the team rollups included;
- `/tokens team`: bot.teams.builder.team_card (the whole view model: totals, members ranked,
  models, 6-month trend, pending requests, raises) + its Block Kit, --calls times for random
  teams; median, p99, min, max, and CPU per card;
- the same card's figures from the raw events (members, models, totals, trend: GROUP BYs over
  usage_events filtered by charge_team), --raw-calls times;
- the export of this month by team / person / model / project from the rollup (bot.teams.export)
  vs a GROUP BY over the month's raw events; each checked to give the same total.
SQLite by default (a temporary file); --database-url for PostgreSQL (the database is emptied).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import ledger_data  # noqa: E402
from sqlalchemy import text  # noqa: E402

from bot.clock import Clock  # noqa: E402
from bot.config import Settings  # noqa: E402
from bot.teams.builder import months_back, team_card  # noqa: E402
from bot.teams.config import TeamConfig  # noqa: E402
from bot.teams.export import export_rows  # noqa: E402
from bot.views.team_card import team_card_blocks, team_card_fallback  # noqa: E402
from bot.wiring import build_services  # noqa: E402
from storage.db import upgrade  # noqa: E402
from storage.types import money_from_db  # noqa: E402
from storage.usage import EVENT_COLUMNS, RowEncoder  # noqa: E402

TZ = ZoneInfo("America/New_York")
MODELS = ledger_data.MODELS


def teams_of(people: int, teams: int) -> tuple[list[str], dict[str, TeamConfig], dict[str, str]]:
    ids = [f"U0B{i:05d}" for i in range(people)]
    team_of = {u: f"team{i % teams:03d}" for i, u in enumerate(ids)}
    configs = {}
    for t in range(teams):
        name = f"team{t:03d}"
        members = tuple(u for u in ids[t::teams])
        configs[name] = TeamConfig(name, members=members, lead=members[0], monthly_usd=Decimal(5000),
                                   aliases=(f"proj_{t:03d}",))
    return ids, configs, team_of


def values(count: int, ids: list[str], team_of: dict[str, str], teams: int, now: datetime, rng: random.Random):
    """Full `RowEncoder.row` values (cache_hit, charge_team) in EVENT_COLUMNS order."""
    weights = [rng.lognormvariate(0, 1.2) for _ in ids]
    chosen = rng.choices(ids, weights=weights, k=count)
    span = 45 * 86400
    for i, user in enumerate(chosen):
        at = now - timedelta(seconds=rng.randrange(span))
        model, provider = MODELS[i % len(MODELS)]
        roll = rng.random()
        raw_team, charged, key = None, team_of[user], user
        if roll < 0.05:
            t = rng.randrange(teams)
            raw_team, charged = f"proj_{t:03d}", f"team{t:03d}"
        elif roll < 0.07:
            key, charged = f"key_live_{i % 997}", ""
        input_tokens = rng.randrange(50, 40_000)
        output_tokens = rng.randrange(10, 4_000)
        cost = Decimal(rng.randrange(1, 50_000_000)) / Decimal(10**9)
        yield (f"ev-{i}", at, at.astimezone(TZ).date(), now, "native", key, key, model, provider, raw_team,
               f"proj-{i % 7}" if i % 3 else None, input_tokens, input_tokens // 4, output_tokens, 0, cost, "source",
               False, None, False, charged)


async def load_postgres(dsn: str, rows) -> int:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    months: set[date] = set()
    count = 0
    batch: list = []

    async def flush() -> None:
        for first in sorted({v[2].replace(day=1) for v in batch} - months):
            upto = (first + timedelta(days=32)).replace(day=1)
            await conn.execute(f"CREATE TABLE IF NOT EXISTS usage_events_{first:%Y_%m} PARTITION OF usage_events "
                               f"FOR VALUES FROM ('{first}') TO ('{upto}')")
            months.add(first)
        await conn.copy_records_to_table("usage_events", records=batch, columns=EVENT_COLUMNS)
        await conn.copy_records_to_table("usage_event_ids", records=[(v[0],) for v in batch], columns=["event_id"])
        batch.clear()

    try:
        for v in rows:
            count += 1
            batch.append((*v[:15], v[15].quantize(Decimal("1e-12")), *v[16:]))
            if len(batch) == 100_000:
                await flush()
        if batch:
            await flush()
        await conn.execute("ANALYZE usage_events")
    finally:
        await conn.close()
    return count


def load_sqlite(path: Path, rows) -> int:
    from storage.db import connect_sqlite

    encoder = RowEncoder("sqlite")
    conn = connect_sqlite(str(path))
    conn.execute("PRAGMA synchronous=OFF")
    sql = (f"INSERT INTO usage_events (seq, {', '.join(EVENT_COLUMNS)}) "
           f"VALUES ({', '.join('?' for _ in range(len(EVENT_COLUMNS) + 1))})")
    batch, count = [], 0
    conn.execute("BEGIN")
    for v in rows:
        count += 1
        batch.append((count, *encoder.row(*v[:3], encoder.time(v[3]), *v[4:])))
        if len(batch) == 50_000:
            conn.executemany(sql, batch)
            batch.clear()
    if batch:
        conn.executemany(sql, batch)
    conn.execute("UPDATE rollup_fold_state SET folded_seq = ?", (count,))
    conn.execute("COMMIT")
    conn.close()
    return count


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def timed(fn, n: int) -> tuple[list[float], float]:
    out = []
    start = cpu()
    for _ in range(n):
        t0 = time.perf_counter()
        await fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out, (cpu() - start) * 1000 / n


def stats(ms: list[float]) -> str:
    ms = sorted(ms)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return f"median {statistics.median(ms):8.2f} ms  p99 {p99:8.2f}  min {ms[0]:8.2f}  max {ms[-1]:8.2f}"


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--people", type=int, default=5000)
    parser.add_argument("--teams", type=int, default=200)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--raw-calls", type=int, default=10)
    parser.add_argument("--exports", type=int, default=5)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    rng = random.Random(12)
    now = datetime.now(UTC)
    ids, configs, team_of = teams_of(args.people, args.teams)
    tmp = None
    if args.database_url:
        url = args.database_url
        from sqlalchemy.ext.asyncio import create_async_engine
        engine = create_async_engine(url)
        async with engine.begin() as conn:
            await conn.execute(text("DROP SCHEMA public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
        await engine.dispose()
    else:
        tmp = Path(tempfile.mkdtemp(prefix="bench-teams-"))
        url = f"sqlite+aiosqlite:///{tmp}/bench.db"
    await asyncio.to_thread(upgrade, url)
    t0 = time.perf_counter()
    rows = values(args.events, ids, team_of, args.teams, now, rng)
    if url.startswith("sqlite"):
        loaded = await asyncio.to_thread(load_sqlite, tmp / "bench.db", rows)
    else:
        from storage.db import Database
        loaded = await load_postgres(Database(url).asyncpg_dsn, rows)
    t1 = time.perf_counter()
    await ledger_data.rebuild(url)
    t2 = time.perf_counter()
    print(f"loaded {loaded:,} events in {t1 - t0:.0f}s; rollups rebuilt (team rollups included) in {t2 - t1:.0f}s "
          f"({'SQLite' if url.startswith('sqlite') else 'PostgreSQL'}, {args.people:,} people, {args.teams} teams)")

    settings = Settings(database_url=url, timezone=TZ, teams=configs)
    services = build_services(settings, with_slack=False, clock=Clock(TZ))
    sqlite = url.startswith("sqlite")
    try:
        today = services.clock.today()
        month = f"{today:%Y-%m}"
        first = today.replace(day=1)
        names = list(configs)
        async with services.db.session() as session:
            rolled = (await session.execute(text("SELECT COUNT(*) FROM usage_team_monthly"))).scalar()
            daily = (await session.execute(text("SELECT COUNT(*) FROM usage_team_daily"))).scalar()
        print(f"usage_team_monthly rows: {rolled:,}; usage_team_daily rows: {daily:,}")

        async def card() -> None:
            team = rng.choice(names)
            view = await team_card(services, configs[team].lead, team)
            team_card_blocks(view)
            team_card_fallback(view)

        months = months_back(today, 6)
        m6 = date.fromisoformat(months[0] + "-01")
        mcol = "substr(day, 1, 7)" if sqlite else "to_char(day, 'YYYY-MM')"

        async def raw_card() -> None:
            team = rng.choice(names)
            params = {"t": team, "a": first, "b": today, "m": m6}
            if sqlite:
                params = {k: (v.isoformat() if isinstance(v, date) else v) for k, v in params.items()}
            async with services.db.session() as session:
                for sql in (
                    "SELECT user_key, SUM(cost_usd), SUM(input_tokens + output_tokens) FROM usage_events "
                    "WHERE charge_team = :t AND day >= :a AND day <= :b GROUP BY user_key",
                    "SELECT model, SUM(cost_usd) FROM usage_events WHERE charge_team = :t AND day >= :a AND day <= :b "
                    "GROUP BY model",
                    f"SELECT {mcol}, SUM(cost_usd) FROM usage_events WHERE charge_team = :t AND day >= :m "
                    f"GROUP BY {mcol}",
                ):
                    (await session.execute(text(sql), params)).all()

        await card()  # warm
        ms, cpu_ms = await timed(card, args.calls)
        print(f"/tokens team (rollup)   x{args.calls:<5} {stats(ms)}  CPU {cpu_ms:.2f} ms/card")
        raw_ms, raw_cpu = await timed(raw_card, args.raw_calls)
        print(f"/tokens team (raw)      x{args.raw_calls:<5} {stats(raw_ms)}  CPU {raw_cpu:.2f} ms/card  "
              f"(raw / rollup at the median: {statistics.median(raw_ms) / statistics.median(ms):.0f}x)")

        for by in ("team", "person", "model", "project"):
            got = {}

            async def export(by=by, got=got) -> None:
                got["rows"] = await export_rows(services.db, month, by)

            ms, cpu_ms = await timed(export, args.exports)
            col = {"team": "charge_team", "person": "user_key", "model": "model",
                   "project": "COALESCE(project, '')"}[by]
            cost = "wide_sum(cost_usd)" if sqlite else "SUM(cost_usd)"

            async def raw_export(col=col, cost=cost, got=got) -> None:
                params = {"a": first.isoformat() if sqlite else first, "b": today.isoformat() if sqlite else today}
                async with services.db.session() as session:
                    got["raw"] = (await session.execute(text(
                        f"SELECT {col}, {cost}, SUM(input_tokens), SUM(output_tokens), COUNT(*) FROM usage_events "
                        f"WHERE day >= :a AND day <= :b GROUP BY {col}"), params)).all()

            raw_ms, raw_cpu = await timed(raw_export, max(1, args.exports // 2))
            total = sum((Decimal(r["spend_usd"]) for r in got["rows"]), Decimal(0))
            raw_total = sum((money_from_db(r[1], "sqlite") if sqlite else Decimal(r[1]) for r in got["raw"]),
                            Decimal(0))
            assert total == raw_total, (by, total, raw_total)
            print(f"export --by {by:<8} rows {len(got['rows']):>6,}  rollup {stats(ms)}  CPU {cpu_ms:.0f} ms | "
                  f"raw median {statistics.median(raw_ms):9.1f} ms  CPU {raw_cpu:.0f} ms  (same total "
                  f"${total:,.2f})")
    finally:
        await services.close()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
