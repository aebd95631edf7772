"""Writing usage: raw events once per id, rollups in the same transaction.

Rollup deltas are aggregated per batch in Python and applied with one upsert per
rollup table (`col = col + excluded.col`), only for the events this transaction really
inserted (`ON CONFLICT DO NOTHING RETURNING`), so a duplicate never counts twice even
when two processes race on the same id.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from sqlalchemy import Table, delete, func, insert, literal_column, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import MEASURES, UsageDaily, UsageDailyModel, UsageEvent, UsageMonthly

EVENTS: Table = UsageEvent.__table__
DAILY_MODEL: Table = UsageDailyModel.__table__
DAILY: Table = UsageDaily.__table__
MONTHLY: Table = UsageMonthly.__table__


@dataclass(slots=True)
class Measures:
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: Decimal = field(default_factory=Decimal)
    events: int = 0
    unpriced_events: int = 0

    def add_row(self, row: dict) -> None:
        self.input_tokens += row["input_tokens"]
        self.cached_input_tokens += row["cached_input_tokens"]
        self.output_tokens += row["output_tokens"]
        self.reasoning_tokens += row["reasoning_tokens"]
        self.cost_usd += row["cost_usd"]
        self.events += 1
        self.unpriced_events += row["unpriced"]

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name in MEASURES}


def dialect_insert(session: AsyncSession, table: Table):
    name = session.bind.dialect.name
    return (postgresql.insert if name == "postgresql" else sqlite.insert)(table)


async def insert_events(session: AsyncSession, rows: Sequence[dict]) -> list[dict]:
    """Insert event rows, skipping ids already stored; return the rows inserted."""
    if not rows:
        return []
    stmt = dialect_insert(session, EVENTS).on_conflict_do_nothing(index_elements=["event_id"])
    result = await session.execute(stmt.returning(EVENTS.c.event_id), list(rows))
    inserted = {r[0] for r in result}
    if len(inserted) == len(rows):
        return list(rows)
    return [row for row in rows if row["event_id"] in inserted]


def rollup_deltas(rows: Iterable[dict]):
    """Events -> per (user, day, model), (user, day) and (user, month) sums."""
    by_model: dict[tuple[str, date, str], Measures] = {}
    by_day: dict[tuple[str, date], Measures] = {}
    by_month: dict[tuple[str, str], Measures] = {}
    for row in rows:
        user, day = row["user_key"], row["day"]
        key = (user, day, row["model"])
        (by_model.get(key) or by_model.setdefault(key, Measures())).add_row(row)
        (by_day.get(key[:2]) or by_day.setdefault(key[:2], Measures())).add_row(row)
        month_key = (user, f"{day.year:04d}-{day.month:02d}")
        (by_month.get(month_key) or by_month.setdefault(month_key, Measures())).add_row(row)
    return by_model, by_day, by_month


async def add_to_rollups(session: AsyncSession, rows: Sequence[dict]) -> None:
    by_model, by_day, by_month = rollup_deltas(rows)
    await _upsert(session, DAILY_MODEL, ("user_key", "day", "model"), by_model)
    await _upsert(session, DAILY, ("user_key", "day"), by_day)
    await _upsert(session, MONTHLY, ("user_key", "month"), by_month)


async def _upsert(session: AsyncSession, table: Table, keys: tuple[str, ...], deltas: dict) -> None:
    if not deltas:
        return
    # Sorted keys: concurrent transactions lock rollup rows in one order (no deadlocks).
    values = [dict(zip(keys, key, strict=True)) | deltas[key].as_dict() for key in sorted(deltas)]
    stmt = dialect_insert(session, table)
    stmt = stmt.on_conflict_do_update(
        index_elements=list(keys),
        set_={name: table.c[name] + stmt.excluded[name] for name in MEASURES},
    )
    await session.execute(stmt, values)


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
        func.sum(func.cast(EVENTS.c.unpriced, EVENTS.c.input_tokens.type)),
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
