"""Rewriting the usage ledger after the fact: rollups rebuilt from the events, an id's events
re-attributed to a person (and team), events re-priced, local days relocated after a time zone
change. Each keeps the rollups exact: on SQLite everything committed is folded first, on
PostgreSQL the fold queue is drained under the fold lock (storage/fold.py). Writing new events
is storage/usage.py's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from storage import fold
from storage.db import Database
from storage.fold import SqliteExec
from storage.partitions import PartitionKeeper
from storage.types import money_from_db, picodollars, wide_encode
from storage.usage import asyncpg_connection

log = logging.getLogger(__name__)


async def rebuild_rollups(session: AsyncSession, user_keys: Iterable[str] | None = None) -> None:
    """Recompute rollups from raw events (all, or for some people) inside a write transaction.

    Everything committed is folded first (SQLite) or the queue drained under the fold lock with
    ingest held off (PostgreSQL), so no delta can be counted by both the rebuild and a fold.
    """
    keys = None if user_keys is None else sorted(set(user_keys))
    if session.bind.dialect.name == "sqlite":
        await session.run_sync(lambda s: _rebuild_sqlite(SqliteExec(s.connection(), driver=False), keys))
        return
    await session.execute(text(fold.NO_STATEMENT_TIMEOUT))  # every event is read: no 120 s limit
    await session.execute(text("LOCK TABLE usage_events IN SHARE MODE"))  # no ingest commits meanwhile
    driver = await asyncpg_connection(session)
    await driver.execute("SELECT pg_advisory_xact_lock($1)", fold.FOLD_LOCK)
    await fold.fold_pg_locked(driver)
    where = "WHERE user_key = ANY($1::text[])" if keys is not None else ""
    args = (keys,) if keys is not None else ()
    for table, _ in fold.ROLLUPS:
        await driver.execute(f"DELETE FROM {table} {where}", *args)
    measures = ("SUM(input_tokens), SUM(cached_input_tokens), SUM(output_tokens), SUM(reasoning_tokens), "
                "SUM(cost_usd), COUNT(*), COUNT(*) FILTER (WHERE unpriced)")
    cols = ", ".join(fold.MEASURES)
    await driver.execute(f"INSERT INTO usage_daily_model (user_key, day, model, {cols}) SELECT user_key, day, "
                         f"model, {measures} FROM usage_events {where} GROUP BY user_key, day, model", *args)
    await driver.execute(f"INSERT INTO usage_daily (user_key, day, {cols}) SELECT user_key, day, {measures} "
                         f"FROM usage_events {where} GROUP BY user_key, day", *args)
    await driver.execute(f"INSERT INTO usage_monthly (user_key, month, {cols}) SELECT user_key, "
                         f"to_char(day, 'YYYY-MM'), {measures} FROM usage_events {where} "
                         "GROUP BY user_key, to_char(day, 'YYYY-MM')", *args)
    if keys is None:
        await fold.team_rebuild_pg(driver)


def _rebuild_sqlite(ex: SqliteExec, keys: list[str] | None) -> None:
    fold.fold_all_sqlite(ex)
    where, args = "", ()
    if keys is not None:
        where, args = f"WHERE user_key IN ({','.join('?' * len(keys))})", tuple(keys)
    for table, _ in fold.ROLLUPS:
        ex.run(f"DELETE FROM {table} {where}", args)
    sums = ("wide_sum(input_tokens), wide_sum(cached_input_tokens), wide_sum(output_tokens), "
            "wide_sum(reasoning_tokens), wide_sum(cost_usd), COUNT(*), SUM(unpriced)")
    cols = ", ".join(fold.MEASURES)
    ex.run(f"INSERT INTO usage_daily_model (user_key, day, model, {cols}) SELECT user_key, day, model, {sums} "
           f"FROM usage_events {where} GROUP BY user_key, day, model", args)
    ex.run(f"INSERT INTO usage_daily (user_key, day, {cols}) SELECT user_key, day, {sums} FROM usage_events "
           f"{where} GROUP BY user_key, day", args)
    ex.run(f"INSERT INTO usage_monthly (user_key, month, {cols}) SELECT user_key, substr(day, 1, 7), {sums} "
           f"FROM usage_events {where} GROUP BY user_key, substr(day, 1, 7)", args)
    if keys is None:
        fold.team_rebuild_sqlite(ex)


async def reattribute(session: AsyncSession, subject: str, user_key: str, team: str | None = None) -> set[str]:
    """Point every event sent under `subject` at `user_key` (in the caller's write transaction);
    move their sums between the people's rollups by deltas. Returns the keys touched. `team`: the
    person's team, for the moved events that were charged to no team (an unlinked id's)."""
    team = team or ""
    if session.bind.dialect.name == "sqlite":
        return await session.run_sync(
            lambda s: _reattribute_sqlite(SqliteExec(s.connection(), driver=False), subject, user_key, team))
    driver = await asyncpg_connection(session)
    await driver.execute(fold.NO_STATEMENT_TIMEOUT)  # all of a subject's history moves, however long
    # ingest waits while the events move: a batch committing meanwhile is either moved here or,
    # committing after us, sees the new link in its after-commit check (bot/identities.py)
    await driver.execute("LOCK TABLE usage_events IN SHARE ROW EXCLUSIVE MODE")
    rows = await driver.fetch(
        f"SELECT {fold.PG_GROUP_SUMS} FROM usage_events WHERE subject = $1 AND user_key <> $2 "
        "GROUP BY user_key, day, model", subject, user_key)
    if not rows:
        return set()
    deltas = fold.deltas_from_pg_rows(rows, -1)
    for key, delta in fold.deltas_from_pg_rows(rows, 1, user_key=user_key).items():
        fold.add_delta(deltas, key, delta)
    team_rows = await driver.fetch(
        f"SELECT {fold.PG_TEAM_SUMS} FROM usage_events WHERE subject = $1 AND user_key <> $2 {fold.PG_TEAM_GROUP}",
        subject, user_key)
    team_deltas = fold.team_deltas_from_pg_rows(team_rows, -1)
    for key, delta in fold.team_deltas_from_pg_rows(team_rows, 1, user_key=user_key, no_team=team).items():
        fold.add_team_delta(team_deltas, key, delta)
    await driver.execute("UPDATE usage_events SET user_key = $1, charge_team = CASE WHEN charge_team = '' THEN $3 "
                         "ELSE charge_team END WHERE subject = $2 AND user_key <> $1", user_key, subject, team)
    await fold.queue_team_deltas_pg(driver, team_deltas)  # folded with the person deltas, next line
    await fold.apply_deltas_pg(driver, deltas)
    return {r[0] for r in rows} | {user_key}


def _reattribute_sqlite(ex: SqliteExec, subject: str, user_key: str, team: str = "") -> set[str]:
    fold.fold_all_sqlite(ex)  # every moved event is in the rollups before its sums move
    rows = ex.rows(f"SELECT {fold.SQLITE_GROUP_SUMS} FROM usage_events WHERE subject = ? AND user_key <> ? "
                   "GROUP BY user_key, day, model", (subject, user_key))
    if not rows:
        return set()
    deltas = fold.deltas_from_sqlite_rows(rows, -1)
    for key, delta in fold.deltas_from_sqlite_rows(rows, 1, user_key=user_key).items():
        fold.add_delta(deltas, key, delta)
    team_rows = ex.rows(f"SELECT {fold.SQLITE_TEAM_SUMS} FROM usage_events WHERE subject = ? AND user_key <> ? "
                        f"{fold.SQLITE_TEAM_GROUP}", (subject, user_key))
    team_deltas = fold.team_deltas_from_sqlite_rows(team_rows, -1)
    for key, delta in fold.team_deltas_from_sqlite_rows(team_rows, 1, user_key=user_key, no_team=team).items():
        fold.add_team_delta(team_deltas, key, delta)
    ex.run("UPDATE usage_events SET user_key = ?, charge_team = CASE WHEN charge_team = '' THEN ? ELSE charge_team "
           "END WHERE subject = ? AND user_key <> ?", (user_key, team, subject, user_key))
    fold.apply_deltas_sqlite(ex, deltas)
    fold.apply_team_deltas_sqlite(ex, team_deltas)
    return {r[0] for r in rows} | {user_key}


# =========================================================================== reprice and local days

REPRICE_COLUMNS = ("user_key", "day", "model", "provider", "occurred_at", "input_tokens", "cached_input_tokens",
                   "output_tokens", "reasoning_tokens", "cost_usd", "price_source", "unpriced", "project",
                   "charge_team")
Repricer = Callable[[dict[str, Any]], "tuple[Decimal, str, bool] | None"]


async def reprice_pass(db: Database, repricer: Repricer, *, include_priced: bool, batch: int = 2000) -> tuple[int, int]:
    """Price stored events again in batches (one write transaction each): `repricer(event)`
    gives (cost, price_source, unpriced) or None to keep it. Rollups follow by deltas.
    Events whose cost the source sent are never touched. Returns (examined, changed)."""
    where = "price_source <> 'source'" + ("" if include_priced else " AND unpriced")
    examined = changed = 0
    if db.is_sqlite:
        last = 0
        while True:
            async with db.write_connection() as conn:
                out = await conn.run_sync(
                    lambda c, after=last: _reprice_sqlite(SqliteExec(c, driver=False), where, after, batch, repricer))
            seen, moved, last = out
            examined += seen
            changed += moved
            if seen < batch:
                return examined, changed
    for partition in await PartitionKeeper(db).existing():
        last_tid = (0, 0)
        while True:
            async with db.write_connection() as conn:
                driver = await asyncpg_connection(conn)
                await driver.execute(fold.NO_STATEMENT_TIMEOUT)  # finding a batch may scan a whole partition
                rows = await driver.fetch(
                    f"SELECT ctid, {', '.join(REPRICE_COLUMNS)} FROM ONLY {partition} WHERE ctid > $1::tid "
                    f"AND {where} ORDER BY ctid LIMIT {batch} FOR UPDATE", last_tid)
                if not rows:
                    break
                last_tid = rows[-1][0]
                updates, deltas, team_deltas = _reprice_rows(
                    [(r[0], dict(zip(REPRICE_COLUMNS, r[1:], strict=True))) for r in rows], repricer)
                if updates:
                    await driver.executemany(
                        f"UPDATE ONLY {partition} SET cost_usd = $2, price_source = $3, unpriced = $4 "
                        "WHERE ctid = $1::tid", updates)
                    await driver.execute("SELECT pg_advisory_xact_lock($1)", fold.FOLD_LOCK)
                    await fold.queue_team_deltas_pg(driver, team_deltas)
                    await fold.apply_deltas_pg(driver, deltas)
                examined += len(rows)
                changed += len(updates)
    return examined, changed


def _reprice_rows(rows: list[tuple[Any, dict]], repricer: Repricer):
    updates, deltas, team_deltas = [], {}, {}
    for locator, event in rows:
        new = repricer(event)
        if new is None or (new[0], new[1], bool(new[2])) == (event["cost_usd"], event["price_source"],
                                                              bool(event["unpriced"])):
            continue
        cost, source, unpriced = new
        updates.append((locator, cost, source, bool(unpriced)))
        change = fold.Delta(cost_usd=cost - event["cost_usd"],
                            unpriced_events=int(bool(unpriced)) - int(bool(event["unpriced"])))
        fold.add_delta(deltas, (event["user_key"], event["day"], event["model"]), change)
        fold.add_team_delta(team_deltas, fold.event_key(event["day"], event), change)
    return updates, deltas, team_deltas


def _reprice_sqlite(ex: SqliteExec, where: str, after: int, batch: int, repricer: Repricer):
    fold.fold_all_sqlite(ex)
    rows = ex.rows(f"SELECT seq, {', '.join(REPRICE_COLUMNS)} FROM usage_events WHERE seq > ? AND {where} "
                   f"ORDER BY seq LIMIT {batch}", (after,))
    events = []
    for r in rows:
        event = dict(zip(REPRICE_COLUMNS, r[1:], strict=True))
        event["day"] = date.fromisoformat(event["day"])
        event["occurred_at"] = datetime.fromisoformat(event["occurred_at"]).replace(tzinfo=UTC)
        event["cost_usd"] = money_from_db(event["cost_usd"], "sqlite")
        events.append((r[0], event))
    updates, deltas, team_deltas = _reprice_rows(events, repricer)
    ex.many("UPDATE usage_events SET cost_usd = ?, price_source = ?, unpriced = ? WHERE seq = ?",
            [(wide_encode(picodollars(cost)), source, int(unp), seq) for seq, cost, source, unp in updates])
    fold.apply_deltas_sqlite(ex, deltas)
    fold.apply_team_deltas_sqlite(ex, team_deltas)
    return len(rows), len(updates), rows[-1][0] if rows else after


async def relocate_days(db: Database, local_day: Callable[[datetime], date], zone: str) -> None:
    """Recompute every event's local day (the organisation's time zone changed), then rebuild
    the rollups, in batches on SQLite and in one statement per partition on PostgreSQL."""
    if db.is_sqlite:
        last = 0
        while True:
            async with db.write_connection() as conn:
                last, done = await conn.run_sync(
                    lambda c, after=last: _relocate_sqlite(SqliteExec(c, driver=False), after, local_day))
            if done:
                break
    else:
        keeper = PartitionKeeper(db)
        async with db.engine.connect() as conn:
            await conn.execute(text(fold.NO_STATEMENT_TIMEOUT))  # every partition is read
            span = (await conn.execute(text("SELECT MIN(day), MAX(day) FROM usage_events"))).one()
        if span[0] is not None:
            await keeper.ensure_range(span[0], span[1], margin=1)
        async with db.write_connection() as conn:
            driver = await asyncpg_connection(conn)
            await driver.execute(fold.NO_STATEMENT_TIMEOUT)  # one statement over the whole ledger
            await driver.execute(
                "UPDATE usage_events SET day = (occurred_at AT TIME ZONE $1)::date "
                "WHERE day <> (occurred_at AT TIME ZONE $1)::date", zone)
    async with db.write() as session:
        await rebuild_rollups(session)


def _relocate_sqlite(ex: SqliteExec, after: int, local_day) -> tuple[int, bool]:
    rows = ex.rows("SELECT seq, occurred_at, day FROM usage_events WHERE seq > ? ORDER BY seq LIMIT 5000", (after,))
    changes = []
    for seq, occurred_at, day in rows:
        new = local_day(datetime.fromisoformat(occurred_at).replace(tzinfo=UTC)).isoformat()
        if new != day:
            changes.append((new, seq))
    ex.many("UPDATE usage_events SET day = ? WHERE seq = ?", changes)
    return (rows[-1][0] if rows else after), len(rows) < 5000


async def has_events(session: AsyncSession) -> bool:
    return (await session.execute(text("SELECT 1 FROM usage_events LIMIT 1"))).first() is not None
