"""Writing the usage ledger: events once per id, rollups folded from them (storage/fold.py);
rewriting what is stored (rebuilds, re-attribution, reprice) is storage/rewrites.py.

The hot path is one insert per commit group:
- SQLite: the driver's `executemany` of ready tuples on a dedicated connection in one worker
  thread (`INSERT OR IGNORE` with explicit `seq`s, so the rows really inserted are read back by
  `seq` range), nothing else; the fold follows on the same thread within a second.
- PostgreSQL: the group is COPied into a temporary table and one statement inserts the new ids
  (`ON CONFLICT DO NOTHING RETURNING`, so a duplicate never counts twice even when processes
  race), the events, and one `usage_fold_queue` row of per-key sums; any process folds it.
A request is answered only after the commit that holds its rows.

For other writers (provider buckets, corrections): `insert_events(conn, rows)` writes ledger
rows, negative amounts and token deltas included, inside the caller's transaction.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from decimal import Decimal

import orjson
from sqlalchemy import String, bindparam, literal_column, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from storage import fold
from storage.db import Database, connect_sqlite
from storage.fold import Deltas, SqliteExec
from storage.partitions import PartitionKeeper, month_start
from storage.types import INT_LIMIT, money_from_db, picodollars, quantize_money, wide_encode

log = logging.getLogger(__name__)

EVENT_COLUMNS = (
    "event_id", "occurred_at", "day", "received_at", "source", "subject", "user_key", "model", "provider", "team",
    "project", "input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens", "cost_usd",
    "price_source", "unpriced", "metadata", "cache_hit", "charge_team",
)
DAY, USER_KEY = 2, 6  # positions in an event tuple
MAX_EVENT_TOKENS = 10**12  # per count per event: 10^5 times the largest context window
MAX_EVENT_COST = Decimal(10**15)  # per event, either sign: a day's bill of the largest organisation x1000

_SQLITE_INSERT = (
    f"INSERT OR IGNORE INTO usage_events (seq, {', '.join(EVENT_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in range(len(EVENT_COLUMNS) + 1))})"
)
_PG_STAGE = "ingest_batch"
_PG_INGEST = (
    "WITH fresh AS (INSERT INTO usage_event_ids (event_id) SELECT event_id FROM ingest_batch ORDER BY event_id "
    "ON CONFLICT DO NOTHING RETURNING event_id), "
    f"ins AS (INSERT INTO usage_events ({', '.join(EVENT_COLUMNS)}) "
    f"SELECT {', '.join('b.' + c for c in EVENT_COLUMNS)} FROM ingest_batch b JOIN fresh USING (event_id) "
    "RETURNING event_id, user_key, day, model, input_tokens, cached_input_tokens, output_tokens, "
    "reasoning_tokens, cost_usd, unpriced, charge_team, project), "
    "m AS (SELECT user_key, day, model, SUM(input_tokens) AS i, SUM(cached_input_tokens) AS c, "
    "SUM(output_tokens) AS o, SUM(reasoning_tokens) AS r, SUM(cost_usd) AS usd, COUNT(*) AS n, "
    "COUNT(*) FILTER (WHERE unpriced) AS u FROM ins GROUP BY user_key, day, model), "
    "q AS (INSERT INTO usage_fold_queue (user_keys, days, models, input_tokens, cached_input_tokens, "
    "output_tokens, reasoning_tokens, cost_usd, events, unpriced_events) SELECT array_agg(user_key), "
    "array_agg(day), array_agg(model), array_agg(i), array_agg(c), array_agg(o), array_agg(r), array_agg(usd), "
    "array_agg(n), array_agg(u) FROM m HAVING COUNT(*) > 0), "
    f"{fold.PG_INGEST_STEP}"
    "SELECT event_id FROM ins"
)


def _sqlite_time(value: datetime) -> str:
    # the storage format SQLAlchemy's SQLite DateTime reads back (naive UTC)
    if value.tzinfo is UTC:  # the usual case: the same text without the "+00:00"
        return value.isoformat(" ", "microseconds")[:-6]
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


class RowEncoder:
    """Values -> the driver tuple of one event, in `EVENT_COLUMNS` order, in one pass."""

    def __init__(self, dialect: str) -> None:
        self.sqlite = dialect == "sqlite"

    def time(self, value: datetime):
        return _sqlite_time(value) if self.sqlite else value

    def row(self, event_id: str, occurred_at: datetime, day: date, received_at, source: str, subject: str,
            user_key: str, model: str, provider, team, project, input_tokens: int, cached_input_tokens: int,
            output_tokens: int, reasoning_tokens: int, cost_usd: Decimal, price_source: str, unpriced: bool,
            metadata, cache_hit: bool = False, charge_team: str = "", cost_pico: int | None = None) -> tuple:
        """`received_at` comes from `time()` (one ingest shares one, formatted once); `cost_pico`, when
        given, is `cost_usd` in whole picodollars (the pricer has it already)."""
        meta = None if metadata is None else orjson.dumps(metadata).decode()
        if self.sqlite:
            pico = picodollars(cost_usd) if cost_pico is None else cost_pico
            if not -INT_LIMIT < pico < INT_LIMIT:
                pico = wide_encode(pico)
            return (event_id, _sqlite_time(occurred_at), day.isoformat(), received_at, source, subject, user_key,
                    model, provider, team, project, input_tokens, cached_input_tokens, output_tokens,
                    reasoning_tokens, pico, price_source, 1 if unpriced else 0, meta,
                    1 if cache_hit else 0, charge_team)
        return (event_id, occurred_at, day, received_at, source, subject, user_key, model, provider, team, project,
                input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, quantize_money(cost_usd),
                price_source, bool(unpriced), meta, bool(cache_hit), charge_team)

    def from_dict(self, row: dict) -> tuple:
        """`cache_hit` may be left out (provider buckets and corrections are never cache hits)."""
        check_ledger_row(row)
        return self.row(*(self.time(row[c]) if c == "received_at" else row.get(c, False) if c == "cache_hit"
                          else row.get(c) or "" if c == "charge_team" else row[c] for c in EVENT_COLUMNS))


def check_ledger_row(row: dict) -> None:
    """Ranges every stored event keeps (either sign: corrections are negative)."""
    for name in ("input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens"):
        value = row[name]
        if type(value) is not int or not -MAX_EVENT_TOKENS <= value <= MAX_EVENT_TOKENS:
            raise ValueError(f"{name}: an integer of at most {MAX_EVENT_TOKENS:,} either way (got {value!r})")
    cost = row["cost_usd"]
    if not isinstance(cost, Decimal) or not cost.is_finite() or abs(cost) > MAX_EVENT_COST:
        raise ValueError(f"cost_usd: a finite Decimal of at most {MAX_EVENT_COST:,} either way (got {cost!r})")


class UsageWriter:
    """Group commit of event rows, and the background fold that keeps the rollups current.

    Each request hands its tuples over and waits for its own answer, which comes only after
    the commit that holds them. While one group is being written the next one gathers, so
    under load many small requests cost one durable commit, not one each. A group that fails
    is retried request by request, so one bad request cannot fail the others.
    """

    MAX_GROUP_EVENTS = 20_000
    SWEEP_SECONDS = 1.0  # fold at least this often (rows another process or a crash left)

    def __init__(self, db: Database, *, fold_interval: float = 0.25,
                 on_commit: Callable[[int, int], None] | None = None) -> None:
        self.db = db
        self.encoder = RowEncoder(db.dialect)
        self.fold_interval = fold_interval
        self.on_commit = on_commit  # (events in the group, requests in the group), for metrics
        self._pending: list[tuple[list[tuple], asyncio.Future]] = []
        self._task: asyncio.Task | None = None
        self._folder: asyncio.Task | None = None
        self._dirty: asyncio.Event | None = None
        self._fold_lock: asyncio.Lock | None = None
        self._closed = False
        self.folds = 0
        self.fold_failures = 0
        self._fold_started = 0  # fold passes begun / finished, for `wait_folded`
        self._fold_done = 0
        self._fold_changed: asyncio.Condition | None = None
        # SQLite: one plain sqlite3 connection on one worker thread writes and folds
        self._executor: ThreadPoolExecutor | None = None
        self._sqlite = None
        # PostgreSQL: a small asyncpg pool of our own (COPY, temporary staging table)
        self._pool = None
        self._partitions = PartitionKeeper(db) if not db.is_sqlite else None

    # -- public -------------------------------------------------------------------------------
    async def write(self, rows: list[dict]) -> list[dict]:
        """Store ledger rows given as dicts of `EVENT_COLUMNS` (duplicates skipped); return those
        inserted, after the commit."""
        positions = await self.write_rows([self.encoder.from_dict(r) for r in rows])
        return [rows[i] for i in positions]

    async def write_rows(self, rows: list[tuple]) -> list[int]:
        """Store encoded rows (`encoder.row`); return the positions of those inserted, after the commit."""
        if not rows:
            return []
        loop = asyncio.get_running_loop()
        if self._folder is None and not self._closed:
            self.start()
        future: asyncio.Future = loop.create_future()
        self._pending.append((rows, future))
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._drain(), name="usage-writer")
        return await future

    async def settle(self) -> None:
        """Wait for queued writes, then fold everything committed so far into the rollups."""
        while self._task is not None and not self._task.done():
            await asyncio.gather(self._task, return_exceptions=True)
        await self.fold(wait=True, everything=True)

    def start(self) -> None:
        """Start the background fold (idempotent; `serve` and tests with a running loop)."""
        if self._folder is None or self._folder.done():
            self._dirty = asyncio.Event()
            self._folder = asyncio.get_running_loop().create_task(self._fold_loop(), name="rollup-fold")

    async def aclose(self) -> None:
        """Finish acknowledged batches and fold them; release connections."""
        self._closed = True
        while self._task is not None and not self._task.done():
            await asyncio.gather(self._task, return_exceptions=True)
        if self._folder is not None:
            self._folder.cancel()
            await asyncio.gather(self._folder, return_exceptions=True)
        try:
            await self.fold(wait=True, everything=True)
        except Exception:
            log.exception("final rollup fold failed; the next start folds it")
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        self.close()

    def close(self) -> None:
        if self._executor is not None:
            self._executor.submit(self._close_sqlite).result()
            self._executor.shutdown(wait=True)
            self._executor = None

    # -- group commit --------------------------------------------------------------------------
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
            if self.on_commit is not None:
                self.on_commit(size, len(group))
            if self._dirty is not None:
                self._dirty.set()
            for (_, future), inserted in zip(group, answers, strict=True):
                _settle(future, inserted)

    async def _commit(self, batches: list[list[tuple]]) -> list[list[int]]:
        if self.db.is_sqlite:
            return await self._in_thread(self._commit_sqlite, batches)
        return await self._commit_pg(batches)

    async def _in_thread(self, fn, *args):
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="usage-writer")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _connection(self):
        if self._sqlite is None:
            self._sqlite = connect_sqlite(self.db.sqlite_path)
        return self._sqlite

    def _close_sqlite(self) -> None:
        if self._sqlite is not None:
            self._sqlite.close()
            self._sqlite = None

    def _commit_sqlite(self, batches: list[list[tuple]]) -> list[list[int]]:
        """The whole group in one transaction, on the writer thread. An id sent twice in one
        group belongs to the first request (INSERT OR IGNORE keeps the first)."""
        conn = self._connection()
        ex = SqliteExec(conn, driver=True)
        conn.execute("BEGIN IMMEDIATE")  # the write lock first: the seq base cannot change under us
        try:
            base = seq = fold.next_seq_base(ex)
            params = []
            for batch in batches:
                for row in batch:
                    seq += 1
                    params.append((seq, *row))
            conn.executemany(_SQLITE_INSERT, params)
            stored = conn.execute("SELECT seq FROM usage_events WHERE seq > ?", (base,)).fetchall()
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        answers: list[list[int]] = [[] for _ in batches]
        starts, offset = [], 0
        for batch in batches:
            starts.append(offset)
            offset += len(batch)
        index = 0
        for (value,) in stored:
            position = value - base - 1
            while index + 1 < len(batches) and position >= starts[index + 1]:
                index += 1
            answers[index].append(position - starts[index])
        return answers

    async def _pg_pool(self):
        if self._pool is None:
            import asyncpg

            async def init(conn) -> None:
                await conn.execute(
                    f"CREATE TEMP TABLE IF NOT EXISTS {_PG_STAGE} (LIKE usage_events INCLUDING DEFAULTS) "
                    "ON COMMIT DELETE ROWS")

            self._pool = await asyncpg.create_pool(self.db.asyncpg_dsn, min_size=1, max_size=3, init=init,
                                                   server_settings=self.db.server_settings or None)
        return self._pool

    async def _commit_pg(self, batches: list[list[tuple]]) -> list[list[int]]:
        owner: dict[str, tuple[int, int]] = {}
        unique: list[tuple] = []
        for b, batch in enumerate(batches):
            for p, row in enumerate(batch):
                if row[0] not in owner:
                    owner[row[0]] = (b, p)
                    unique.append(row)
        pool = await self._pg_pool()
        await self._partitions.ensure({month_start(row[DAY]) for row in unique})
        async with pool.acquire() as conn, conn.transaction():
            await conn.copy_records_to_table(_PG_STAGE, records=unique, columns=EVENT_COLUMNS)
            inserted = await conn.fetch(_PG_INGEST)
        answers: list[list[int]] = [[] for _ in batches]
        for (event_id,) in inserted:
            b, p = owner[event_id]
            answers[b].append(p)
        for answer in answers:
            answer.sort()
        return answers

    # -- the fold ------------------------------------------------------------------------------
    async def _fold_loop(self) -> None:
        assert self._dirty is not None
        sweep = max(self.SWEEP_SECONDS, self.fold_interval)
        while not self._closed:
            try:
                await asyncio.wait_for(self._dirty.wait(), sweep)
                await asyncio.sleep(self.fold_interval)  # let a window of commits gather
            except TimeoutError:
                pass
            self._dirty.clear()
            try:
                more = await self.fold()
            except Exception:
                self.fold_failures += 1
                log.exception("rollup fold failed; retrying (nothing was counted)")
                await asyncio.sleep(min(5.0, self.fold_interval * 4))
                self._dirty.set()
                continue
            if more:
                self._dirty.set()

    async def wait_folded(self, within: float) -> None:
        """Wait (at most `within` seconds) for a fold pass that begins after this call: what was committed
        before it is then in the rollups. Nothing is forced: the background fold keeps its pace."""
        if self._fold_changed is None:
            self._fold_changed = asyncio.Condition()
        target = self._fold_started + 1
        async with self._fold_changed:
            try:
                await asyncio.wait_for(self._fold_changed.wait_for(lambda: self._fold_done >= target), within)
            except TimeoutError:
                pass

    async def fold(self, *, wait: bool = False, everything: bool = False) -> bool:
        """One fold pass. True when more is left (a chunk limit, or another process folding)."""
        if self._fold_lock is None:
            self._fold_lock = asyncio.Lock()
        async with self._fold_lock:
            self._fold_started += 1
            try:
                return await self._fold_pass(wait, everything)
            finally:
                self._fold_done = self._fold_started
                if self._fold_changed is not None:
                    async with self._fold_changed:
                        self._fold_changed.notify_all()

    async def _fold_pass(self, wait: bool, everything: bool) -> bool:
        if self.db.is_sqlite:
            while True:
                folded = await self._in_thread(self._fold_sqlite)
                if not (everything and folded):
                    self.folds += 1
                    return bool(folded)
        pool = await self._pg_pool()
        async with pool.acquire() as conn:
            folded = await fold.fold_pg(conn, wait=wait)
        self.folds += 1
        return folded is None

    def _fold_sqlite(self) -> int:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            folded = fold.fold_sqlite(SqliteExec(conn, driver=True))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return folded


def _settle(future: asyncio.Future, result=None, *, exc: BaseException | None = None) -> None:
    if future.done():  # the caller went away
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)


def dialect_insert(session, table):
    name = session.bind.dialect.name if isinstance(session, AsyncSession) else session.dialect.name
    return (postgresql.insert if name == "postgresql" else sqlite.insert)(table)


def count_star():
    return literal_column("count(*)")


async def asyncpg_connection(conn_or_session):
    """The asyncpg connection under a SQLAlchemy AsyncConnection/AsyncSession (same transaction)."""
    conn = await conn_or_session.connection() if isinstance(conn_or_session, AsyncSession) else conn_or_session
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    if conn.in_transaction() and not driver.is_in_transaction():
        # SQLAlchemy's asyncpg adapter opens its transaction at the first statement it runs:
        # run one, so what we send on the driver is inside the caller's transaction
        await conn.exec_driver_sql("SELECT 1")
    return driver


# =========================================================================== ledger rows for other writers

async def insert_events(conn: AsyncConnection | AsyncSession, rows: Sequence[dict]) -> list[dict]:
    """Write ledger rows inside the caller's write transaction; return those really inserted.

    Rows are dicts of `EVENT_COLUMNS` (Decimal `cost_usd`, aware datetimes, local `day`);
    amounts and tokens may be negative (a correction of an earlier row). An `event_id` stored
    before is skipped. The rollups follow: folded within a second (SQLite), or queued in this
    transaction and folded by any process (PostgreSQL). Open the transaction with
    `Database.write_connection()` or `Database.write()`.
    """
    if not rows:
        return []
    for row in rows:
        check_ledger_row(row)
    dialect = conn.bind.dialect.name if isinstance(conn, AsyncSession) else conn.dialect.name
    encoder = RowEncoder(dialect)
    tuples = [encoder.from_dict(r) for r in rows]
    if dialect == "sqlite":
        def run(sync_conn) -> list[int]:
            ex = SqliteExec(sync_conn, driver=False)
            base = seq = fold.next_seq_base(ex)
            params = []
            for row in tuples:
                seq += 1
                params.append((seq, *row))
            ex.many(_SQLITE_INSERT, params)
            return [s - base - 1 for (s,) in ex.rows("SELECT seq FROM usage_events WHERE seq > ?", (base,))]

        if isinstance(conn, AsyncSession):
            positions = await conn.run_sync(lambda s: run(s.connection()))
        else:
            positions = await conn.run_sync(run)
        return [rows[i] for i in positions]
    engine = conn.bind if isinstance(conn, AsyncSession) else conn.engine
    await PartitionKeeper.for_engine(engine).ensure({month_start(r["day"]) for r in rows})
    driver = await asyncpg_connection(conn)
    seen: dict[str, int] = {}
    for i, row in enumerate(rows):
        seen.setdefault(row["event_id"], i)
    fresh = await driver.fetch(
        "INSERT INTO usage_event_ids (event_id) SELECT unnest($1::text[]) ORDER BY 1 ON CONFLICT DO NOTHING "
        "RETURNING event_id", sorted(seen))
    keep = sorted(seen[r[0]] for r in fresh)
    if not keep:
        return []
    marks = ", ".join(f"${i + 1}" for i in range(len(EVENT_COLUMNS)))
    await driver.executemany(f"INSERT INTO usage_events ({', '.join(EVENT_COLUMNS)}) VALUES ({marks})",
                             [tuples[i] for i in keep])
    inserted = [rows[i] for i in keep]
    deltas: Deltas = {}
    for r in inserted:
        fold.add_delta(deltas, (r["user_key"], r["day"], r["model"]), fold.Delta(
            r["input_tokens"], r["cached_input_tokens"], r["output_tokens"], r["reasoning_tokens"], r["cost_usd"],
            1, 1 if r["unpriced"] else 0))
    await fold.queue_deltas_pg(driver, deltas)
    team_deltas: fold.TeamDeltas = {}
    for r in inserted:
        fold.add_team_delta(team_deltas, fold.event_key(r["day"], r), fold.Delta(
            r["input_tokens"], r["cached_input_tokens"], r["output_tokens"], r["reasoning_tokens"], r["cost_usd"],
            1, 1 if r["unpriced"] else 0))
    await fold.queue_team_deltas_pg(driver, team_deltas)
    return inserted


# =========================================================================== reads exact to the event

async def month_spend(session: AsyncSession, month: str, first: date, last: date,
                      user_keys: Iterable[str]) -> dict[str, Decimal]:
    """Each person's spend in a local month, exact to the last committed event: the monthly
    rollup plus what is committed but not yet folded into it, in one statement."""
    users = sorted(set(user_keys))
    if not users:
        return {}
    if session.bind.dialect.name == "sqlite":
        marks = ",".join("?" * len(users))
        sql = (f"SELECT user_key, wide_sum(cost_usd) FROM (SELECT user_key, cost_usd FROM usage_monthly "
               f"WHERE month = ? AND user_key IN ({marks}) UNION ALL SELECT user_key, cost_usd FROM usage_events "
               "WHERE seq > (SELECT COALESCE(MAX(folded_seq), 0) FROM rollup_fold_state) AND day >= ? AND day <= ? "
               f"AND user_key IN ({marks})) GROUP BY user_key")
        params = (month, *users, first.isoformat(), last.isoformat(), *users)
        rows = await session.run_sync(lambda s: SqliteExec(s.connection(), driver=False).rows(sql, params))
        return {r[0]: money_from_db(r[1], "sqlite") for r in rows}
    query = text(
        "SELECT user_key, SUM(cost_usd) FROM (SELECT user_key, cost_usd FROM usage_monthly WHERE month = :month "
        "AND user_key = ANY(:users) UNION ALL SELECT u.user_key, u.cost_usd FROM usage_fold_queue q, "
        f"{fold.UNNEST} WHERE u.user_key = ANY(:users) AND u.day >= :first AND u.day <= :last) s GROUP BY user_key"
    ).bindparams(bindparam("users", type_=postgresql.ARRAY(String)))
    rows = await session.execute(query, {"month": month, "users": users, "first": first, "last": last})
    return {r[0]: Decimal(r[1]) for r in rows}
