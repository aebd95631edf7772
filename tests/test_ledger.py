"""The ledger at its edges: money and token ranges, ledger corrections, folds that fail,
retention while ingesting, partitions that do not exist yet. On SQLite and PostgreSQL alike
(the suite runs both ways)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
import pytest_asyncio
from sqlalchemy import insert, text

from bot.budgets import budget_status
from bot.clock import SettableClock
from bot.maintenance import retention
from bot.services import Services
from bot.wiring import build_services
from storage import queries
from storage.models import UsageMonthly
from storage.usage import insert_events
from tests.conftest import IS_POSTGRES
from tests.test_rollups_property import NY, assert_rollups_match_raw, direct_settings, raw_aggregates, rollup_tables

NOW = datetime(2026, 11, 26, 18, 0, tzinfo=UTC)  # 13:00 in New York, November 2026
MONTH = "2026-11"


@pytest_asyncio.fixture
async def services(database_url) -> AsyncIterator[Services]:
    built = build_services(direct_settings(database_url), with_slack=False, clock=SettableClock(NY, NOW))
    yield built
    await built.close()


def spend(n: int | str, user: str, cost: str | None, *, at: datetime = NOW - timedelta(hours=1), **fields) -> dict:
    event = {"id": f"m-{n}", "timestamp": at.isoformat(), "user": user, "model": "gpt-4o",
             "input_tokens": 1000, "output_tokens": 100, **fields}
    if cost is not None:
        event["cost_usd"] = cost
    return event


def ledger_row(event_id: str, user: str, day: date, cost: str, *, tokens: int = 0, model: str = "bucket") -> dict:
    at = datetime(day.year, day.month, day.day, 17, tzinfo=UTC)
    return {"event_id": event_id, "occurred_at": at, "day": day, "received_at": NOW, "source": "openai",
            "subject": user, "user_key": user, "model": model, "provider": "openai", "team": None,
            "project": "proj", "input_tokens": tokens, "cached_input_tokens": 0, "output_tokens": 0,
            "reasoning_tokens": 0, "cost_usd": Decimal(cost), "price_source": "source", "unpriced": False,
            "metadata": None}


async def monthly_cost(services: Services, user: str, month: str = MONTH) -> Decimal:
    async with services.db.session() as session:
        return dict((m, t.cost_usd) for m, t in await queries.months_of(session, user)).get(month, Decimal(0))


# =========================================================================== money and tokens

@pytest.mark.parametrize("batched", [True, False], ids=["batched", "one-by-one"])
async def test_ten_999999_dollar_events_for_one_person_are_exact(services, batched):
    events = [spend(i, "U0BIG", "999999") for i in range(10)] + [spend("small", "U0SMALL", "5.000000000001")]
    if batched:
        result = await services.ingestor.ingest(events, source="native")
        assert (result.accepted, result.rejected) == (11, [])
    else:
        for one in events:
            assert (await services.ingestor.ingest([one], source="native")).accepted == 1
    async with services.db.session() as session:  # exact to the event before any fold
        status = await budget_status(session, services.settings, services.clock, "U0BIG")
    assert status.spent_usd == Decimal(9_999_990) and not status.allowed
    await services.ingestor.writer.settle()
    assert await monthly_cost(services, "U0BIG") == Decimal(9_999_990)
    async with services.db.session() as session:
        board = await queries.leaderboard_month(session, MONTH)
        total = await queries.totals_days(session, date(2026, 11, 1), date(2026, 11, 30))
    assert [(r.key, r.totals.cost_usd) for r in board] == [("U0BIG", Decimal(9_999_990)),
                                                            ("U0SMALL", Decimal("5.000000000001"))]
    assert total.cost_usd == Decimal("9999995.000000000001") and total.input_tokens == 11_000
    await assert_rollups_match_raw(services.db)


async def test_a_trillion_dollars_per_row_and_per_sum_with_corrections_to_the_picodollar(services):
    day = date(2026, 11, 20)
    rows = [ledger_row(f"bucket-{i}", "openai:proj", day, "400000000000.000000000001") for i in range(3)]
    rows.append(ledger_row("other", "openai:other", day, "0.5"))
    async with services.db.write_connection() as conn:
        assert len(await insert_events(conn, rows)) == 4
        assert await insert_events(conn, rows[:1]) == []  # an id stored before is skipped
    correction = [ledger_row("bucket-0-fix", "openai:proj", day, "-0.000000000003", tokens=-7)]
    async with services.db.write_connection() as conn:
        assert len(await insert_events(conn, correction)) == 1
    await services.ingestor.writer.settle()
    assert await monthly_cost(services, "openai:proj") == Decimal("1200000000000")
    async with services.db.session() as session:
        total = await queries.totals_days(session, day, day)
        board = await queries.leaderboard_month(session, MONTH)
        status = await budget_status(session, services.settings, services.clock, "openai:proj")
    assert total.cost_usd == Decimal("1200000000000.5") and total.input_tokens == -7
    assert [r.key for r in board] == ["openai:proj", "openai:other"]
    assert status.spent_usd == Decimal("1200000000000")
    await assert_rollups_match_raw(services.db)


async def test_ledger_rows_out_of_range_are_refused(services):
    async with services.db.write_connection() as conn:
        with pytest.raises(ValueError, match="input_tokens"):
            await insert_events(conn, [ledger_row("huge", "U0A", date(2026, 11, 2), "1", tokens=2**62)])
        with pytest.raises(ValueError, match="cost_usd"):
            await insert_events(conn, [ledger_row("rich", "U0A", date(2026, 11, 2), "1e16")])


@pytest.mark.parametrize("batched", [True, False], ids=["batched", "one-by-one"])
async def test_events_of_2_62_tokens_are_refused_by_index_and_the_rest_stored(services, batched):
    events = [spend("ok", "U0A", "1"), spend("huge-in", "U0A", "1", input_tokens=2**62),
              spend("huge-out", "U0A", "1", output_tokens=2**62, reasoning_tokens=2**62)]
    results = ([await services.ingestor.ingest(events, source="native")] if batched
               else [await services.ingestor.ingest([e], source="native") for e in events])
    rejected = [r for result in results for r in result.rejected]
    assert sum(r.accepted for r in results) == 1
    assert [(r.id, r.error.split(":")[0]) for r in rejected] == [("m-huge-in", "input_tokens"),
                                                                 ("m-huge-out", "output_tokens")]
    if batched:
        assert [r.index for r in rejected] == [1, 2]
    assert "1,000,000,000,000" in rejected[0].error


async def test_a_rollup_past_2_63_tokens_stays_exact(services):
    big = 2**63 - 5  # beyond any 64-bit column: a rollup that has taken in absurd usage
    async with services.db.write() as session:
        await session.execute(insert(UsageMonthly).values(
            user_key="U0A", month=MONTH, input_tokens=big, cached_input_tokens=0, output_tokens=big,
            reasoning_tokens=0, cost_usd=Decimal("4611686.018427387904"), events=1, unpriced_events=0))
    await services.ingestor.ingest([spend(1, "U0A", "0.000000000001", input_tokens=10**12, output_tokens=10**12)],
                                   source="native")
    await services.ingestor.writer.settle()
    async with services.db.session() as session:
        [(_, totals)] = await queries.months_of(session, "U0A")
    assert (totals.input_tokens, totals.output_tokens) == (big + 10**12, big + 10**12)
    assert totals.cost_usd == Decimal("4611686.018427387905") and totals.events == 2


# =========================================================================== faults

FAULT_SQLITE = (
    "CREATE TABLE fold_fault (armed INTEGER NOT NULL)",
    "INSERT INTO fold_fault VALUES (0)",
    "CREATE TRIGGER fold_fault_i BEFORE INSERT ON usage_monthly WHEN (SELECT armed FROM fold_fault) = 1 "
    "BEGIN SELECT RAISE(ABORT, 'injected fold failure'); END",
    "CREATE TRIGGER fold_fault_u BEFORE UPDATE ON usage_monthly WHEN (SELECT armed FROM fold_fault) = 1 "
    "BEGIN SELECT RAISE(ABORT, 'injected fold failure'); END",
)
FAULT_PG = (
    "CREATE TABLE fold_fault (armed INTEGER NOT NULL)",
    "INSERT INTO fold_fault VALUES (0)",
    "CREATE FUNCTION fold_fault() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "IF (SELECT armed FROM fold_fault) = 1 THEN RAISE EXCEPTION 'injected fold failure'; END IF; "
    "RETURN NEW; END $$",
    "CREATE TRIGGER fold_fault BEFORE INSERT OR UPDATE ON usage_monthly FOR EACH ROW EXECUTE FUNCTION fold_fault()",
)
FAULT_DROP_PG = ("DROP TRIGGER IF EXISTS fold_fault ON usage_monthly", "DROP FUNCTION IF EXISTS fold_fault()",
                 "DROP TABLE IF EXISTS fold_fault")


async def _sql(services: Services, *statements: str) -> None:
    async with services.db.write() as session:
        for statement in statements:
            await session.execute(text(statement))


async def test_a_fold_that_fails_is_retried_and_never_counts_twice(services):
    await _sql(services, *(FAULT_DROP_PG if IS_POSTGRES else ()), *(FAULT_PG if IS_POSTGRES else FAULT_SQLITE))
    try:
        await services.ingestor.ingest([spend(i, "U0A", "1.5") for i in range(4)], source="native")
        await services.ingestor.writer.settle()
        before = await rollup_tables(services.db)
        await _sql(services, "UPDATE fold_fault SET armed = 1")
        await services.ingestor.ingest([spend(f"b{i}", "U0A", "2") for i in range(3)], source="native")
        with pytest.raises(Exception, match="injected fold failure"):
            await services.ingestor.writer.fold(wait=True)
        # the background fold keeps failing and retrying; nothing moves, budgets stay exact
        failures = services.ingestor.writer.fold_failures
        deadline = asyncio.get_running_loop().time() + 10
        while services.ingestor.writer.fold_failures == failures:
            assert asyncio.get_running_loop().time() < deadline, "the background fold never retried"
            await asyncio.sleep(0.05)
        assert await rollup_tables(services.db) == before
        async with services.db.session() as session:
            status = await budget_status(session, services.settings, services.clock, "U0A")
        assert status.spent_usd == Decimal(12)
        await _sql(services, "UPDATE fold_fault SET armed = 0")
        deadline = asyncio.get_running_loop().time() + 10
        while (await rollup_tables(services.db)) != (await raw_aggregates(services.db)):
            assert asyncio.get_running_loop().time() < deadline, "the fold did not recover"
            await asyncio.sleep(0.05)
        assert await monthly_cost(services, "U0A") == Decimal(12)
    finally:
        if IS_POSTGRES:
            await _sql(services, *FAULT_DROP_PG)


@pytest.mark.skipif(not IS_POSTGRES, reason="several processes share PostgreSQL only")
async def test_two_processes_folding_at_once_count_each_event_once(database_url):
    first = build_services(direct_settings(database_url), with_slack=False, clock=SettableClock(NY, NOW))
    second = build_services(direct_settings(database_url), with_slack=False, clock=SettableClock(NY, NOW))
    try:
        batches = [[spend(f"p{b}-{i}", f"U0P{i % 7}", f"0.{b:02d}{i:03d}") for i in range(150)] for b in range(12)]
        overlapping = batches + batches[::3]  # some sent to both processes

        async def send(services, mine):
            for batch in mine:
                await services.ingestor.ingest(batch, source="native")
                await services.ingestor.writer.fold()

        async def fold_often(services):
            for _ in range(20):
                await services.ingestor.writer.fold(wait=True)

        await asyncio.gather(send(first, overlapping[0::2]), send(second, overlapping[1::2]),
                             fold_often(first), fold_often(second))
        await asyncio.gather(first.ingestor.writer.settle(), second.ingestor.writer.settle())
        tables = await assert_rollups_match_raw(first.db)
        assert sum(v[5] for v in tables["usage_monthly"].values()) == 12 * 150
        async with first.db.session() as session:
            assert (await session.execute(text("SELECT COUNT(*) FROM usage_fold_queue"))).scalar() == 0
    finally:
        await first.close()
        await second.close()


async def test_retention_while_ingesting_keeps_rollups_and_new_events(services):
    old_days = [date(2025, 1, 10), date(2025, 3, 3), date(2025, 6, 30)]
    rows = [ledger_row(f"old-{d}-{i}", "U0A", d, "1.25", tokens=10, model="gpt-4o")
            for d in old_days for i in range(40)]
    async with services.db.write_connection() as conn:
        await insert_events(conn, rows)
    await services.ingestor.writer.settle()
    before = await rollup_tables(services.db)

    assert await retention(services) == 0  # records the horizon; nothing goes for ten minutes
    services.clock.advance(minutes=11)
    services.ingestor._horizon = (None, float("-inf"))  # other processes re-read it within a minute

    async def ingest_meanwhile() -> int:
        accepted = 0
        for b in range(10):
            result = await services.ingestor.ingest([spend(f"new-{b}-{i}", "U0B", "0.5") for i in range(50)],
                                                    source="native")
            accepted += result.accepted
            await asyncio.sleep(0)
        return accepted

    deleted, accepted = await asyncio.gather(retention(services), ingest_meanwhile())
    assert accepted == 500
    await services.ingestor.writer.settle()
    async with services.db.session() as session:
        left = (await session.execute(text("SELECT COUNT(*) FROM usage_events WHERE day < '2025-10-01'"))).scalar()
        new = (await session.execute(text("SELECT COUNT(*) FROM usage_events WHERE user_key = 'U0B'"))).scalar()
    assert (left, new) == (0, 500)
    after = await rollup_tables(services.db)
    for table, rows_before in before.items():  # the old months' rollups stay as they were
        assert {k: v for k, v in after[table].items() if k[0] == "U0A"} == rows_before
    assert await monthly_cost(services, "U0B") == Decimal(250)
    if IS_POSTGRES:
        assert deleted == 120
        async with services.db.session() as session:
            gone = (await session.execute(text("SELECT to_regclass('usage_events_2025_03')"))).scalar()
            ids = (await session.execute(text("SELECT COUNT(*) FROM usage_event_ids WHERE event_id LIKE 'old-%'")
                                         )).scalar()
        assert gone is None and ids == 0
    else:
        assert deleted == 120
    # an event from before the horizon cannot be told from a resend any more: refused, by index
    result = await services.ingestor.ingest(
        [spend("late", "U0A", "1", at=datetime(2025, 3, 3, 12, tzinfo=UTC)), spend("fresh", "U0A", "1")],
        source="native")
    assert result.accepted == 1 and [(r.index, r.id) for r in result.rejected] == [(0, "m-late")]
    assert "retention.raw_days" in result.rejected[0].error


async def test_an_event_for_a_month_without_a_partition_is_stored(services):
    at = datetime(2026, 1, 15, 12, tzinfo=UTC)
    if IS_POSTGRES:
        async with services.db.session() as session:
            assert (await session.execute(text("SELECT to_regclass('usage_events_2026_01')"))).scalar() is None
    result = await services.ingestor.ingest([spend("jan", "U0A", "3", at=at)], source="native")
    assert result.accepted == 1
    async with services.db.write_connection() as conn:
        assert len(await insert_events(conn, [ledger_row("2019", "U0A", date(2019, 3, 1), "2")])) == 1
    await services.ingestor.writer.settle()
    assert await monthly_cost(services, "U0A", "2026-01") == Decimal(3)
    assert await monthly_cost(services, "U0A", "2019-03") == Decimal(2)
    if IS_POSTGRES:
        async with services.db.session() as session:
            names = (await session.execute(text(
                "SELECT to_regclass('usage_events_2026_01')::text, to_regclass('usage_events_2019_03')::text"))).one()
        assert names == ("usage_events_2026_01", "usage_events_2019_03")
    await assert_rollups_match_raw(services.db)
