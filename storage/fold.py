"""Folding the ledger into the rollups, exactly once, after the events are committed.

Ingest writes only events (and, on PostgreSQL, one queue row of rollup deltas per
transaction); the rollups (person x local day x model, person x day, person x month) are
brought up to date here, in the background, within a second.

SQLite (one writer at a time): events carry an increasing `seq`; `rollup_fold_state.folded_seq`
says how far the rollups go. A fold sums the events past it in SQL and advances it in the
same transaction, so a crash before the commit leaves both untouched and a fold that fails
is simply done again.

PostgreSQL (many processes, sequence values that commit out of order): each ingest
transaction commits its per-key deltas in a `usage_fold_queue` row together with its
events. A fold takes an advisory lock, deletes the queue rows it can see and adds them to
the rollups in one statement, so each delta is counted once whatever the interleaving.

Reads that must be exact to the event (budgets, the limits API) add the unfolded tail
(storage.usage.month_spend).
Anything that rewrites events (re-attribution, reprice, a rebuild) folds first, in its own
transaction, and then changes rollups by deltas (`apply_deltas`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from storage.measures import Measures
from storage.types import ADD_FAST_LIMIT, MONEY_SCALE, WIDE_MAX, picodollars, wide_decode, wide_encode

FOLD_LOCK = 0x746F6B656E626F74  # pg advisory lock key: b"tokenbot"
# PostgreSQL: lifts the connection's statement_timeout (storage/db.py) for one transaction, for
# work that must finish however much there is (a fold after a backlog, whole-ledger rewrites)
NO_STATEMENT_TIMEOUT = "SET LOCAL statement_timeout = 0"
FOLD_CHUNK = 100_000  # SQLite: at most this many seqs per fold transaction (bounded sums and pauses)
ROLLUPS = (
    ("usage_daily_model", ("user_key", "day", "model")),
    ("usage_daily", ("user_key", "day")),
    ("usage_monthly", ("user_key", "month")),
)
MEASURES = ("input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens", "cost_usd", "events",
            "unpriced_events")
WIDE = ("input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens", "cost_usd")
_P = 10**MONEY_SCALE


@dataclass(slots=True)
class Delta(Measures):
    """What to add to one (person, local day, model): the same figures, negative to take away."""

    def add(self, other: Delta, sign: int = 1) -> None:
        self.input_tokens += sign * other.input_tokens
        self.cached_input_tokens += sign * other.cached_input_tokens
        self.output_tokens += sign * other.output_tokens
        self.reasoning_tokens += sign * other.reasoning_tokens
        self.cost_usd += sign * other.cost_usd
        self.events += sign * other.events
        self.unpriced_events += sign * other.unpriced_events

    def is_zero(self) -> bool:
        return not (self.input_tokens or self.cached_input_tokens or self.output_tokens or self.reasoning_tokens
                    or self.cost_usd or self.events or self.unpriced_events)


Deltas = dict[tuple[str, date, str], Delta]


def add_delta(deltas: Deltas, key: tuple[str, date, str], delta: Delta, sign: int = 1) -> None:
    acc = deltas.get(key)
    if acc is None:
        acc = deltas[key] = Delta()
    acc.add(delta, sign)


# =========================================================================== SQLite

class SqliteExec:
    """The few calls the fold makes, over a plain sqlite3 connection or SQLAlchemy's (run_sync)."""

    def __init__(self, conn, *, driver: bool) -> None:
        self.conn = conn
        self.driver = driver  # a sqlite3.Connection (True) or a SQLAlchemy sync Connection

    def run(self, sql: str, params=()) -> None:
        if self.driver:
            self.conn.execute(sql, params)
        else:
            self.conn.exec_driver_sql(sql, tuple(params))

    def many(self, sql: str, rows: list) -> None:
        if not rows:
            return
        if self.driver:
            self.conn.executemany(sql, rows)
        else:
            self.conn.exec_driver_sql(sql, rows)

    def rows(self, sql: str, params=()) -> list[tuple]:
        if self.driver:
            return self.conn.execute(sql, params).fetchall()
        return [tuple(r) for r in self.conn.exec_driver_sql(sql, tuple(params)).fetchall()]


_WINDOW_DDL = (
    "CREATE TEMP TABLE IF NOT EXISTS fold_window (user_key TEXT, day TEXT, model TEXT, input_tokens, "
    "cached_input_tokens, output_tokens, reasoning_tokens, cost_usd, events INTEGER, unpriced_events INTEGER)"
)


def _split_sum(column: str) -> str:
    """An exact SUM of integer picodollars (each below 2^62) that cannot overflow: whole
    dollars and the remainders are summed apart and joined, in SQL while small."""
    units, parts = f"SUM({column} / {_P})", f"SUM({column} % {_P})"
    return (f"CASE WHEN abs({units}) < 4000000 THEN {units} * {_P} + {parts} "
            f"ELSE wide_join({units}, {parts}, {_P}) END")


def _window_fill_sql(wide_cost: bool) -> str:
    cost = "wide_sum(cost_usd)" if wide_cost else _split_sum("cost_usd")
    return (
        "INSERT INTO temp.fold_window SELECT user_key, day, model, SUM(input_tokens), SUM(cached_input_tokens), "
        f"SUM(output_tokens), SUM(reasoning_tokens), {cost}, COUNT(*), SUM(unpriced) "
        "FROM usage_events WHERE seq > ? AND seq <= ? GROUP BY user_key, day, model"
    )


def _wide_add_sql(target: str, column: str) -> str:
    a, b = f"{target}.{column}", f"excluded.{column}"
    limit = ADD_FAST_LIMIT
    return (f"{column} = CASE WHEN typeof({a}) = 'integer' AND typeof({b}) = 'integer' AND {a} < {limit} "
            f"AND {a} > -{limit} AND {b} < {limit} AND {b} > -{limit} THEN {a} + {b} ELSE wide_add({a}, {b}) END")


def _apply_window_sqls(wide: bool) -> list[str]:
    """The three upserts from temp.fold_window into the rollups."""
    def sums() -> str:
        parts = []
        for m in MEASURES:
            if m in WIDE:
                parts.append(f"wide_sum({m})" if wide else (_split_sum(m) if m == "cost_usd" else f"SUM({m})"))
            else:
                parts.append(f"SUM({m})")
        return ", ".join(parts)

    statements = []
    for table, keys in ROLLUPS:
        if table == "usage_daily_model":
            select = f"SELECT user_key, day, model, {', '.join(MEASURES)} FROM temp.fold_window WHERE true"
        elif table == "usage_daily":
            select = f"SELECT user_key, day, {sums()} FROM temp.fold_window WHERE true GROUP BY user_key, day"
        else:
            select = (f"SELECT user_key, substr(day, 1, 7), {sums()} FROM temp.fold_window WHERE true "
                      "GROUP BY user_key, substr(day, 1, 7)")
        updates = ", ".join(_wide_add_sql(table, m) if m in WIDE else f"{m} = {table}.{m} + excluded.{m}"
                            for m in MEASURES)
        statements.append(
            f"INSERT INTO {table} ({', '.join(keys)}, {', '.join(MEASURES)}) {select} "
            f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}"
        )
    return statements


_APPLY = {wide: _apply_window_sqls(wide) for wide in (False, True)}
_FILL = {wide: _window_fill_sql(wide) for wide in (False, True)}


def folded_seq_sqlite(ex: SqliteExec) -> int:
    rows = ex.rows("SELECT folded_seq FROM rollup_fold_state WHERE id = 1")
    if not rows:
        ex.run("INSERT INTO rollup_fold_state (id, folded_seq) VALUES (1, 0)")
        return 0
    return int(rows[0][0])


def next_seq_base(ex: SqliteExec) -> int:
    """The seq after which new events go: past every stored event and past the watermark, so
    no event can ever land at or below what was already folded (even after deletions)."""
    top = ex.rows("SELECT max(seq) FROM usage_events")[0][0] or 0
    return max(int(top), folded_seq_sqlite(ex))


def fold_sqlite(ex: SqliteExec, *, chunk: int = FOLD_CHUNK) -> int:
    """Fold events past the watermark (at most `chunk` seqs); the caller holds a write
    transaction. Returns how many events were folded (0: up to date)."""
    done = folded_seq_sqlite(ex)
    top = ex.rows("SELECT max(seq) FROM usage_events")[0][0] or 0
    if top <= done:
        return 0
    upto = min(int(top), done + chunk)
    wide = bool(ex.rows(
        "SELECT EXISTS (SELECT 1 FROM usage_events WHERE seq > ? AND seq <= ? AND typeof(cost_usd) <> 'integer')",
        (done, upto))[0][0])
    ex.run(_WINDOW_DDL)
    ex.run("DELETE FROM temp.fold_window")
    ex.run(_FILL[wide], (done, upto))
    count, big = ex.rows(
        "SELECT COALESCE(SUM(events), 0), COALESCE(MAX(typeof(cost_usd) <> 'integer' OR abs(cost_usd) >= ?), 0) "
        "FROM temp.fold_window", (ADD_FAST_LIMIT,))[0]
    for sql in _APPLY[wide or bool(big)]:  # a key's sum past 2^61: the days and months add exactly too
        ex.run(sql)
    team_fold_window_sqlite(ex, done, upto, wide)
    ex.run("UPDATE rollup_fold_state SET folded_seq = ? WHERE id = 1", (upto,))
    return int(count) or 1


def fold_all_sqlite(ex: SqliteExec) -> int:
    total = 0
    while (n := fold_sqlite(ex)) > 0:
        total += n
    return total


def apply_deltas_sqlite(ex: SqliteExec, deltas: Deltas) -> None:
    """Add deltas to the rollups (the caller folded first, in the same transaction), then drop
    rows left with no events (everything in them moved to another person)."""
    rows = [(user, day.isoformat(), model, wide_encode(d.input_tokens), wide_encode(d.cached_input_tokens),
             wide_encode(d.output_tokens), wide_encode(d.reasoning_tokens), wide_encode(picodollars(d.cost_usd)),
             d.events, d.unpriced_events)
            for (user, day, model), d in sorted(deltas.items()) if not d.is_zero()]
    if not rows:
        return
    ex.run(_WINDOW_DDL)
    ex.run("DELETE FROM temp.fold_window")
    ex.many("INSERT INTO temp.fold_window VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    for sql in _APPLY[True]:
        ex.run(sql)
    emptied = sorted({user for (user, _, _), d in deltas.items() if d.events < 0})
    for table, _ in ROLLUPS:
        for user in emptied:
            ex.run(f"DELETE FROM {table} WHERE user_key = ? AND events = 0", (user,))


def deltas_from_sqlite_rows(rows: Iterable[tuple], sign: int = 1, *, user_key: str | None = None) -> Deltas:
    """(user_key, day, model, in, cached, out, reasoning, cost, events, unpriced) rows -> Deltas."""
    out: Deltas = {}
    for r in rows:
        delta = Delta(wide_decode(r[3]), wide_decode(r[4]), wide_decode(r[5]), wide_decode(r[6]),
                      Decimal(wide_decode(r[7])).scaleb(-MONEY_SCALE), int(r[8]), int(r[9] or 0))
        day = r[1] if isinstance(r[1], date) else date.fromisoformat(r[1])
        add_delta(out, (user_key or r[0], day, r[2]), delta, sign)
    return out


SQLITE_GROUP_SUMS = (
    "user_key, day, model, wide_sum(input_tokens), wide_sum(cached_input_tokens), wide_sum(output_tokens), "
    "wide_sum(reasoning_tokens), wide_sum(cost_usd), COUNT(*), SUM(unpriced)"
)


# =========================================================================== PostgreSQL

_PG_ARRAYS = ("user_keys", "days", "models", *(f"{m}" for m in MEASURES))
UNNEST = (
    "unnest(q.user_keys, q.days, q.models, q.input_tokens, q.cached_input_tokens, q.output_tokens, "
    "q.reasoning_tokens, q.cost_usd, q.events, q.unpriced_events) AS u(user_key, day, model, input_tokens, "
    "cached_input_tokens, output_tokens, reasoning_tokens, cost_usd, events, unpriced_events)"
)


def _pg_sums() -> str:
    return ", ".join(f"SUM({m}) AS {m}" for m in MEASURES)


def _pg_upsert(table: str, keys: tuple[str, ...], select: str) -> str:
    updates = ", ".join(f"{m} = t.{m} + excluded.{m}" for m in MEASURES)
    return (f"INSERT INTO {table} AS t ({', '.join(keys)}, {', '.join(MEASURES)}) {select} "
            f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}")


# One statement: take every queue row this snapshot sees, sum per key, upsert the three
# rollups in key order (concurrent folds cannot run: the advisory lock), and name the people
# whose event count went down (a re-attribution) so their emptied rows can be dropped.
PG_FOLD = (
    "WITH taken AS (DELETE FROM usage_fold_queue RETURNING *), "
    f"d AS (SELECT u.* FROM taken q, {UNNEST}), "
    f"m AS (SELECT user_key, day, model, {_pg_sums()} FROM d GROUP BY user_key, day, model "
    f"HAVING {' OR '.join(f'SUM({m}) <> 0' for m in MEASURES)}), "
    "a AS (" + _pg_upsert("usage_daily_model", ("user_key", "day", "model"),
                          f"SELECT user_key, day, model, {', '.join(MEASURES)} FROM m "
                          "ORDER BY user_key, day, model") + " RETURNING 1), "
    "b AS (" + _pg_upsert("usage_daily", ("user_key", "day"),
                          f"SELECT user_key, day, {_pg_sums()} FROM m GROUP BY user_key, day "
                          "ORDER BY user_key, day") + " RETURNING 1), "
    "c AS (" + _pg_upsert("usage_monthly", ("user_key", "month"),
                          f"SELECT user_key, to_char(day, 'YYYY-MM'), {_pg_sums()} FROM m "
                          "GROUP BY user_key, to_char(day, 'YYYY-MM') ORDER BY 1, 2") + " RETURNING 1) "
    "SELECT (SELECT COUNT(*) FROM taken), (SELECT COALESCE(SUM(events), 0) FROM m), "
    "(SELECT COUNT(*) FROM a) + (SELECT COUNT(*) FROM b) + (SELECT COUNT(*) FROM c), "
    "ARRAY(SELECT DISTINCT user_key FROM m WHERE events < 0)"
)


async def fold_pg(conn, *, wait: bool = False) -> int | None:
    """Fold the queue (asyncpg connection, no transaction open). None when another process
    holds the fold lock (it folds; try later); else how many events were folded."""
    async with conn.transaction():
        await conn.execute(NO_STATEMENT_TIMEOUT)  # a fold undone by a timeout would only grow
        if wait:
            await conn.execute("SELECT pg_advisory_xact_lock($1)", FOLD_LOCK)
        elif not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", FOLD_LOCK):
            return None
        return await fold_pg_locked(conn)


async def fold_pg_locked(conn) -> int:
    """The fold itself, inside a transaction that holds the fold lock."""
    rows, events, _, emptied = await conn.fetchrow(PG_FOLD)
    await team_fold_pg_locked(conn)
    if emptied:
        for table, _ in ROLLUPS:
            await conn.execute(f"DELETE FROM {table} WHERE user_key = ANY($1::text[]) AND events = 0", emptied)
    return int(events) if rows else 0


PG_QUEUE_INSERT = (
    f"INSERT INTO usage_fold_queue ({', '.join(_PG_ARRAYS)}) VALUES ($1::text[], $2::date[], $3::text[], "
    "$4::numeric[], $5::numeric[], $6::numeric[], $7::numeric[], $8::numeric[], $9::bigint[], $10::bigint[])"
)


async def queue_deltas_pg(conn, deltas: Deltas) -> None:
    """Commit rollup deltas with the caller's transaction (asyncpg connection)."""
    items = [(k, d) for k, d in sorted(deltas.items()) if not d.is_zero()]
    if not items:
        return
    for _, d in items:
        for value in (d.input_tokens, d.cached_input_tokens, d.output_tokens, d.reasoning_tokens):
            if not -WIDE_MAX < value < WIDE_MAX:
                raise OverflowError("token delta beyond 10^38")
    await conn.execute(
        PG_QUEUE_INSERT,
        [k[0] for k, _ in items], [k[1] for k, _ in items], [k[2] for k, _ in items],
        [Decimal(d.input_tokens) for _, d in items], [Decimal(d.cached_input_tokens) for _, d in items],
        [Decimal(d.output_tokens) for _, d in items], [Decimal(d.reasoning_tokens) for _, d in items],
        [d.cost_usd for _, d in items], [d.events for _, d in items], [d.unpriced_events for _, d in items],
    )


async def apply_deltas_pg(conn, deltas: Deltas) -> None:
    """Add deltas to the rollups now, in the caller's transaction (asyncpg connection): under
    the fold lock, queued with everything pending and folded at once, so a re-attribution or
    reprice is visible as soon as it commits."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", FOLD_LOCK)
    await queue_deltas_pg(conn, deltas)
    await fold_pg_locked(conn)


PG_GROUP_SUMS = (
    "user_key, day, model, SUM(input_tokens), SUM(cached_input_tokens), SUM(output_tokens), "
    "SUM(reasoning_tokens), SUM(cost_usd), COUNT(*), COUNT(*) FILTER (WHERE unpriced)"
)


def deltas_from_pg_rows(rows: Iterable, sign: int = 1, *, user_key: str | None = None) -> Deltas:
    out: Deltas = {}
    for r in rows:
        delta = Delta(int(r[3]), int(r[4]), int(r[5]), int(r[6]), Decimal(r[7]), int(r[8]), int(r[9]))
        add_delta(out, (user_key or r[0], r[1], r[2]), delta, sign)
    return out


# =========================================================================== teams (0004_teams)
# Two team rollups, changed only where the person rollups are: `usage_team_monthly` (local month,
# team, person, model, project: team cards, the chargeback export) and `usage_team_daily` (local
# day, team: digests). Every event carries the team it was charged to when stored
# (`usage_events.charge_team`, "" none; bot/teams/assign.py decides), so rebuilds give the same
# answer and a member who leaves keeps past spend with the team it was spent for.
# SQLite: `fold_sqlite` adds the same seq window here. PostgreSQL: each ingest transaction
# commits a `team_fold_queue` row beside its `usage_fold_queue` row; `fold_pg_locked` drains
# both. Rewrites change them by deltas in their transaction; rebuilds recompute them.

TEAM_TABLE = "usage_team_monthly"
TEAM_DAILY = "usage_team_daily"
TEAM_KEYS = ("month", "team", "user_key", "model", "project")
TeamKey = tuple[str, str, str, str, str]  # local day (ISO), team, user_key, model, project
TeamDeltas = dict[TeamKey, Delta]


def add_team_delta(deltas: TeamDeltas, key: TeamKey, delta: Delta, sign: int = 1) -> None:
    acc = deltas.get(key)
    if acc is None:
        acc = deltas[key] = Delta()
    acc.add(delta, sign)


def event_key(day: date, event: dict) -> TeamKey:
    return (day.isoformat(), event.get("charge_team") or "", event["user_key"], event["model"],
            event.get("project") or "")


# =========================================================================== SQLite

def _upsert_set(table: str) -> str:
    return ", ".join(_wide_add_sql(table, m) if m in WIDE else f"{m} = {table}.{m} + excluded.{m}" for m in MEASURES)


def _team_sums(wide: bool, *, from_events: bool) -> str:
    def total(m: str) -> str:
        if not from_events:
            return f"wide_sum({m})" if m in WIDE else f"SUM({m})"
        if wide and m in WIDE:
            return f"wide_sum({m})"
        if m == "cost_usd":
            return _split_sum(m)
        return "SUM(unpriced)" if m == "unpriced_events" else "COUNT(*)" if m == "events" else f"SUM({m})"
    return ", ".join(total(m) for m in MEASURES)


def _team_fold_sqls(wide: bool) -> list[str]:
    cols = ", ".join(MEASURES)
    return [
        f"INSERT INTO {TEAM_TABLE} ({', '.join(TEAM_KEYS)}, {cols}) "
        f"SELECT substr(day, 1, 7), charge_team, user_key, model, COALESCE(project, ''), "
        f"{_team_sums(wide, from_events=True)} FROM usage_events WHERE seq > ? AND seq <= ? "
        "GROUP BY substr(day, 1, 7), charge_team, user_key, model, COALESCE(project, '') "
        f"ON CONFLICT ({', '.join(TEAM_KEYS)}) DO UPDATE SET {_upsert_set(TEAM_TABLE)}",
        f"INSERT INTO {TEAM_DAILY} (day, team, {cols}) SELECT day, charge_team, {_team_sums(wide, from_events=True)} "
        "FROM usage_events WHERE seq > ? AND seq <= ? GROUP BY day, charge_team "
        f"ON CONFLICT (day, team) DO UPDATE SET {_upsert_set(TEAM_DAILY)}",
    ]


_TEAM_FOLD = {wide: _team_fold_sqls(wide) for wide in (False, True)}


def team_fold_window_sqlite(ex: SqliteExec, done: int, upto: int, wide: bool) -> None:
    """Add events with done < seq <= upto (the person fold's window, same transaction)."""
    for sql in _TEAM_FOLD[wide]:
        ex.run(sql, (done, upto))


_TEAM_WINDOW_DDL = (
    "CREATE TEMP TABLE IF NOT EXISTS team_window (day TEXT, team TEXT, user_key TEXT, model TEXT, project TEXT, "
    "input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, cost_usd, events INTEGER, "
    "unpriced_events INTEGER)"
)


def apply_team_deltas_sqlite(ex: SqliteExec, deltas: TeamDeltas) -> None:
    rows = [(*key, wide_encode(d.input_tokens), wide_encode(d.cached_input_tokens), wide_encode(d.output_tokens),
             wide_encode(d.reasoning_tokens), wide_encode(picodollars(d.cost_usd)), d.events, d.unpriced_events)
            for key, d in sorted(deltas.items()) if not d.is_zero()]
    if not rows:
        return
    ex.run(_TEAM_WINDOW_DDL)
    ex.run("DELETE FROM temp.team_window")
    ex.many(f"INSERT INTO temp.team_window VALUES ({', '.join('?' * 12)})", rows)
    cols, sums = ", ".join(MEASURES), _team_sums(True, from_events=False)
    ex.run(f"INSERT INTO {TEAM_TABLE} ({', '.join(TEAM_KEYS)}, {cols}) SELECT substr(day, 1, 7), team, user_key, "
           f"model, project, {sums} FROM temp.team_window GROUP BY substr(day, 1, 7), team, user_key, model, project "
           f"ON CONFLICT ({', '.join(TEAM_KEYS)}) DO UPDATE SET {_upsert_set(TEAM_TABLE)}")
    ex.run(f"INSERT INTO {TEAM_DAILY} (day, team, {cols}) SELECT day, team, {sums} FROM temp.team_window "
           f"GROUP BY day, team ON CONFLICT (day, team) DO UPDATE SET {_upsert_set(TEAM_DAILY)}")
    for user in sorted({k[2] for k, d in deltas.items() if d.events < 0}):
        ex.run(f"DELETE FROM {TEAM_TABLE} WHERE user_key = ? AND events = 0", (user,))
    if any(d.events < 0 for d in deltas.values()):
        ex.run(f"DELETE FROM {TEAM_DAILY} WHERE events = 0")


def team_deltas_from_sqlite_rows(rows: Iterable[tuple], sign: int = 1, *, user_key: str | None = None,
                                 no_team: str = "") -> TeamDeltas:
    """(day, team, user_key, model, project, in, cached, out, reasoning, cost, events, unpriced) rows;
    `user_key` and `no_team` (for rows in no team) re-key them (a re-attribution's new side)."""
    out: TeamDeltas = {}
    for r in rows:
        delta = Delta(wide_decode(r[5]), wide_decode(r[6]), wide_decode(r[7]), wide_decode(r[8]),
                      Decimal(wide_decode(r[9])).scaleb(-MONEY_SCALE), int(r[10]), int(r[11] or 0))
        add_team_delta(out, (str(r[0]), r[1] or no_team, user_key or r[2], r[3], r[4]), delta, sign)
    return out


SQLITE_TEAM_SUMS = (
    "day, charge_team, user_key, model, COALESCE(project, ''), wide_sum(input_tokens), "
    "wide_sum(cached_input_tokens), wide_sum(output_tokens), wide_sum(reasoning_tokens), wide_sum(cost_usd), "
    "COUNT(*), SUM(unpriced)"
)
SQLITE_TEAM_GROUP = "GROUP BY day, charge_team, user_key, model, COALESCE(project, '')"
_SQLITE_EVENT_SUMS = ("wide_sum(input_tokens), wide_sum(cached_input_tokens), wide_sum(output_tokens), "
                      "wide_sum(reasoning_tokens), wide_sum(cost_usd), COUNT(*), SUM(unpriced)")


def team_rebuild_sqlite(ex: SqliteExec) -> None:
    """Recompute both team rollups from the events (the caller folded first)."""
    cols = ", ".join(MEASURES)
    ex.run(f"DELETE FROM {TEAM_TABLE}")
    ex.run(f"DELETE FROM {TEAM_DAILY}")
    ex.run(f"INSERT INTO {TEAM_TABLE} ({', '.join(TEAM_KEYS)}, {cols}) SELECT substr(day, 1, 7), charge_team, "
           f"user_key, model, COALESCE(project, ''), {_SQLITE_EVENT_SUMS} FROM usage_events "
           "GROUP BY substr(day, 1, 7), charge_team, user_key, model, COALESCE(project, '')")
    ex.run(f"INSERT INTO {TEAM_DAILY} (day, team, {cols}) SELECT day, charge_team, {_SQLITE_EVENT_SUMS} "
           "FROM usage_events GROUP BY day, charge_team")


# =========================================================================== PostgreSQL

_TEAM_ARRAYS = ("teams", "user_keys", "days", "models", "projects", *MEASURES)
TEAM_UNNEST = (
    "unnest(q.teams, q.user_keys, q.days, q.models, q.projects, q.input_tokens, q.cached_input_tokens, "
    "q.output_tokens, q.reasoning_tokens, q.cost_usd, q.events, q.unpriced_events) AS u(team, user_key, day, "
    "model, project, input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, cost_usd, events, "
    "unpriced_events)"
)
_TEAM_SUMS = ", ".join(f"SUM({m}) AS {m}" for m in MEASURES)
_PG_TEAM_SET = ", ".join(f"{m} = t.{m} + excluded.{m}" for m in MEASURES)
PG_TEAM_FOLD = (
    "WITH taken AS (DELETE FROM team_fold_queue RETURNING *), "
    f"d AS (SELECT u.* FROM taken q, {TEAM_UNNEST}), "
    f"m AS (SELECT day, team, user_key, model, project, {_TEAM_SUMS} FROM d GROUP BY day, team, user_key, model, "
    f"project HAVING {' OR '.join(f'SUM({m}) <> 0' for m in MEASURES)}), "
    f"a AS (INSERT INTO {TEAM_TABLE} AS t ({', '.join(TEAM_KEYS)}, {', '.join(MEASURES)}) "
    f"SELECT to_char(day, 'YYYY-MM'), team, user_key, model, project, {_TEAM_SUMS} FROM m "
    "GROUP BY to_char(day, 'YYYY-MM'), team, user_key, model, project ORDER BY 1, 2, 3, 4, 5 "
    f"ON CONFLICT ({', '.join(TEAM_KEYS)}) DO UPDATE SET {_PG_TEAM_SET} RETURNING 1), "
    f"b AS (INSERT INTO {TEAM_DAILY} AS t (day, team, {', '.join(MEASURES)}) "
    f"SELECT day, team, {_TEAM_SUMS} FROM m GROUP BY day, team ORDER BY 1, 2 "
    f"ON CONFLICT (day, team) DO UPDATE SET {_PG_TEAM_SET} RETURNING 1) "
    "SELECT (SELECT COUNT(*) FROM a) + (SELECT COUNT(*) FROM b), "
    "ARRAY(SELECT DISTINCT user_key FROM m WHERE events < 0)"
)
# the ingest statement's extra step (storage/usage.py `_PG_INGEST`): one queue row per transaction
PG_INGEST_STEP = (
    "tm AS (SELECT day, charge_team, user_key, model, COALESCE(project, '') AS project, "
    "SUM(input_tokens) AS i, SUM(cached_input_tokens) AS c, SUM(output_tokens) AS o, SUM(reasoning_tokens) AS r, "
    "SUM(cost_usd) AS usd, COUNT(*) AS n, COUNT(*) FILTER (WHERE unpriced) AS u FROM ins "
    "GROUP BY 1, 2, 3, 4, 5), "
    f"tq AS (INSERT INTO team_fold_queue ({', '.join(_TEAM_ARRAYS)}) "
    "SELECT array_agg(charge_team), array_agg(user_key), "
    "array_agg(day), array_agg(model), array_agg(project), array_agg(i), array_agg(c), array_agg(o), "
    "array_agg(r), array_agg(usd), array_agg(n), array_agg(u) FROM tm HAVING COUNT(*) > 0) "
)


async def team_fold_pg_locked(conn) -> None:
    _, emptied = await conn.fetchrow(PG_TEAM_FOLD)
    if emptied:
        await conn.execute(f"DELETE FROM {TEAM_TABLE} WHERE user_key = ANY($1::text[]) AND events = 0", emptied)
        await conn.execute(f"DELETE FROM {TEAM_DAILY} WHERE events = 0")


async def queue_team_deltas_pg(conn, deltas: TeamDeltas) -> None:
    items = [(k, d) for k, d in sorted(deltas.items()) if not d.is_zero()]
    if not items:
        return
    for _, d in items:
        for value in (d.input_tokens, d.cached_input_tokens, d.output_tokens, d.reasoning_tokens):
            if not -WIDE_MAX < value < WIDE_MAX:
                raise OverflowError("token delta beyond 10^38")
    types = ("text", "text", "date", "text", "text") + ("numeric",) * 5 + ("bigint",) * 2
    marks = ", ".join(f"${i + 1}::{t}[]" for i, t in enumerate(types))
    await conn.execute(
        f"INSERT INTO team_fold_queue ({', '.join(_TEAM_ARRAYS)}) VALUES ({marks})",
        [k[1] for k, _ in items], [k[2] for k, _ in items], [date.fromisoformat(k[0]) for k, _ in items],
        [k[3] for k, _ in items], [k[4] for k, _ in items],
        [Decimal(d.input_tokens) for _, d in items], [Decimal(d.cached_input_tokens) for _, d in items],
        [Decimal(d.output_tokens) for _, d in items], [Decimal(d.reasoning_tokens) for _, d in items],
        [d.cost_usd for _, d in items], [d.events for _, d in items], [d.unpriced_events for _, d in items],
    )


PG_TEAM_SUMS = (
    "day, charge_team, user_key, model, COALESCE(project, ''), SUM(input_tokens), "
    "SUM(cached_input_tokens), SUM(output_tokens), SUM(reasoning_tokens), SUM(cost_usd), COUNT(*), "
    "COUNT(*) FILTER (WHERE unpriced)"
)
PG_TEAM_GROUP = "GROUP BY day, charge_team, user_key, model, COALESCE(project, '')"
_PG_EVENT_SUMS = ("SUM(input_tokens), SUM(cached_input_tokens), SUM(output_tokens), SUM(reasoning_tokens), "
                  "SUM(cost_usd), COUNT(*), COUNT(*) FILTER (WHERE unpriced)")


def team_deltas_from_pg_rows(rows: Iterable, sign: int = 1, *, user_key: str | None = None,
                             no_team: str = "") -> TeamDeltas:
    out: TeamDeltas = {}
    for r in rows:
        delta = Delta(int(r[5]), int(r[6]), int(r[7]), int(r[8]), Decimal(r[9]), int(r[10]), int(r[11]))
        add_team_delta(out, (r[0].isoformat(), r[1] or no_team, user_key or r[2], r[3], r[4]), delta, sign)
    return out


async def team_rebuild_pg(driver) -> None:
    cols = ", ".join(MEASURES)
    await driver.execute(f"DELETE FROM {TEAM_TABLE}")
    await driver.execute(f"DELETE FROM {TEAM_DAILY}")
    await driver.execute(f"INSERT INTO {TEAM_TABLE} ({', '.join(TEAM_KEYS)}, {cols}) SELECT to_char(day, 'YYYY-MM'), "
                         f"charge_team, user_key, model, COALESCE(project, ''), {_PG_EVENT_SUMS} FROM usage_events "
                         "GROUP BY to_char(day, 'YYYY-MM'), charge_team, user_key, model, COALESCE(project, '')")
    await driver.execute(f"INSERT INTO {TEAM_DAILY} (day, team, {cols}) SELECT day, charge_team, {_PG_EVENT_SUMS} "
                         "FROM usage_events GROUP BY day, charge_team")
