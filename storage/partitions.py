"""A ledger that stays fast at a billion events: monthly partitions and retention.

PostgreSQL keeps `usage_events` partitioned by month of the local `day`
(`usage_events_YYYY_MM`). Partitions are created ahead of time by a daily job and on demand
for any month a batch needs (a backfill, a clock far off): an event is always stored.
Retention (`[retention] raw_days`, SPEC 14) drops whole months once every day in them is
older than the window; the rollups stay. Ids of dropped events leave `usage_event_ids` with
them; ingest refuses events older than the window, so a resend cannot count twice.

SQLite deletes old events in small transactions (ingest is never held for long), only events
already folded into the rollups.
"""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import date, timedelta

from sqlalchemy import text

log = logging.getLogger(__name__)

_NAME = re.compile(r"^usage_events_(\d{4})_(\d{2})$")
RETENTION_BATCH = 5000  # SQLite: events deleted per transaction
_SCAN = 50_000  # SQLite: seqs examined per transaction


HORIZON_KEY = "ledger_refuse_before"  # settings row "YYYY-MM-DD@<when set>": older events are refused


def refuse_before(value: str) -> date:
    return date.fromisoformat(value.split("@", 1)[0])


async def ingest_horizon(db) -> date | None:
    """The first local day ingest accepts once retention has recorded a horizon (else None):
    older events' ids may be forgotten, so a resend could not be recognised."""
    async with db.engine.connect() as conn:
        value = (await conn.execute(text("SELECT value FROM settings WHERE key = :k"), {"k": HORIZON_KEY})).scalar()
    return refuse_before(value) if value else None


def month_start(day: date) -> date:
    return day.replace(day=1)


def next_month(first: date) -> date:
    return (first + timedelta(days=32)).replace(day=1)


def partition_name(first: date) -> str:
    return f"usage_events_{first.year:04d}_{first.month:02d}"


class PartitionKeeper:
    """Creates the monthly partitions a write needs (PostgreSQL), remembering those it saw."""

    def __init__(self, db=None, *, engine=None) -> None:
        self.engine = engine if engine is not None else db.engine
        self._known: set[date] = set()
        self._lock = asyncio.Lock()

    @classmethod
    def for_engine(cls, engine) -> PartitionKeeper:
        keeper = _KEEPERS.get(id(engine))
        if keeper is None or keeper.engine is not engine:
            keeper = _KEEPERS[id(engine)] = cls(engine=engine)
        return keeper

    async def existing(self) -> list[str]:
        """Partition names, oldest month first."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(text(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = 'usage_events'::regclass"))
            return sorted(r[0] for r in rows if _NAME.match(r[0]))

    async def ensure(self, months: set[date]) -> None:
        missing = months - self._known
        if not missing:
            return
        async with self._lock:
            present = {date(int(m.group(1)), int(m.group(2)), 1)
                       for m in (_NAME.match(n) for n in await self.existing()) if m}
            self._known |= present
            for first in sorted(missing - present):
                await self._create(first)
                self._known.add(first)

    async def ensure_range(self, first_day: date, last_day: date, *, margin: int = 0) -> None:
        first = month_start(first_day)
        for _ in range(margin):
            first = month_start(first - timedelta(days=1))
        last = month_start(last_day)
        for _ in range(margin):
            last = next_month(last)
        months = set()
        while first <= last:
            months.add(first)
            first = next_month(first)
        await self.ensure(months)

    async def _create(self, first: date) -> None:
        # its own short transaction: the parent is locked only while the partition is attached
        name, upto = partition_name(first), next_month(first)
        try:
            async with self.engine.begin() as conn:
                await conn.execute(text(
                    f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF usage_events "
                    f"FOR VALUES FROM ('{first.isoformat()}') TO ('{upto.isoformat()}')"))
            log.info("created partition %s", name)
        except Exception as exc:  # another process created it first
            if "already exists" not in str(exc):
                raise


_KEEPERS: dict[int, PartitionKeeper] = {}


async def ensure_partitions_ahead(db, today: date, months: int = 2) -> None:
    """The current month and the next `months`: the daily job and start-up."""
    if db.is_sqlite:
        return
    last = today
    for _ in range(months):
        last = next_month(month_start(last))
    await PartitionKeeper(db).ensure_range(today, last)


async def apply_retention(db, cutoff: date) -> int:
    """Delete raw events whose local day is before `cutoff` (rollups stay). Returns how many
    events went (PostgreSQL: whole months, so up to a month later than the day they expire)."""
    if db.is_sqlite:
        return await _retention_sqlite(db, cutoff)
    return await _retention_pg(db, cutoff)


async def _retention_sqlite(db, cutoff: date) -> int:
    from storage.fold import SqliteExec, fold_all_sqlite, folded_seq_sqlite

    deleted, position = 0, 0
    while True:
        async with db.write_connection() as conn:
            def step(sync_conn, start=position):
                ex = SqliteExec(sync_conn, driver=False)
                fold_all_sqlite(ex)  # only folded events go: their sums are in the rollups
                upto = min(start + _SCAN, folded_seq_sqlite(ex))
                if upto <= start:
                    return 0, start, True
                seqs = ex.rows("SELECT seq FROM usage_events WHERE seq > ? AND seq <= ? AND day < ? "
                               f"LIMIT {RETENTION_BATCH}", (start, upto, cutoff.isoformat()))
                if seqs:
                    ex.many("DELETE FROM usage_events WHERE seq = ?", seqs)
                # a full batch may leave more in this range: go on from its last seq
                end = seqs[-1][0] if len(seqs) == RETENTION_BATCH else upto
                return len(seqs), end, False

            count, position, done = await conn.run_sync(step)
        deleted += count
        if done:
            return deleted
        await asyncio.sleep(0)  # let ingest in between


async def _retention_pg(db, cutoff: date) -> int:
    keeper = PartitionKeeper(db)
    deleted = 0
    for name in await keeper.existing():
        m = _NAME.match(name)
        first = date(int(m.group(1)), int(m.group(2)), 1)
        if next_month(first) > cutoff:
            continue
        async with db.engine.connect() as conn:
            pages = (await conn.execute(text(f"SELECT pg_relation_size('{name}') / current_setting('block_size')::int"
                                             ))).scalar() or 0
        step = 2000
        for start in range(0, int(pages) + 1, step):  # ids leave in small transactions, by block range
            async with db.engine.begin() as conn:
                result = await conn.execute(text(
                    f"DELETE FROM usage_event_ids WHERE event_id IN (SELECT event_id FROM ONLY {name} "
                    f"WHERE ctid >= '({start},0)'::tid AND ctid < '({start + step},0)'::tid)"))
                deleted += result.rowcount or 0
        async with db.engine.connect() as conn:
            autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
            # CONCURRENTLY waits for every transaction using the table: no statement timeout (a
            # detach cut off halfway leaves the partition "detach pending"); back to the default after
            await autocommit.execute(text("SET statement_timeout = 0"))
            try:
                await autocommit.execute(text(f"ALTER TABLE usage_events DETACH PARTITION {name} CONCURRENTLY"))
                await autocommit.execute(text(f"DROP TABLE {name}"))
            finally:
                await autocommit.execute(text("RESET statement_timeout"))
        keeper._known.discard(first)
        log.info("retention dropped partition %s", name)
    return deleted
