"""Read queries over the rollups (never the raw events) for cards, leaderboards, digests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import UsageDaily, UsageDailyModel, UsageMonthly


@dataclass(frozen=True)
class Totals:
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    events: int = 0

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


def _totals(row) -> Totals:
    if row is None:
        return Totals()
    return Totals(*(v if v is not None else 0 for v in row[:4]), row[4] or Decimal(0), row[5] or 0)


def _sums(table):
    return (
        func.sum(table.input_tokens),
        func.sum(table.cached_input_tokens),
        func.sum(table.output_tokens),
        func.sum(table.reasoning_tokens),
        func.sum(table.cost_usd),
        func.sum(table.events),
    )


@dataclass(frozen=True)
class Ranked:
    key: str
    totals: Totals


async def leaderboard_month(session: AsyncSession, month: str, limit: int | None = None) -> list[Ranked]:
    """Everyone with spend in `month`, by cost (ties by tokens, then key)."""
    m = UsageMonthly
    query = (
        select(m.user_key, m.input_tokens, m.cached_input_tokens, m.output_tokens, m.reasoning_tokens,
               m.cost_usd, m.events)
        .where(m.month == month)
        .order_by(m.cost_usd.desc(), (m.input_tokens + m.output_tokens).desc(), m.user_key)
    )
    if limit:
        query = query.limit(limit)
    return [Ranked(r[0], _totals(r[1:])) for r in await session.execute(query)]


async def leaderboard_days(session: AsyncSession, first: date, last: date, limit: int | None = None) -> list[Ranked]:
    d = UsageDaily
    cost = func.sum(d.cost_usd)
    tokens = func.sum(d.input_tokens + d.output_tokens)
    query = (
        select(d.user_key, *_sums(d))
        .where(d.day >= first, d.day <= last)
        .group_by(d.user_key)
        .order_by(cost.desc(), tokens.desc(), d.user_key)
    )
    if limit:
        query = query.limit(limit)
    return [Ranked(r[0], _totals(r[1:])) for r in await session.execute(query)]


async def totals_days(session: AsyncSession, first: date, last: date, user_key: str | None = None) -> Totals:
    d = UsageDaily
    query = select(*_sums(d)).where(d.day >= first, d.day <= last)
    if user_key is not None:
        query = query.where(d.user_key == user_key)
    return _totals((await session.execute(query)).one())


async def models_days(
    session: AsyncSession, first: date, last: date, user_key: str | None = None, limit: int | None = None
) -> list[tuple[str, Totals]]:
    d = UsageDailyModel
    query = select(d.model, *_sums(d)).where(d.day >= first, d.day <= last)
    if user_key is not None:
        query = query.where(d.user_key == user_key)
    query = query.group_by(d.model).order_by(func.sum(d.cost_usd).desc(), d.model)
    if limit:
        query = query.limit(limit)
    return [(r[0], _totals(r[1:])) for r in await session.execute(query)]


async def unpriced_models(session: AsyncSession, first: date, last: date) -> list[tuple[str, int, int]]:
    """(model, events, tokens) of events stored without a price in the window."""
    d = UsageDailyModel
    query = (
        select(d.model, func.sum(d.unpriced_events), func.sum(d.input_tokens + d.output_tokens))
        .where(d.day >= first, d.day <= last, d.unpriced_events > 0)
        .group_by(d.model)
        .order_by(func.sum(d.unpriced_events).desc())
    )
    return [(r[0], int(r[1]), int(r[2])) for r in await session.execute(query)]


async def daily_series(session: AsyncSession, first: date, last: date, user_key: str | None = None):
    """[(day, Totals)] for days with usage in the window."""
    d = UsageDaily
    query = select(d.day, *_sums(d)).where(d.day >= first, d.day <= last)
    if user_key is not None:
        query = query.where(d.user_key == user_key)
    query = query.group_by(d.day).order_by(d.day)
    return [(r[0], _totals(r[1:])) for r in await session.execute(query)]
