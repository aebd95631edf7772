"""Budgets: the one place that says what a person's limit is and where they stand.

The period is the calendar month in the organisation's time zone. The effective limit
is the standing monthly budget (admin-set or "from now on" approval, else the per-user
config, else the default) plus this month's approved "this month only" raises.
The /tokens card, digests and the limits API all read it from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock, month_key, next_month_first_day
from bot.config import Settings
from storage.models import Budget, BudgetRaise, UsageMonthly

ZERO = Decimal(0)


@dataclass(frozen=True)
class BudgetStatus:
    user_key: str
    period: str  # "YYYY-MM"
    standing_usd: Decimal
    raises_usd: Decimal
    limit_usd: Decimal
    spent_usd: Decimal
    resets_on: date  # first day of next month, local

    @property
    def remaining_usd(self) -> Decimal:
        return max(self.limit_usd - self.spent_usd, ZERO)

    @property
    def allowed(self) -> bool:
        return self.spent_usd < self.limit_usd

    @property
    def used_share(self) -> Decimal:
        if self.limit_usd <= 0:
            return Decimal(1) if self.spent_usd > 0 else ZERO
        return self.spent_usd / self.limit_usd


async def standing_budget(session: AsyncSession, settings: Settings, user_key: str) -> Decimal:
    stored = await session.get(Budget, user_key)
    if stored is not None:
        return stored.monthly_usd
    return settings.user_budgets.get(user_key, settings.default_monthly_usd)


async def month_raises(session: AsyncSession, user_key: str, month: str) -> Decimal:
    total = await session.scalar(
        select(func.sum(BudgetRaise.amount_usd)).where(BudgetRaise.user_key == user_key, BudgetRaise.month == month)
    )
    return total or ZERO


async def month_spend(session: AsyncSession, user_key: str, month: str) -> Decimal:
    row = await session.get(UsageMonthly, (user_key, month))
    return row.cost_usd if row is not None else ZERO


async def budget_status(
    session: AsyncSession, settings: Settings, clock: Clock, user_key: str, *, day: date | None = None
) -> BudgetStatus:
    day = day or clock.today()
    month = month_key(day)
    standing = await standing_budget(session, settings, user_key)
    raises = await month_raises(session, user_key, month)
    return BudgetStatus(
        user_key=user_key,
        period=month,
        standing_usd=standing,
        raises_usd=raises,
        limit_usd=standing + raises,
        spent_usd=await month_spend(session, user_key, month),
        resets_on=next_month_first_day(day),
    )
