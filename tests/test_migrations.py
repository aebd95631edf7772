"""Upgrading a 0001 database that holds data to the head (0002_ledger, then 0003_senders's
`cache_hit` on the rebuilt or partitioned ledger): nothing lost, sums exact after.

SQLite starts from the schema 0001 really created before this change (money as 64-bit
picodollars; tests/data/schema_0001_sqlite.sql, dumped from that revision). PostgreSQL runs
0001 in a database of its own next to the test database and moves the rows into partitions.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest_asyncio
from alembic.script import ScriptDirectory
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from bot.clock import SettableClock
from bot.wiring import build_services
from storage.db import alembic_config, upgrade_async
from storage.models import Budget, UsageEvent
from tests.conftest import IS_POSTGRES, TEST_DATABASE_URL
from tests.test_rollups_property import NY, assert_rollups_match_raw, direct_settings

DATA = Path(__file__).parent / "data"
PICO = 10**12
# (event_id, day, user, model, input, cached, output, reasoning, cost in picodollars, unpriced)
OLD_EVENTS = [
    ("old-1", "2026-10-05", "U0A", "gpt-4o", 1000, 100, 50, 0, 12_345_678_901, 0),
    ("old-2", "2026-10-05", "U0A", "gpt-4o", 2000, 0, 70, 10, 1 * PICO, 0),
    ("old-3", "2026-11-20", "U0A", "o3", 10, 0, 5, 5, 0, 1),
    ("old-4", "2026-11-21", "key_x", "gpt-4o", 7, 0, 3, 0, 4_000_000 * PICO, 0),  # $4M: below 2^62 picodollars
]
BUDGET = 5_000_000 * PICO  # $5M: past 2^62 picodollars, stored as digits after the upgrade
# usage_events as 0001 created it (cache_hit came later, in 0003_senders)
EVENT_COLUMNS_0001 = (
    "event_id", "occurred_at", "day", "received_at", "source", "subject", "user_key", "model", "provider", "team",
    "project", "input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens", "cost_usd",
    "price_source", "unpriced", "metadata",
)


def _rollups(events) -> dict[str, dict[tuple, list[int]]]:
    out: dict[str, dict[tuple, list[int]]] = {"usage_daily_model": {}, "usage_daily": {}, "usage_monthly": {}}
    for _, day, user, model, i, c, o, r, cost, unpriced in events:
        for table, key in (("usage_daily_model", (user, day, model)), ("usage_daily", (user, day)),
                           ("usage_monthly", (user, day[:7]))):
            acc = out[table].setdefault(key, [0] * 7)
            for n, v in enumerate((i, c, o, r, cost, 1, unpriced)):
                acc[n] += v
    return out


def _old_rows(placeholder: str):
    """(sql, params) inserting OLD_EVENTS, their rollups and a budget the way 0001 stored them."""
    p = placeholder
    statements = []
    for event_id, day, user, model, i, c, o, r, cost, unpriced in OLD_EVENTS:
        statements.append((
            f"INSERT INTO usage_events ({', '.join(EVENT_COLUMNS_0001)}) "
            f"VALUES ({', '.join([p] * len(EVENT_COLUMNS_0001))})",
            [event_id, f"{day} 15:00:00.000000", day, "2026-11-25 10:00:00.000000", "native", user, user, model,
             None, None, None, i, c, o, r, cost, "source", unpriced, None]))
    for table, rows in _rollups(OLD_EVENTS).items():
        keys = ("user_key", "day", "model") if table == "usage_daily_model" else (
            ("user_key", "day") if table == "usage_daily" else ("user_key", "month"))
        columns = (*keys, "input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens", "cost_usd",
                   "events", "unpriced_events")
        for key, values in rows.items():
            statements.append((f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join([p] * len(columns))})",
                               [*key, *values]))
    statements.append((f"INSERT INTO budgets (user_key, monthly_usd, set_by, set_at) VALUES ({p}, {p}, {p}, {p})",
                       ["U0A", BUDGET, "U0ADMIN", "2026-11-01 00:00:00.000000"]))
    return statements


@pytest_asyncio.fixture
async def old_database(tmp_path) -> AsyncIterator[str]:
    if not IS_POSTGRES:
        path = tmp_path / "old.db"
        conn = sqlite3.connect(path)
        conn.executescript((DATA / "schema_0001_sqlite.sql").read_text())
        conn.execute("INSERT INTO alembic_version VALUES ('0001')")
        for sql, params in _old_rows("?"):
            conn.execute(sql, params)
        conn.commit()
        conn.close()
        yield f"sqlite+aiosqlite:///{path}"
        return
    import asyncpg

    url = make_url(TEST_DATABASE_URL)
    name = f"{url.database}_upgrade"
    admin_dsn = url.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
    await admin.execute(f'CREATE DATABASE "{name}"')
    target = url.set(database=name).render_as_string(hide_password=False)
    try:
        await upgrade_async(target, "0001")
        conn = await asyncpg.connect(url.set(drivername="postgresql", database=name).render_as_string(
            hide_password=False))
        for sql, params in _old_rows("$"):
            numbered = _numbered(sql)
            converted = [_pg_value(v) for v in params]
            if "usage_events" in sql:
                converted[17] = bool(converted[17])  # unpriced
            await conn.execute(numbered, *converted)
        await conn.close()
        yield target
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def _numbered(sql: str) -> str:
    counter = iter(range(1, 100))
    return re.sub(r"\$", lambda _: f"${next(counter)}", sql)


def _pg_value(value):
    if isinstance(value, str) and len(value) == 26 and value[10] == " ":
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    if isinstance(value, str) and len(value) == 10 and value[4] == "-":
        return date.fromisoformat(value)
    if isinstance(value, int) and value >= 10**9:  # picodollars -> the NUMERIC dollars 0001 kept on PostgreSQL
        return Decimal(value).scaleb(-12)
    return value


async def test_upgrade_from_0001_keeps_every_row_and_sums_stay_exact(old_database):
    await upgrade_async(old_database)
    services = build_services(direct_settings(old_database), with_slack=False,
                              clock=SettableClock(NY, datetime(2026, 11, 26, 18, tzinfo=UTC)))
    head = ScriptDirectory.from_config(alembic_config(old_database)).get_current_head()
    try:
        async with services.db.session() as session:
            assert (await session.execute(text("SELECT version_num FROM alembic_version"))).scalar() == head
            events = {e.event_id: e for e in await session.scalars(select(UsageEvent))}
            budget = await session.get(Budget, "U0A")
            if not IS_POSTGRES:
                seqs = [r[0] for r in await session.execute(text("SELECT event_id FROM usage_events ORDER BY seq"))]
                assert seqs == [e[0] for e in OLD_EVENTS]  # the ledger keeps its order
                folded = (await session.execute(text("SELECT folded_seq FROM rollup_fold_state"))).scalar()
                assert folded == len(OLD_EVENTS)  # every old event was already in the rollups
            else:
                parts = {r[0] for r in await session.execute(text(
                    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                    "WHERE i.inhparent = 'usage_events'::regclass"))}
                assert {"usage_events_2026_10", "usage_events_2026_11"} <= parts
                ids = (await session.execute(text("SELECT COUNT(*) FROM usage_event_ids"))).scalar()
                assert ids == len(OLD_EVENTS)
        assert set(events) == {e[0] for e in OLD_EVENTS}
        for event_id, day, user, model, i, c, o, r, cost, unpriced in OLD_EVENTS:
            got = events[event_id]
            assert (got.day.isoformat(), got.user_key, got.model) == (day, user, model)
            assert (got.input_tokens, got.cached_input_tokens, got.output_tokens, got.reasoning_tokens) == (i, c, o, r)
            assert got.cost_usd == Decimal(cost).scaleb(-12) and got.unpriced == bool(unpriced)
            assert got.cache_hit is False  # 0003_senders: old rows were all paid calls
        assert budget.monthly_usd == Decimal(5_000_000)
        await assert_rollups_match_raw(services.db)

        # the upgraded ledger takes new events, refuses resends, and its sums stay exact
        fresh = [{"id": "new-1", "timestamp": "2026-11-21T15:00:00Z", "user": "key_x", "model": "gpt-4o",
                  "input_tokens": 1, "output_tokens": 1, "cost_usd": "999999"},
                 {"id": "old-2", "timestamp": "2026-10-05T15:00:00Z", "user": "U0A", "model": "gpt-4o",
                  "input_tokens": 2000, "output_tokens": 70},
                 # a gateway's cache hit, as bot/sources/litellm_records.py hands it on: flagged, no tokens, no cost
                 {"id": "new-hit", "timestamp": "2026-11-21T16:00:00Z", "user": "key_x", "model": "gpt-4o",
                  "input_tokens": 0, "output_tokens": 0, "cost_usd": "0", "_cache_hit": True}]
        result = await services.ingestor.ingest(fresh, source="native")
        assert (result.accepted, result.duplicates, result.served_from_cache) == (2, 1, 1)
        await services.ingestor.writer.settle()
        tables = await assert_rollups_match_raw(services.db)
        assert tables["usage_monthly"][("key_x", "2026-11")][4] == Decimal(4_999_999)
        async with services.db.session() as session:
            flags = {e.event_id: e.cache_hit for e in await session.scalars(
                select(UsageEvent).where(UsageEvent.event_id.in_(["new-1", "new-hit"])))}
        assert flags == {"new-1": False, "new-hit": True}
    finally:
        await services.close()
