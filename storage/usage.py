"""Writing usage: raw events once per id, rollups in the same transaction.

Rollup deltas are aggregated per batch in Python and applied with one upsert per
rollup table (`col = col + excluded.col`), only for the events this transaction really
inserted (`ON CONFLICT DO NOTHING RETURNING`), so a duplicate never counts twice even
when two processes race on the same id.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date

import orjson
from sqlalchemy import Table, delete, func, insert, literal_column, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from storage.db import Database, connect_sqlite
from storage.measures import Measures
from storage.models import MEASURES, UsageDaily, UsageDailyModel, UsageEvent, UsageMonthly
from storage.types import money_to_db

EVENTS: Table = UsageEvent.__table__
DAILY_MODEL: Table = UsageDailyModel.__table__
DAILY: Table = UsageDaily.__table__
MONTHLY: Table = UsageMonthly.__table__


def dialect_insert(session, table: Table):
    name = session.bind.dialect.name if isinstance(session, AsyncSession) else session.dialect.name
    return (postgresql.insert if name == "postgresql" else sqlite.insert)(table)


EVENT_COLUMNS = tuple(c.key for c in EVENTS.columns)
_SQLITE_INSERT = (
    f"INSERT OR IGNORE INTO usage_events ({', '.join(c.name for c in EVENTS.columns)}) "
    f"VALUES ({', '.join('?' for _ in EVENTS.columns)})"
)


def _sqlite_datetime(value) -> str:
    # the storage format SQLAlchemy's SQLite DateTime reads back (naive UTC)
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def _sqlite_event_tuples(rows: Sequence[dict]) -> list[tuple]:
    received = {}  # one ingest shares one received_at: format it once
    out = []
    for row in rows:
        meta = row["metadata"]
        at = row["received_at"]
        if at not in received:
            received[at] = _sqlite_datetime(at)
        out.append((
            row["event_id"], _sqlite_datetime(row["occurred_at"]), row["day"].isoformat(), received[at],
            row["source"], row["subject"], row["user_key"], row["model"], row["provider"], row["team"],
            row["project"], row["input_tokens"], row["cached_input_tokens"], row["output_tokens"],
            row["reasoning_tokens"], money_to_db(row["cost_usd"], "sqlite"), row["price_source"],
            int(row["unpriced"]), None if meta is None else orjson.dumps(meta).decode(),
            int(row.get("cache_hit", False)),
        ))
    return out


async def insert_events(conn: AsyncConnection, rows: Sequence[dict]) -> list[dict]:
    """Insert event rows, skipping ids already stored; return the rows really inserted.

    SQLite: the caller holds the write lock (BEGIN IMMEDIATE), so "which ids exist"
    cannot change under us; we ask, then insert the rest with the driver's executemany
    (SQLAlchemy's per-row processing would cost more than SQLite's own insert).
    PostgreSQL: concurrent transactions can race on an id, so the database decides:
    ON CONFLICT DO NOTHING RETURNING names the rows this transaction inserted.
    """
    if not rows:
        return []
    if conn.dialect.name == "sqlite":
        existing: set[str] = set()
        ids = [row["event_id"] for row in rows]
        for start in range(0, len(ids), 900):
            chunk = ids[start : start + 900]
            marks = ",".join("?" * len(chunk))
            result = await conn.exec_driver_sql(
                f"SELECT event_id FROM usage_events WHERE event_id IN ({marks})", tuple(chunk)
            )
            existing.update(r[0] for r in result)
        fresh = [row for row in rows if row["event_id"] not in existing]
        if fresh:
            await conn.exec_driver_sql(_SQLITE_INSERT, _sqlite_event_tuples(fresh))
        return fresh
    stmt = postgresql.insert(EVENTS).on_conflict_do_nothing(index_elements=["event_id"])
    result = await conn.execute(stmt.returning(EVENTS.c.event_id), list(rows))
    inserted = {r[0] for r in result}
    if len(inserted) == len(rows):
        return list(rows)
    return [row for row in rows if row["event_id"] in inserted]


class UsageWriter:
    """Group commit: concurrent ingest requests share one transaction and one fsync.

    Each request hands its rows over and waits for its own answer, which comes only
    after the commit that holds them. While one group is being written the next one
    gathers, so under load many small requests cost one durable commit, not one each.
    A group that fails is retried request by request, so one bad request cannot fail
    the others.
    """

    MAX_GROUP_EVENTS = 20_000

    def __init__(self, db: Database) -> None:
        self.db = db
        self._pending: list[tuple[list[dict], asyncio.Future]] = []
        self._task: asyncio.Task | None = None
        # SQLite: one plain sqlite3 connection on one worker thread does a whole group in
        # one hop, off the event loop (sqlite releases the GIL while it works).
        self._executor: ThreadPoolExecutor | None = None
        self._sqlite = None

    def close(self) -> None:
        if self._executor is not None:
            self._executor.submit(self._close_sqlite).result()
            self._executor.shutdown(wait=True)
            self._executor = None

    def _close_sqlite(self) -> None:
        if self._sqlite is not None:
            self._sqlite.close()
            self._sqlite = None

    async def write(self, rows: list[dict]) -> list[dict]:
        """Store rows (duplicates skipped); return those inserted, after the commit."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        # SQLite: the driver tuples and rollup sums are built here, by the request, while the
        # writer thread is busy in SQLite (which releases the GIL), not on its critical path.
        batch = _SqliteBatch.prepare(rows) if self.db.sqlite_path is not None else rows
        self._pending.append((batch, future))
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._drain(), name="usage-writer")
        return await future

    async def _drain(self) -> None:
        while self._pending:
            group, size = [], 0
            while self._pending and (not group or size + len(self._pending[0][0]) <= self.MAX_GROUP_EVENTS):
                batch, future = self._pending.pop(0)
                group.append((batch, future))
                size += len(batch)
            try:
                answers = await self._commit([batch for batch, _ in group])
            except Exception as exc:
                if len(group) == 1:
                    _settle(group[0][1], exc=exc)
                    continue
                for batch, future in group:  # isolate the failure
                    try:
                        _settle(future, (await self._commit([batch]))[0])
                    except Exception as single_exc:
                        _settle(future, exc=single_exc)
                continue
            for (_, future), inserted in zip(group, answers, strict=True):
                _settle(future, inserted)

    async def _commit(self, requests: list) -> list[list[dict]]:
        if self.db.sqlite_path is not None:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="usage-writer")
            return await asyncio.get_running_loop().run_in_executor(self._executor, self._commit_sqlite, requests)
        # An id sent twice within one group belongs to the first request that sent it.
        owner: dict[str, int] = {}
        unique: list[dict] = []
        for index, rows in enumerate(requests):
            for row in rows:
                if row["event_id"] not in owner:
                    owner[row["event_id"]] = index
                    unique.append(row)
        async with self.db.write_connection() as conn:
            inserted = await insert_events(conn, unique)
            await add_to_rollups(conn, inserted)
        answers: list[list[dict]] = [[] for _ in requests]
        for row in inserted:
            answers[owner[row["event_id"]]].append(row)
        return answers

    def _commit_sqlite(self, batches: list[_SqliteBatch]) -> list[list[dict]]:
        """The whole group in one transaction, on the writer thread."""
        if self._sqlite is None:
            self._sqlite = connect_sqlite(self.db.sqlite_path)
        conn = self._sqlite
        conn.execute("BEGIN IMMEDIATE")  # the write lock first: "which ids exist" can't change under us
        try:
            ids = [row["event_id"] for batch in batches for row in batch.rows]
            seen: set[str] = set()
            for start in range(0, len(ids), 900):
                chunk = ids[start : start + 900]
                found = conn.execute(
                    f"SELECT event_id FROM usage_events WHERE event_id IN ({','.join('?' * len(chunk))})", chunk
                )
                seen.update(r[0] for r in found)
            answers = []
            event_tuples: list[tuple] = []
            rollup_params: dict[str, list[tuple]] = {name: [] for name in _SQLITE_UPSERTS}
            for batch in batches:  # an id sent twice in one group belongs to the first request
                batch_ids = [row["event_id"] for row in batch.rows]
                if seen.isdisjoint(batch_ids):
                    fresh, tuples, rollups = batch.rows, batch.event_tuples, batch.rollup_params
                else:
                    fresh = [row for row in batch.rows if row["event_id"] not in seen]
                    tuples, rollups = _sqlite_event_tuples(fresh), _sqlite_rollup_params(fresh)
                seen.update(batch_ids)
                event_tuples += tuples
                for name, params in rollups:
                    rollup_params[name] += params
                answers.append(fresh)
            # one statement per table for the whole group: an upsert of a key twice adds twice
            if event_tuples:
                conn.executemany(_SQLITE_INSERT, event_tuples)
                for name, params in rollup_params.items():
                    conn.executemany(_SQLITE_UPSERTS[name], params)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return answers


@dataclass(slots=True)
class _SqliteBatch:
    """One request's rows with their driver tuples and rollup parameters, ready to execute."""

    rows: list[dict]
    event_tuples: list[tuple]
    rollup_params: list[tuple[str, list[tuple]]]

    @classmethod
    def prepare(cls, rows: list[dict]) -> _SqliteBatch:
        return cls(rows, _sqlite_event_tuples(rows), _sqlite_rollup_params(rows))

    def __len__(self) -> int:
        return len(self.rows)


def _settle(future: asyncio.Future, result=None, *, exc: BaseException | None = None) -> None:
    if future.done():  # the caller went away
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)


def rollup_deltas(rows: Iterable[dict]):
    """Events -> per (user, day, model), (user, day) and (user, month) sums.

    Sums per (user, day, model) first, then folds those into days and months: three
    passes over a few hundred keys instead of three additions per event.
    """
    sums: dict[tuple[str, date, str], list] = {}
    for row in rows:
        key = (row["user_key"], row["day"], row["model"])
        acc = sums.get(key)
        if acc is None:
            sums[key] = [row["input_tokens"], row["cached_input_tokens"], row["output_tokens"],
                         row["reasoning_tokens"], row["cost_usd"], 1, int(row["unpriced"])]
        else:
            acc[0] += row["input_tokens"]
            acc[1] += row["cached_input_tokens"]
            acc[2] += row["output_tokens"]
            acc[3] += row["reasoning_tokens"]
            acc[4] += row["cost_usd"]
            acc[5] += 1
            acc[6] += row["unpriced"]
    by_model = {key: Measures(*acc) for key, acc in sums.items()}
    by_day: dict[tuple[str, date], Measures] = {}
    by_month: dict[tuple[str, str], Measures] = {}
    for (user, day, _model), m in by_model.items():
        _fold(by_day, (user, day), m)
        _fold(by_month, (user, f"{day.year:04d}-{day.month:02d}"), m)
    return by_model, by_day, by_month


def _fold(target: dict, key: tuple, m: Measures) -> None:
    acc = target.get(key)
    if acc is None:
        target[key] = Measures(*m.as_tuple())
        return
    acc.input_tokens += m.input_tokens
    acc.cached_input_tokens += m.cached_input_tokens
    acc.output_tokens += m.output_tokens
    acc.reasoning_tokens += m.reasoning_tokens
    acc.cost_usd += m.cost_usd
    acc.events += m.events
    acc.unpriced_events += m.unpriced_events


async def add_to_rollups(conn: AsyncConnection, rows: Sequence[dict]) -> None:
    by_model, by_day, by_month = rollup_deltas(rows)
    await _upsert(conn, DAILY_MODEL, ("user_key", "day", "model"), by_model)
    await _upsert(conn, DAILY, ("user_key", "day"), by_day)
    await _upsert(conn, MONTHLY, ("user_key", "month"), by_month)


def _upsert_sql(table: Table, keys: tuple[str, ...]) -> str:
    columns = (*keys, *MEASURES)
    updates = ", ".join(f"{m} = {table.name}.{m} + excluded.{m}" for m in MEASURES)
    return (
        f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}"
    )


_SQLITE_UPSERTS = {
    table.name: _upsert_sql(table, keys)
    for table, keys in ((DAILY_MODEL, ("user_key", "day", "model")), (DAILY, ("user_key", "day")),
                        (MONTHLY, ("user_key", "month")))
}


def _sqlite_measure_params(deltas: dict) -> list[tuple]:
    params = []
    for key in sorted(deltas):
        m = deltas[key]
        params.append((
            *(k.isoformat() if isinstance(k, date) else k for k in key),
            m.input_tokens, m.cached_input_tokens, m.output_tokens, m.reasoning_tokens,
            money_to_db(m.cost_usd, "sqlite"), m.events, m.unpriced_events,
        ))
    return params


def _sqlite_rollup_params(rows: Sequence[dict]) -> list[tuple[str, list[tuple]]]:
    by_model, by_day, by_month = rollup_deltas(rows)
    return [
        (DAILY_MODEL.name, _sqlite_measure_params(by_model)),
        (DAILY.name, _sqlite_measure_params(by_day)),
        (MONTHLY.name, _sqlite_measure_params(by_month)),
    ]


async def _upsert(conn: AsyncConnection, table: Table, keys: tuple[str, ...], deltas: dict) -> None:
    if not deltas:
        return
    # Sorted keys: concurrent transactions lock rollup rows in one order (no deadlocks).
    ordered = sorted(deltas)
    if conn.dialect.name == "sqlite":
        await conn.exec_driver_sql(_SQLITE_UPSERTS[table.name], _sqlite_measure_params(deltas))
        return
    values = [dict(zip(keys, key, strict=True)) | deltas[key].as_dict() for key in ordered]
    stmt = postgresql.insert(table)
    stmt = stmt.on_conflict_do_update(
        index_elements=list(keys),
        set_={name: table.c[name] + stmt.excluded[name] for name in MEASURES},
    )
    await conn.execute(stmt, values)


async def rebuild_rollups(session: AsyncSession, user_keys: Iterable[str] | None = None) -> None:
    """Recompute rollups from raw events (all, or for some people), in SQL."""
    keys = None if user_keys is None else sorted(set(user_keys))
    for table in (DAILY_MODEL, DAILY, MONTHLY):
        stmt = delete(table)
        if keys is not None:
            stmt = stmt.where(table.c.user_key.in_(keys))
        await session.execute(stmt)

    sums = [
        func.sum(EVENTS.c.input_tokens),
        func.sum(EVENTS.c.cached_input_tokens),
        func.sum(EVENTS.c.output_tokens),
        func.sum(EVENTS.c.reasoning_tokens),
        func.sum(EVENTS.c.cost_usd),
        func.count(),
        func.count().filter(EVENTS.c.unpriced),  # PostgreSQL cannot CAST boolean AS bigint
    ]
    where = EVENTS.c.user_key.in_(keys) if keys is not None else True
    month = func.substr(func.cast(EVENTS.c.day, DAILY.c.user_key.type), 1, 7)
    groupings = (
        (DAILY_MODEL, [EVENTS.c.user_key, EVENTS.c.day, EVENTS.c.model], ["user_key", "day", "model"]),
        (DAILY, [EVENTS.c.user_key, EVENTS.c.day], ["user_key", "day"]),
        (MONTHLY, [EVENTS.c.user_key, month], ["user_key", "month"]),
    )
    for table, group_cols, names in groupings:
        query = select(*group_cols, *sums).where(where).group_by(*group_cols)
        await session.execute(insert(table).from_select([*names, *MEASURES], query))


async def reattribute(session: AsyncSession, subject: str, user_key: str) -> set[str]:
    """Point every event sent under `subject` at `user_key`; return the keys touched."""
    previous = await session.execute(
        select(EVENTS.c.user_key).where(EVENTS.c.subject == subject, EVENTS.c.user_key != user_key).distinct()
    )
    old_keys = {r[0] for r in previous}
    if not old_keys:
        return set()
    await session.execute(
        update(EVENTS).where(EVENTS.c.subject == subject, EVENTS.c.user_key != user_key).values(user_key=user_key)
    )
    touched = old_keys | {user_key}
    await rebuild_rollups(session, touched)
    return touched


def count_star():
    return literal_column("count(*)")
