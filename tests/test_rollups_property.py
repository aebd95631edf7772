"""Rollups are exactly the raw events, grouped: property tests over random event sets.

The three rollup tables (person x local day x model, person x local day, person x local
month) are kept up to date incrementally in the ingest transaction. Whatever the events
(emails, external ids, unknown models, timestamps either side of local midnight and across
DST changes in America/New_York, duplicates and resends), they must equal a plain GROUP BY
over `usage_events`, the days must be the local days of the timestamps, and
`rebuild_rollups` must give the very same tables.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text

from bot.clock import SettableClock
from bot.config import ModelPrice, Settings
from bot.maintenance import ensure_rollup_timezone, reprice
from bot.services import Services
from bot.teams.config import TeamConfig
from bot.wiring import build_services
from storage.db import Database
from storage.models import UsageEvent
from storage.rewrites import rebuild_rollups
from storage.types import money_from_db, quantize_money, wide_decode

MEASURES = ("input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens", "cost_usd", "events",
            "unpriced_events")
ROLLUP_KEYS = {
    "usage_daily_model": ("user_key", "day", "model"),
    "usage_daily": ("user_key", "day"),
    "usage_monthly": ("user_key", "month"),
}
# exact on both: SQLite sums wide values with the registered wide_sum (a plain SUM overflows at 2^63)
_RAW_SUMS = (
    "{s}(input_tokens), {s}(cached_input_tokens), {s}(output_tokens), {s}(reasoning_tokens), {s}(cost_usd), "
    "COUNT(*), SUM(CASE WHEN unpriced THEN 1 ELSE 0 END)"
)


def _norm(row: tuple, n_keys: int, dialect: str) -> tuple[tuple, tuple]:
    keys = tuple(str(k) for k in row[:n_keys])
    m = row[n_keys:]
    count = (lambda v: wide_decode(v)) if dialect == "sqlite" else (lambda v: int(v))
    values = (count(m[0]), count(m[1]), count(m[2]), count(m[3]), money_from_db(m[4], dialect), int(m[5]),
              int(m[6]))
    return keys, values


async def rollup_tables(db: Database) -> dict[str, dict[tuple, tuple]]:
    """The three rollup tables as {table: {key: (input, cached, output, reasoning, cost, events, unpriced)}}."""
    out: dict[str, dict[tuple, tuple]] = {}
    async with db.session() as session:
        for table, keys in ROLLUP_KEYS.items():
            rows = (await session.execute(text(f"SELECT {', '.join(keys + MEASURES)} FROM {table}"))).all()
            out[table] = dict(_norm(tuple(r), len(keys), db.dialect) for r in rows)
    return out


async def raw_aggregates(db: Database) -> dict[str, dict[tuple, tuple]]:
    """The same shape, computed with plain GROUP BYs over usage_events."""
    month = "substr(day, 1, 7)" if db.dialect == "sqlite" else "to_char(day, 'YYYY-MM')"
    groupings = {
        "usage_daily_model": "user_key, day, model",
        "usage_daily": "user_key, day",
        "usage_monthly": f"user_key, {month}",
    }
    out: dict[str, dict[tuple, tuple]] = {}
    async with db.session() as session:
        for table, group in groupings.items():
            sums = _RAW_SUMS.format(s="wide_sum" if db.dialect == "sqlite" else "SUM")
            query = f"SELECT {group}, {sums} FROM usage_events GROUP BY {group}"
            rows = (await session.execute(text(query))).all()
            out[table] = dict(_norm(tuple(r), len(ROLLUP_KEYS[table]), db.dialect) for r in rows)
    return out


async def assert_rollups_match_raw(db: Database) -> dict[str, dict[tuple, tuple]]:
    """Assert every rollup table equals the GROUP BY of the raw events; return the tables."""
    rollups, raw = await rollup_tables(db), await raw_aggregates(db)
    for table in ROLLUP_KEYS:
        assert rollups[table] == raw[table], f"{table} differs from the raw events"
    await assert_team_rollup_matches_raw(db)
    return rollups


TEAM_KEYS = ("month", "team", "user_key", "model", "project")


async def assert_team_rollup_matches_raw(db: Database) -> dict[tuple, tuple]:
    """The chargeback rollup (month, team, person, model, project) equals the GROUP BY of the events,
    each event counted under the team it was charged to when stored."""
    month = "substr(day, 1, 7)" if db.dialect == "sqlite" else "to_char(day, 'YYYY-MM')"
    group = f"{month}, charge_team, user_key, model, COALESCE(project, '')"
    sums = _RAW_SUMS.format(s="wide_sum" if db.dialect == "sqlite" else "SUM")
    async with db.session() as session:
        rolled = (await session.execute(text(
            f"SELECT {', '.join(TEAM_KEYS + MEASURES)} FROM usage_team_monthly"))).all()
        raw = (await session.execute(text(f"SELECT {group}, {sums} FROM usage_events GROUP BY {group}"))).all()
        daily = (await session.execute(text(f"SELECT day, team, {', '.join(MEASURES)} FROM usage_team_daily"))).all()
        raw_daily = (await session.execute(text(
            f"SELECT day, charge_team, {sums} FROM usage_events GROUP BY day, charge_team"))).all()
    got = dict(_norm(tuple(r), 5, db.dialect) for r in rolled)
    want = dict(_norm(tuple(r), 5, db.dialect) for r in raw)
    assert got == want, "usage_team_monthly differs from the raw events"
    assert dict(_norm(tuple(r), 2, db.dialect) for r in daily) == dict(
        _norm(tuple(r), 2, db.dialect) for r in raw_daily), "usage_team_daily differs from the raw events"
    return got


def cost_total(tables: dict[str, dict[tuple, tuple]], table: str = "usage_monthly", **where: Any) -> Decimal:
    keys = ROLLUP_KEYS[table]
    total = Decimal(0)
    for key, values in tables[table].items():
        if all(key[keys.index(k)] == v for k, v in where.items()):
            total += values[4]
    return total


# =========================================================================== the properties

NY = ZoneInfo("America/New_York")
FIXED_NOW = datetime(2026, 11, 26, 18, 0, tzinfo=UTC)
USERS = ("U0ALICE", "U0BOB", "W0CAROL", "alice@acme.test", "dave@acme.test", "key_live_abc", "key_live_xyz",
         "litellm-team-key")
IDENTITIES = {"key_live_abc": "U0ALICE"}
UNKNOWN_MODEL = "acme-unknown-9000"
MODELS = ("gpt-4o", "gpt-4o-mini", "gemini-2.5-pro", "o3-mini", UNKNOWN_MODEL)
# local dates around which timestamps are drawn: both 2026 DST changes, a year and a month boundary
DATES = (date(2026, 3, 8), date(2026, 11, 1), date(2026, 1, 1), date(2026, 4, 1), date(2026, 6, 30))
OFFSETS = (UTC, timezone(timedelta(hours=-8)), timezone(timedelta(hours=5, minutes=30)), NY)
USAGE_TABLES = ("usage_events", "usage_event_ids", "usage_fold_queue", "usage_daily_model", "usage_daily",
                "usage_monthly", "identities", "settings", "usage_team_monthly", "team_fold_queue", "usage_team_daily")
PROPERTY = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@st.composite
def instants(draw) -> datetime:
    day = draw(st.sampled_from(DATES))
    midnight = datetime.combine(day, time(0), NY).astimezone(UTC)
    if day.month in (3, 11) and draw(st.booleans()):  # around the 2 a.m. change itself
        midnight = datetime.combine(day, time(2), NY).astimezone(UTC)
    seconds = draw(st.one_of(st.integers(-90, 90), st.integers(-30 * 3600, 30 * 3600)))
    micro = draw(st.sampled_from((0, 1, 999_999, 500_000)))
    return midnight + timedelta(seconds=seconds, microseconds=micro)


@st.composite
def raw_events(draw, id_pool: int = 30) -> dict:
    moment = draw(instants())
    form = draw(st.sampled_from(("z", "offset", "unix")))
    if form == "unix":
        moment = moment.replace(microsecond=0)
        stamp: Any = int(moment.timestamp())
    elif form == "z":
        stamp = moment.isoformat().replace("+00:00", "Z")
    else:
        stamp = moment.astimezone(draw(st.sampled_from(OFFSETS))).isoformat()
    input_tokens = draw(st.one_of(st.integers(0, 5000), st.integers(0, 3_000_000)))
    output_tokens = draw(st.integers(0, 200_000))
    ev = {
        "id": f"e{draw(st.integers(0, id_pool - 1))}",
        "timestamp": stamp,
        "user": draw(st.sampled_from(USERS)),
        "model": draw(st.sampled_from(MODELS)),
        "input_tokens": input_tokens,
        "cached_input_tokens": draw(st.integers(0, input_tokens)),
        "output_tokens": output_tokens,
        "reasoning_tokens": draw(st.integers(0, output_tokens)),
    }
    team = draw(st.sampled_from((None, None, "proj_a", "litellm-team-b", "unknown-team")))
    if team is not None:  # an event's team field: mapped through [teams] when it names one
        ev["team"] = team
    if draw(st.booleans()):
        ev["project"] = draw(st.sampled_from(("search", "evals")))
    if draw(st.booleans()):
        cost = draw(st.one_of(
            st.decimals(min_value=0, max_value=500, places=12),
            st.decimals(min_value=0, max_value=1, places=14),  # finer than a picodollar: rounded once
            st.integers(0, 3),
        ))
        ev["cost_usd"] = str(cost)
    return ev


@st.composite
def plans(draw, max_batches: int = 5, max_size: int = 15) -> list[list[dict]]:
    """Batches in sending order; some are resends of an earlier batch (same ids, same content)."""
    batches: list[list[dict]] = []
    for _ in range(draw(st.integers(1, max_batches))):
        if batches and draw(st.integers(0, 3)) == 0:
            batches.append(copy.deepcopy(draw(st.sampled_from(batches))))
        else:
            batches.append(draw(st.lists(raw_events(), min_size=1, max_size=max_size)))
    return batches


def parse_instant(stamp: Any) -> datetime:
    if isinstance(stamp, int):
        return datetime.fromtimestamp(stamp, UTC)
    return datetime.fromisoformat(stamp).astimezone(UTC)


def expected_events(batches: list[list[dict]], zone: ZoneInfo = NY) -> dict[str, dict]:
    """What must be stored: the first event seen per id, its person, local day and measures."""
    stored: dict[str, dict] = {}
    for batch in batches:
        for ev in batch:
            if ev["id"] in stored:
                continue
            cost = ev.get("cost_usd")
            stored[ev["id"]] = {
                "user_key": IDENTITIES.get(ev["user"], ev["user"]),
                "subject": ev["user"],
                "day": parse_instant(ev["timestamp"]).astimezone(zone).date(),
                "occurred_at": parse_instant(ev["timestamp"]),
                "model": ev["model"],
                "tokens": (ev["input_tokens"], ev.get("cached_input_tokens", 0), ev["output_tokens"],
                           ev.get("reasoning_tokens", 0)),
                "cost": quantize_money(Decimal(cost)) if cost is not None else None,
                "unpriced": cost is None and ev["model"] == UNKNOWN_MODEL,
            }
    return stored


def expected_rollups(stored: dict[str, dict], costs: dict[str, Decimal]) -> dict[str, dict[tuple, tuple]]:
    out: dict[str, dict[tuple, list]] = {table: {} for table in ROLLUP_KEYS}
    for event_id, ev in stored.items():
        day = ev["day"]
        keys = {
            "usage_daily_model": (ev["user_key"], str(day), ev["model"]),
            "usage_daily": (ev["user_key"], str(day)),
            "usage_monthly": (ev["user_key"], f"{day:%Y-%m}"),
        }
        for table, key in keys.items():
            acc = out[table].setdefault(key, [0, 0, 0, 0, Decimal(0), 0, 0])
            for i, n in enumerate(ev["tokens"]):
                acc[i] += n
            acc[4] += costs[event_id]
            acc[5] += 1
            acc[6] += int(ev["unpriced"])
    return {table: {k: tuple(v) for k, v in rows.items()} for table, rows in out.items()}


async def stored_events(db: Database) -> dict[str, UsageEvent]:
    async with db.session() as session:
        return {e.event_id: e for e in await session.scalars(select(UsageEvent))}


async def clear(db: Database) -> None:
    async with db.write() as session:
        for table in USAGE_TABLES:
            await session.execute(text(f"DELETE FROM {table}"))


async def check_against_model(db: Database, batches: list[list[dict]], zone: ZoneInfo = NY) -> None:
    expected = expected_events(batches, zone)
    stored = await stored_events(db)
    assert set(stored) == set(expected)
    for event_id, want in expected.items():
        got = stored[event_id]
        assert got.user_key == want["user_key"], event_id
        assert got.subject == want["subject"]
        assert got.day == want["day"], (event_id, got.occurred_at)
        assert got.occurred_at == want["occurred_at"]
        assert got.model == want["model"]
        assert (got.input_tokens, got.cached_input_tokens, got.output_tokens, got.reasoning_tokens) == want["tokens"]
        assert got.unpriced == want["unpriced"]
        # the team it is charged to: its team field when that names a team, else the person's first team
        assert got.charge_team == ({"proj_a": "alpha", "litellm-team-b": "beta"}.get(got.team)
                                   or {"U0ALICE": "alpha", "U0BOB": "beta"}.get(got.user_key, ""))
        if want["cost"] is not None:
            assert (got.cost_usd, got.price_source) == (want["cost"], "source")
        elif want["unpriced"]:
            assert (got.cost_usd, got.price_source) == (Decimal(0), "unpriced")
        else:
            assert got.price_source.startswith("genai-prices ") and got.cost_usd >= 0
    tables = await assert_rollups_match_raw(db)
    assert tables == expected_rollups(expected, {k: e.cost_usd for k, e in stored.items()})

    async with db.write() as session:
        await rebuild_rollups(session)
    assert await rollup_tables(db) == tables, "rebuild_rollups gives different tables"


# teams: a person in two teams (alice), aliases naming a team, people in none: every event lands in one
TEAMS = {
    "alpha": TeamConfig("alpha", members=("U0ALICE",), aliases=("proj_a",)),
    "beta": TeamConfig("beta", members=("U0BOB", "U0ALICE"), aliases=("litellm-team-b",)),
}


def direct_settings(database_url: str, **changes) -> Settings:
    values: dict[str, Any] = {"database_url": database_url, "timezone": NY, "identities": dict(IDENTITIES),
                              "teams": TEAMS}
    return Settings(**(values | changes))


@pytest_asyncio.fixture
async def services(database_url) -> AsyncIterator[Services]:
    built = build_services(direct_settings(database_url), with_slack=False, clock=SettableClock(NY, FIXED_NOW))
    yield built
    await built.close()


@PROPERTY
@given(batches=plans())
async def test_rollups_equal_raw_group_by_for_any_events(services, batches):
    await clear(services.db)
    expected_counts = expected_events(batches)
    accepted = 0
    for batch in batches:
        result = await services.ingestor.ingest(batch, source="native")
        assert not result.rejected, result.rejected
        accepted += result.accepted
        assert result.accepted + result.duplicates == len(batch)
    assert accepted == len(expected_counts)
    await services.ingestor.writer.settle()
    await check_against_model(services.db, batches)


@st.composite
def overlapping_batches(draw) -> list[list[dict]]:
    """Batches cut from one pool of distinct events (an id always means the same event), overlapping."""
    pool = draw(st.lists(raw_events(id_pool=10_000), min_size=1, max_size=40, unique_by=lambda e: e["id"]))
    return [draw(st.lists(st.sampled_from(pool), min_size=1, max_size=20)) for _ in range(draw(st.integers(2, 8)))]


@PROPERTY
@given(batches=overlapping_batches())
async def test_concurrent_overlapping_batches_count_each_event_once(services, batches):
    await clear(services.db)
    results = await asyncio.gather(*(services.ingestor.ingest(b, source="native") for b in batches))
    expected = expected_events(batches)
    assert sum(r.accepted for r in results) == len(expected)
    assert all(r.accepted + r.duplicates == len(b) and not r.rejected for r, b in zip(results, batches, strict=True))
    await services.ingestor.writer.settle()
    await check_against_model(services.db, batches)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=plans(max_batches=4, max_size=12), forms=st.lists(st.sampled_from(("array", "events", "ndjson")),
                                                                 min_size=4, max_size=4))
async def test_rollups_equal_raw_through_the_webhook(make_bot, batches, forms):
    bot = await make_bot(clock=SettableClock(NY, FIXED_NOW), identities=dict(IDENTITIES), teams=TEAMS)
    await clear(bot.services.db)
    for batch, form in zip(batches, forms, strict=False):
        if form == "array":
            status, body = await bot.post_usage(batch)
        elif form == "events":
            status, body = await bot.post_usage({"events": batch})
        else:
            raw = b"\n".join(orjson.dumps(e) for e in batch)
            status, body = await bot.post_usage(None, raw=raw, content_type="application/x-ndjson")
        assert status == 200, body
        assert body["accepted"] + body["duplicates"] == len(batch) and not body["rejected"]
    await bot.services.identities.drain()  # emails were queued for lookup; the fake Slack knows none
    await check_against_model(bot.services.db, batches)


# =========================================================================== maintenance jobs


async def test_changed_time_zone_rebuilds_days_and_rollups(database_url):
    # one event either side of New York midnight on both 2026 DST change dates, and on a month edge
    stamps = ["2026-03-08T04:59:59Z", "2026-03-08T05:00:00Z", "2026-11-01T03:59:59Z", "2026-11-01T04:00:00Z",
              "2026-11-01T05:30:00Z", "2026-02-28T23:30:00-05:00", "2026-03-01T04:59:59Z"]
    batch = [{"id": f"tz-{i}", "timestamp": s, "user": ("U0ALICE", "key_live_xyz")[i % 2], "model": MODELS[i % 5],
              "input_tokens": 1000 * (i + 1), "output_tokens": 10 * i, "cost_usd": f"0.00{i}"}
             for i, s in enumerate(stamps)]
    clock = SettableClock(NY, FIXED_NOW)
    first = build_services(direct_settings(database_url), with_slack=False, clock=clock)
    try:
        assert await ensure_rollup_timezone(first) is False  # first start: nothing to rebuild, zone recorded
        await first.ingestor.ingest(batch, source="native")
        await first.ingestor.writer.settle()
        assert await ensure_rollup_timezone(first) is False  # same zone: nothing to do
        await check_against_model(first.db, [batch], NY)
        ny_days = {str(k[1]) for k in (await rollup_tables(first.db))["usage_daily"]}
    finally:
        await first.close()

    tokyo = ZoneInfo("Asia/Tokyo")
    moved = build_services(direct_settings(database_url, timezone=tokyo), with_slack=False,
                           clock=SettableClock(tokyo, FIXED_NOW))
    try:
        assert await ensure_rollup_timezone(moved) is True
        await check_against_model(moved.db, [batch], tokyo)
        tokyo_days = {str(k[1]) for k in (await rollup_tables(moved.db))["usage_daily"]}
        assert tokyo_days != ny_days
        assert await ensure_rollup_timezone(moved) is False  # recorded: no second rebuild
        # new events after the change land on Tokyo days too, and rollups stay exact
        extra = [dict(batch[0], id="tz-late", timestamp="2026-03-07T15:30:00Z")]
        await moved.ingestor.ingest(extra, source="native")
        await moved.ingestor.writer.settle()
        await check_against_model(moved.db, [batch, extra], tokyo)
        assert (await stored_events(moved.db))["tz-late"].day == date(2026, 3, 8)
    finally:
        await moved.close()


async def test_reprice_prices_formerly_unpriced_events_and_rollups_follow(database_url):
    model = "acme-finetune-1"
    batch = [
        {"id": f"ft-{i}", "timestamp": f"2026-10-{10 + i}T12:00:00Z", "user": ("U0ALICE", "key_live_xyz")[i % 2],
         "model": model, "input_tokens": 1_000_000 + i, "cached_input_tokens": 1000 * i,
         "output_tokens": 20_000 + i, "reasoning_tokens": i}
        for i in range(6)
    ]
    batch += [
        {"id": "ft-sent", "timestamp": "2026-10-12T12:00:00Z", "user": "U0ALICE", "model": model,
         "input_tokens": 5, "output_tokens": 5, "cost_usd": "0.42"},
        {"id": "other-unknown", "timestamp": "2026-10-12T12:00:00Z", "user": "U0ALICE", "model": UNKNOWN_MODEL,
         "input_tokens": 5, "output_tokens": 5},
        {"id": "known", "timestamp": "2026-10-12T12:00:00Z", "user": "U0BOB", "model": "gpt-4o",
         "input_tokens": 5000, "output_tokens": 50},
    ]
    clock = SettableClock(NY, FIXED_NOW)
    before = build_services(direct_settings(database_url), with_slack=False, clock=clock)
    try:
        await before.ingestor.ingest(batch, source="native")
        await before.ingestor.writer.settle()
        tables = await assert_rollups_match_raw(before.db)
        assert sum(v[6] for v in tables["usage_monthly"].values()) == 7
        known_cost = (await stored_events(before.db))["known"].cost_usd
    finally:
        await before.close()

    price = ModelPrice(input=Decimal("3.0"), output=Decimal("12.0"), cached_input=Decimal("0.3"))
    after = build_services(direct_settings(database_url, model_prices={model: price}), with_slack=False, clock=clock)
    try:
        result = await reprice(after)
        assert (result.examined, result.changed, result.still_unpriced) == (7, 6, 1)
        stored = await stored_events(after.db)
        for i in range(6):
            ev = stored[f"ft-{i}"]
            cached = 1000 * i
            want = (Decimal(1_000_000 + i - cached) * 3 + Decimal(cached) * Decimal("0.3")
                    + Decimal(20_000 + i) * 12) / 1_000_000
            assert (ev.cost_usd, ev.price_source, ev.unpriced) == (want, "override", False)
        assert (stored["ft-sent"].cost_usd, stored["ft-sent"].price_source) == (Decimal("0.42"), "source")
        assert (stored["other-unknown"].unpriced, stored["other-unknown"].price_source) == (True, "unpriced")
        assert stored["known"].cost_usd == known_cost
        tables = await assert_rollups_match_raw(after.db)
        assert sum(v[6] for v in tables["usage_monthly"].values()) == 1
        total = sum(e.cost_usd for e in stored.values())
        assert sum(v[4] for v in tables["usage_monthly"].values()) == total
        assert cost_total(tables, user_key="key_live_xyz") == sum(
            stored[f"ft-{i}"].cost_usd for i in (1, 3, 5))
        again = await reprice(after)
        assert (again.examined, again.changed, again.still_unpriced) == (1, 0, 1)
    finally:
        await after.close()


# =========================================================================== every kind of write

LINKABLE = ("alice@acme.test", "dave@acme.test", "key_live_xyz", "litellm-team-key")


@st.composite
def write_plans(draw) -> list[tuple]:
    """A sequence of writes of every kind, with or without a fold in between."""
    plan: list[tuple] = []
    for _ in range(draw(st.integers(2, 7))):
        kind = draw(st.sampled_from(("ingest", "ingest", "correct", "link", "reprice", "fold")))
        if kind == "ingest":
            plan.append(("ingest", draw(st.lists(raw_events(id_pool=40), min_size=1, max_size=10))))
        elif kind == "correct":
            plan.append(("correct", draw(st.integers(0, 39)),
                         draw(st.decimals(min_value=-5, max_value=5, places=12)), draw(st.integers(-5000, 5000))))
        elif kind == "link":
            people = st.sampled_from(("U0ALICE", "U0BOB", "W0CAROL"))
            plan.append(("link", draw(st.sampled_from(LINKABLE)), draw(people)))
        else:
            plan.append((kind,))
    return plan


async def assert_month_spend_exact(db: Database) -> None:
    """Budgets read the monthly rollup plus the unfolded tail: equal to the raw events at any moment."""
    from storage.usage import month_spend

    async with db.session() as session:
        raw = (await session.execute(text(
            "SELECT user_key, cost_usd FROM usage_events WHERE day >= '2026-11-01' AND day <= '2026-11-30'"))).all()
        expected: dict[str, Decimal] = {}
        for user, cost in raw:
            expected[user] = expected.get(user, Decimal(0)) + money_from_db(cost, db.dialect)
        got = await month_spend(session, "2026-11", date(2026, 11, 1), date(2026, 11, 30), expected)
    assert {k: v for k, v in got.items() if v} == {k: v for k, v in expected.items() if v}


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=write_plans())
async def test_rollups_equal_raw_after_every_kind_of_write(database_url, plan):
    from storage.usage import insert_events

    price = ModelPrice(input=Decimal("3.0"), output=Decimal("12.0"), cached_input=Decimal("0.3"))
    clock = SettableClock(NY, FIXED_NOW)
    main = build_services(direct_settings(database_url), with_slack=False, clock=clock)
    repricer = build_services(direct_settings(database_url, model_prices={UNKNOWN_MODEL: price}),
                              with_slack=False, clock=clock)
    try:
        await clear(main.db)
        for step, op in enumerate(plan):
            if op[0] == "ingest":
                result = await main.ingestor.ingest(op[1], source="native")
                assert not result.rejected, result.rejected
            elif op[0] == "correct":  # a provider correction: a negative or positive delta row
                stored = await stored_events(main.db)
                base = stored.get(f"e{op[1]}")
                if base is not None:
                    row = {c.key if c.key != "meta" else "metadata": getattr(base, c.key)
                           for c in UsageEvent.__mapper__.column_attrs}
                    tokens = max(op[3], -base.input_tokens)
                    row.update(event_id=f"fix-{step}-{op[1]}", cost_usd=quantize_money(op[2]), input_tokens=tokens,
                               cached_input_tokens=0, output_tokens=0, reasoning_tokens=0, unpriced=False,
                               price_source="source", metadata=None)
                    async with main.db.write_connection() as conn:
                        assert len(await insert_events(conn, [row])) == 1
            elif op[0] == "link":
                await main.identities.link(op[1], op[2], source="admin", set_by="U0ADMIN")
            elif op[0] == "reprice":
                await reprice(repricer)
            else:
                await main.ingestor.writer.fold(wait=True)
            await assert_month_spend_exact(main.db)
        await main.ingestor.writer.settle()
        await assert_rollups_match_raw(main.db)
        async with main.db.write() as session:
            await rebuild_rollups(session)
        await assert_rollups_match_raw(main.db)
    finally:
        await repricer.close()
        await main.close()
