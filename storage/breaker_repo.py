"""`breaker_trips`: runaway-spend trips (bot/breaker/), one per subject per episode.

A trip is created by an INSERT of (subject, episode) where episode is one more than the
subject's last; the unique constraint lets exactly one process (or task) win when several
see the same burst. Status changes (pause, resume, ignore) are conditional UPDATEs that
name the status they expect, so a double click or two processes make one change.

An episode is open (no new trip for the subject) while the trip is paused, or until
`quiet_until`: an hour after an alert, a window after a resume, 24 h after "ignore".
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from storage.chunks import chunked
from storage.models import BreakerTrip, UsageDaily, UsageEvent


def is_open(trip: BreakerTrip, now: datetime) -> bool:
    return trip.status == "paused" or (trip.quiet_until is not None and trip.quiet_until > now)


async def last_trip(session: AsyncSession, subject: str) -> BreakerTrip | None:
    return await session.scalar(select(BreakerTrip).where(BreakerTrip.subject == subject)
                                .order_by(BreakerTrip.episode.desc()).limit(1))


async def open_subjects(session: AsyncSession, subjects: Iterable[str], now: datetime) -> set[str]:
    """Of `subjects`, those with an open episode (one query per 500)."""
    found: set[str] = set()
    for chunk in chunked(sorted(set(subjects))):
        found.update(await session.scalars(select(BreakerTrip.subject).where(
            BreakerTrip.subject.in_(chunk),
            or_(BreakerTrip.status == "paused", BreakerTrip.quiet_until > now))))
    return found


async def insert_trip(session: AsyncSession, **values: Any) -> BreakerTrip | None:
    """A new episode for values["subject"], or None when the subject's episode is open or another
    process inserted the same episode first. Runs in a savepoint: the caller's transaction goes on."""
    now = values["tripped_at"]
    last = await last_trip(session, values["subject"])
    if last is not None and is_open(last, now):
        return None
    trip = BreakerTrip(episode=(last.episode + 1) if last else 1, messages=[], **values)
    try:
        async with session.begin_nested():
            session.add(trip)
            await session.flush()
    except IntegrityError:
        return None
    return trip


async def get(session: AsyncSession, trip_id: int) -> BreakerTrip | None:
    return await session.get(BreakerTrip, trip_id)


async def change(session: AsyncSession, trip_id: int, *, expect: Iterable[str], **values: Any) -> bool:
    """Move a trip from one of the `expect` statuses; False when another click or process moved it first."""
    result = await session.execute(
        update(BreakerTrip).where(and_(BreakerTrip.id == trip_id, BreakerTrip.status.in_(list(expect))))
        .values(**values).execution_options(synchronize_session=False))
    return result.rowcount == 1


async def set_messages(session: AsyncSession, trip_id: int, messages: list[list[str]]) -> None:
    await session.execute(update(BreakerTrip).where(BreakerTrip.id == trip_id).values(messages=messages)
                          .execution_options(synchronize_session=False))


async def paused_trip(session: AsyncSession, user_key: str) -> BreakerTrip | None:
    """The person's paused trip, if any (the limits API answers `allowed: false` while it is)."""
    return await session.scalar(select(BreakerTrip).where(
        BreakerTrip.user_key == user_key, BreakerTrip.status == "paused").order_by(BreakerTrip.id.desc()).limit(1))


async def paused_subject(session: AsyncSession, subject: str) -> BreakerTrip | None:
    return await session.scalar(select(BreakerTrip).where(
        BreakerTrip.subject == subject, BreakerTrip.status == "paused").order_by(BreakerTrip.id.desc()).limit(1))


async def paused(session: AsyncSession) -> list[BreakerTrip]:
    return list(await session.scalars(select(BreakerTrip).where(BreakerTrip.status == "paused")
                                      .order_by(BreakerTrip.tripped_at)))


async def recent(session: AsyncSession, since: datetime, until: datetime | None = None,
                 limit: int = 20) -> list[BreakerTrip]:
    query = select(BreakerTrip).where(BreakerTrip.tripped_at >= since)
    if until is not None:
        query = query.where(BreakerTrip.tripped_at < until)
    return list(await session.scalars(query.order_by(BreakerTrip.tripped_at.desc()).limit(limit)))


async def due_auto_resume(session: AsyncSession, now: datetime) -> list[BreakerTrip]:
    return list(await session.scalars(select(BreakerTrip).where(
        BreakerTrip.status == "paused", BreakerTrip.auto_resume_at.is_not(None), BreakerTrip.auto_resume_at <= now)))


async def daily_spend(session: AsyncSession, user_key: str, first: date, before: date) -> Decimal:
    """The person's spend on local days [first, before) from the daily rollups."""
    value = await session.scalar(select(func.sum(UsageDaily.cost_usd)).where(
        UsageDaily.user_key == user_key, UsageDaily.day >= first, UsageDaily.day < before))
    return value or Decimal(0)


async def window_spend(session: AsyncSession, *, user_key: str, subjects: Iterable[str], since: datetime,
                       until: datetime) -> tuple[Decimal, str | None]:
    """Spend stored for `user_key` that happened in [since, until], every process's events included,
    and the model that spent most of it. Reads by the senders' ids (indexed), then checks the user."""
    subjects = sorted(set(subjects))[:500]
    where = (UsageEvent.subject.in_(subjects), UsageEvent.user_key == user_key,
             UsageEvent.occurred_at >= since, UsageEvent.occurred_at <= until,
             UsageEvent.day >= (since - timedelta(days=1)).date())
    total = await session.scalar(select(func.sum(UsageEvent.cost_usd)).where(*where))
    model = await session.scalar(select(UsageEvent.model).where(*where).group_by(UsageEvent.model)
                                 .order_by(func.count().desc()).limit(1))
    return total or Decimal(0), model
