"""`enforce_pushes` and `enforcer_health`: enforcer pushes as leased, versioned rows (bot/enforce/).

One row per (enforcer, subject). `mark` bumps its `version` inside the decision's transaction
(an INSERT ... ON CONFLICT DO UPDATE, atomic on both databases), so a push exists if and only if
the decision committed. A row is due while `version > pushed_version`; it is taken with a lease
(storage/leases.py, like the outbox), so one process at a time pushes a subject, in order, and
a newer decision can never be overwritten by an older push: the pusher reads the subject's state
*after* taking the lease and records the version it took, so a decision that commits meanwhile
leaves the row due again.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.leases import LeasedRows
from storage.models import EnforcePush, EnforcerHealth
from storage.usage import dialect_insert

ROWS = LeasedRows(EnforcePush.__table__, "locked_until", first_retry=timedelta(seconds=15),
                  max_retry=timedelta(minutes=10))


async def mark(session: AsyncSession, enforcer: str, subject: str, now: datetime) -> None:
    """A new version of `subject` for `enforcer`, due now, in the caller's transaction."""
    table = EnforcePush.__table__
    stmt = dialect_insert(session, table).values(enforcer=enforcer, subject=subject, version=1, pushed_version=0,
                                        created_at=now, next_attempt_at=now, attempts=0, detail={})
    stmt = stmt.on_conflict_do_update(
        index_elements=["enforcer", "subject"],
        set_={"version": table.c.version + 1, "next_attempt_at": now, "attempts": 0})
    await session.execute(stmt)


LONGEST_LEASE = timedelta(minutes=5)


def _due(now: datetime) -> ColumnElement[bool]:
    """Waiting for a push, its retry time come, nobody holding it. A retry time or lease further ahead
    than any backoff or lease could set means the clock jumped back: due now, not in hours."""
    return and_(EnforcePush.version > EnforcePush.pushed_version,
                or_(EnforcePush.next_attempt_at <= now, EnforcePush.next_attempt_at > now + ROWS.max_retry),
                or_(ROWS.free(now), EnforcePush.locked_until > now + LONGEST_LEASE))


async def due(session: AsyncSession, now: datetime, limit: int) -> list[EnforcePush]:
    return list(await session.scalars(select(EnforcePush).where(_due(now)).order_by(EnforcePush.id).limit(limit)))


async def take(session: AsyncSession, row_id: int, now: datetime, lease: timedelta) -> int | None:
    """Lease a due row; the version taken, or None when another process has it."""
    row = (await session.execute(
        update(EnforcePush).where(and_(EnforcePush.id == row_id, _due(now)))
        .values(locked_until=now + lease).returning(EnforcePush.version)
        .execution_options(synchronize_session=False))).first()
    return None if row is None else int(row[0])


async def settle(session: AsyncSession, row_id: int, *, version: int, now: datetime, error: str | None,
                 detail: dict[str, Any] | None = None) -> None:
    """What came of pushing `version`: pushed (later versions stay due), or the error and a retry."""
    where = EnforcePush.id == row_id
    if error is None:
        values: dict[str, Any] = {"pushed_version": case((EnforcePush.pushed_version > version,
                                                         EnforcePush.pushed_version), else_=version),
                                  "pushed_at": now, "last_error": None, "attempts": 0, "locked_until": None,
                                  "next_attempt_at": now}
        if detail is not None:
            values["detail"] = detail
    else:
        row = await session.get(EnforcePush, row_id)
        attempts = (row.attempts if row else 0) + 1
        values = {"attempts": attempts, "last_error": error[:500], "locked_until": None,
                  "next_attempt_at": now + ROWS.backoff(attempts)}
    await session.execute(update(EnforcePush).where(where).values(**values)
                          .execution_options(synchronize_session=False))


async def backlog(session: AsyncSession, enforcer: str | None = None) -> tuple[int, datetime | None]:
    """How many subjects wait for a push, and since when the oldest waits (its first version's time)."""
    query = select(func.count(), func.min(EnforcePush.created_at)).where(
        EnforcePush.version > EnforcePush.pushed_version)
    if enforcer is not None:
        query = query.where(EnforcePush.enforcer == enforcer)
    count, oldest = (await session.execute(query)).one()
    return int(count or 0), oldest


async def record_health(session: AsyncSession, enforcer: str, now: datetime, error: str | None) -> None:
    row = await session.get(EnforcerHealth, enforcer)
    if row is None:
        row = EnforcerHealth(enforcer=enforcer)
        session.add(row)
    if error is None:
        row.last_success_at, row.failing_since, row.told_at = now, None, None
    else:
        row.last_failure_at, row.last_error = now, error[:500]
        if row.failing_since is None:
            row.failing_since = now


async def claim_told(session: AsyncSession, enforcer: str, now: datetime, failing_for: timedelta) -> bool:
    """True for exactly one caller per failing spell that has lasted `failing_for` (admins told once)."""
    result = await session.execute(
        update(EnforcerHealth).where(EnforcerHealth.enforcer == enforcer, EnforcerHealth.told_at.is_(None),
                                     EnforcerHealth.failing_since.is_not(None),
                                     EnforcerHealth.failing_since <= now - failing_for)
        .values(told_at=now).execution_options(synchronize_session=False))
    return result.rowcount == 1


async def health(session: AsyncSession) -> dict[str, EnforcerHealth]:
    return {row.enforcer: row for row in await session.scalars(select(EnforcerHealth))}


async def rows_of(session: AsyncSession, enforcer: str | None = None) -> list[EnforcePush]:
    query = select(EnforcePush).order_by(EnforcePush.id)
    if enforcer is not None:
        query = query.where(EnforcePush.enforcer == enforcer)
    return list(await session.scalars(query))
