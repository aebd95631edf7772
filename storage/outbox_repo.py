"""The `outbox` table: durable outgoing deliveries (bot/outbox.py), worked on as leased rows."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.leases import LeasedRows
from storage.models import OutboxMessage

ROWS = LeasedRows(OutboxMessage.__table__, "locked_until", first_retry=timedelta(seconds=15),
                  max_retry=timedelta(hours=1))


def enqueue(session: AsyncSession, *, msg_id: str, kind: str, payload: dict[str, Any], now: datetime) -> None:
    """Add a delivery to the caller's transaction (it commits or rolls back with it)."""
    session.add(OutboxMessage(msg_id=msg_id, kind=kind, payload=payload, created_at=now, next_attempt_at=now,
                              attempts=0))


def _due(now: datetime) -> ColumnElement[bool]:
    return and_(OutboxMessage.delivered_at.is_(None), OutboxMessage.next_attempt_at <= now, ROWS.free(now))


async def due(session: AsyncSession, now: datetime, limit: int) -> list[OutboxMessage]:
    """Undelivered rows whose next attempt is due and that nobody holds, oldest first."""
    return list(await session.scalars(select(OutboxMessage).where(_due(now)).order_by(OutboxMessage.id).limit(limit)))


async def take(session: AsyncSession, row_id: int, now: datetime, lease: timedelta) -> bool:
    """Lease one due row; False when another process has it (or it was delivered meanwhile)."""
    return await ROWS.take(session, and_(OutboxMessage.id == row_id, _due(now)), now=now, lease=lease) is not None


async def settle(session: AsyncSession, row_id: int, *, now: datetime, attempts: int, error: str | None) -> None:
    """Record attempt number `attempts` on a row: delivered, or the error and the next try after backoff.
    The lease is released either way."""
    values: dict[str, Any] = {"attempts": OutboxMessage.attempts + 1, "locked_until": None}
    if error is None:
        values.update(delivered_at=now, last_error=None)
    else:
        values.update(next_attempt_at=now + ROWS.backoff(attempts), last_error=error)
    await ROWS.settle(session, and_(OutboxMessage.id == row_id, OutboxMessage.delivered_at.is_(None)), **values)
