"""Digest subscriptions and `digest_runs`, the once-only claims of digests (bot/digests/).

A run is keyed (channel, period, period_start). It is claimed first by INSERT (a conflict
means someone else has it), later taken over through its lease (storage/leases.py) once
the lease has run out; every later step is a conditional UPDATE on the claim token.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.leases import LeasedRows
from storage.models import DigestRun, DigestSubscription
from storage.usage import dialect_insert

RUNS = LeasedRows(DigestRun.__table__, "lease_until", first_retry=timedelta(minutes=2),
                  max_retry=timedelta(minutes=30))
Key = tuple[str, str, date]  # channel, period, first day covered


def _key(key: Key) -> ColumnElement[bool]:
    channel, period, period_start = key
    c = RUNS.table.c
    return and_(c.channel == channel, c.period == period, c.period_start == period_start)


async def subscriptions(session: AsyncSession) -> list[DigestSubscription]:
    """The stored subscriptions (`/tokens admin digest`), oldest first."""
    return list(await session.scalars(select(DigestSubscription).order_by(DigestSubscription.id)))


async def get_run(session: AsyncSession, key: Key) -> DigestRun | None:
    return await session.get(DigestRun, key)


async def insert_claim(session: AsyncSession, key: Key, token: str, now: datetime, lease: timedelta) -> bool:
    """The first claim of a run; False when the run exists already."""
    channel, period, period_start = key
    stmt = (
        dialect_insert(session, RUNS.table)
        .values(channel=channel, period=period, period_start=period_start, status="claimed",
                claimed_by=token, claimed_at=now, lease_until=now + lease, attempts=1)
        .on_conflict_do_nothing(index_elements=["channel", "period", "period_start"])
        .returning(RUNS.table.c.attempts)
    )
    return (await session.execute(stmt)).first() is not None


async def take_over(session: AsyncSession, key: Key, token: str, now: datetime, lease: timedelta, *,
                    retry_failed: bool) -> int | None:
    """Take a claim whose lease ran out (or, with `retry_failed`, a failed run); the attempt number."""
    status = RUNS.table.c.status
    takeable = and_(status == "claimed", RUNS.free(now))
    if retry_failed:
        takeable = or_(takeable, status == "failed")
    return await RUNS.take(session, and_(_key(key), takeable), now=now, lease=lease, count_attempt=True,
                           status="claimed", claimed_by=token, claimed_at=now)


async def update_held(session: AsyncSession, key: Key, token: str, **values: Any) -> bool:
    """Change a run this claim token still holds; False when another process took it over."""
    c = RUNS.table.c
    return await RUNS.settle(session, and_(_key(key), c.claimed_by == token, c.status == "claimed"), **values)
