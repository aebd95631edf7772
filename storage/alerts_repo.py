"""`alerts_sent`: the once-only claims of budget alerts (bot/budget_alerts.py)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.chunks import chunked
from storage.models import AlertSent
from storage.usage import dialect_insert


async def sent_in_month(session: AsyncSession, month: str, user_keys: Iterable[str]) -> set[tuple[str, str, str]]:
    """(user, kind, threshold) of the alerts already claimed this month for these people."""
    sent: set[tuple[str, str, str]] = set()
    for chunk in chunked(user_keys):
        sent.update((r.user_key, r.kind, r.threshold) for r in await session.scalars(
            select(AlertSent).where(AlertSent.month == month, AlertSent.user_key.in_(chunk))))
    return sent


async def claim(session: AsyncSession, claims: list[dict]) -> set[tuple[str, str, str]]:
    """Insert the claims, ignoring those someone already holds; the (user, kind, threshold) this
    transaction won (`ON CONFLICT DO NOTHING RETURNING`)."""
    stmt = dialect_insert(session, AlertSent.__table__).on_conflict_do_nothing()
    return {(r[0], r[1], r[2]) for r in await session.execute(
        stmt.returning(AlertSent.user_key, AlertSent.kind, AlertSent.threshold), claims)}
