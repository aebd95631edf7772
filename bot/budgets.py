"""Budgets: the one place that says what a person's limit is and where they stand.

The period is the calendar month in the organisation's time zone. The effective limit
is the standing monthly budget (admin-set or "from now on" approval, else the per-user
config, else the default) plus this month's approved "this month only" raises.
The /tokens card, digests and the limits API all read it from here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_CEILING, Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock, month_first_day, month_key, month_last_day, next_month_first_day
from bot.config import Settings
from storage import teams_repo
from storage.chunks import chunked
from storage.models import Budget, BudgetRaise, UsageDaily
from storage.usage import month_spend

ZERO = Decimal(0)
TREND_DAYS = 14  # the daily trend shown on the card and to an approver: the last 14 local days


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


async def budget_statuses(
    session: AsyncSession, settings: Settings, user_keys: Iterable[str], day: date
) -> dict[str, BudgetStatus]:
    """Where each person stands in `day`'s month: three queries for any number of people.

    Spend is the monthly rollup plus the events not yet folded into it (storage.usage.month_spend).
    Precedence of the standing budget: a stored `budgets` row (admin-set or a "from now
    on" approval), else `[budgets.users]`, else `default_monthly_usd`.
    """
    month = month_key(day)
    people = sorted(set(user_keys))
    stored: dict[str, Decimal] = {}
    raises: dict[str, Decimal] = {}
    spent: dict[str, Decimal] = {}
    for chunk in chunked(people):
        stored.update((await session.execute(
            select(Budget.user_key, Budget.monthly_usd).where(Budget.user_key.in_(chunk)))).all())
        raises.update((await session.execute(
            select(BudgetRaise.user_key, func.sum(BudgetRaise.amount_usd))
            .where(BudgetRaise.month == month, BudgetRaise.user_key.in_(chunk))
            .group_by(BudgetRaise.user_key))).all())
        # exact to the last event: the monthly rollup plus what is not folded into it yet
        spent.update(await month_spend(session, month, month_first_day(day), month_last_day(day), chunk))
    # a team's raise requests are keyed "team:<name>": its budget is [teams.<name>] monthly_usd (SPEC 13)
    teams = {u: u[5:] for u in people if u.startswith("team:")}
    if teams:
        spent.update({f"team:{k}": v for k, v in (await teams_repo.team_month_spend(
            session, month, month_first_day(day), month_last_day(day), list(teams.values()))).items()})
    statuses = {}
    for user in people:
        standing = stored.get(user, settings.user_budgets.get(user, settings.default_monthly_usd))
        if user in teams:
            config = settings.teams.get(teams[user])
            standing = config.monthly_usd if config is not None and config.monthly_usd is not None else ZERO
        extra = raises.get(user) or ZERO
        statuses[user] = BudgetStatus(
            user_key=user, period=month, standing_usd=standing, raises_usd=extra, limit_usd=standing + extra,
            spent_usd=spent.get(user) or ZERO, resets_on=next_month_first_day(day),
        )
    return statuses


async def standing_budget(session: AsyncSession, settings: Settings, user_key: str) -> Decimal:
    stored = await session.get(Budget, user_key)
    if stored is not None:
        return stored.monthly_usd
    return settings.user_budgets.get(user_key, settings.default_monthly_usd)


async def budget_status(
    session: AsyncSession, settings: Settings, clock: Clock, user_key: str, *, day: date | None = None
) -> BudgetStatus:
    day = day or clock.today()
    return (await budget_statuses(session, settings, [user_key], day))[user_key]


@dataclass(frozen=True)
class Forecast:
    """Where the month ends at the current pace (the trailing 7 local days, today included)."""

    pace_per_day: Decimal
    projected_month_end: Decimal
    runs_out_on: date | None  # the local day spend reaches the limit, when that is in this month


FORECAST_DAYS = 7


def forecast(status: BudgetStatus, trailing_spend: Decimal, today: date) -> Forecast:
    """Pace = trailing 7-day spend / 7; the budget runs out on the first day whose end passes it."""
    pace = trailing_spend / FORECAST_DAYS
    days_after_today = (status.resets_on - today).days - 1
    projected = status.spent_usd + pace * days_after_today
    if status.spent_usd >= status.limit_usd:
        return Forecast(pace, projected, today)
    if pace <= 0:
        return Forecast(pace, projected, None)
    days = ((status.limit_usd - status.spent_usd) / pace).to_integral_value(rounding=ROUND_CEILING)
    if days >= (status.resets_on - today).days:  # not this month (and a tiny pace would overflow a date)
        return Forecast(pace, projected, None)
    runs_out = today + timedelta(days=int(days))
    return Forecast(pace, projected, runs_out if runs_out < status.resets_on else None)


async def trailing_spend(session: AsyncSession, user_key: str, today: date, days: int = FORECAST_DAYS) -> Decimal:
    total = await session.scalar(
        select(func.sum(UsageDaily.cost_usd)).where(
            UsageDaily.user_key == user_key,
            UsageDaily.day > today - timedelta(days=days),
            UsageDaily.day <= today,
        )
    )
    return total or ZERO

