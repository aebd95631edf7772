"""The team card's view model, read from the chargeback rollup only (storage/teams_repo.py)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import func, select

from bot.clock import month_label, month_last_day
from bot.people import display_names
from bot.services import Services
from bot.views.team_card import MemberLine, TeamCardView, TeamPending
from storage import teams_repo
from storage.models import BudgetRaise, BudgetRequest
from storage.queries import SLACK_USER_ID

TREND_MONTHS = 6
ZERO = Decimal(0)


def month_key(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def months_back(today: date, count: int) -> list[str]:
    out, year, month = [], today.year, today.month
    for _ in range(count):
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return out[::-1]


def projected(spent: Decimal, today: date) -> Decimal:
    """Month-to-date spend per day so far, times the days of the month."""
    return spent / today.day * month_last_day(today).day


def team_key(team: str) -> str:
    """The requester / budget key of a team's raise requests (budget_requests, budget_raises)."""
    return f"team:{team}"


async def team_card(services: Services, caller: str, team: str) -> TeamCardView:
    settings = services.settings
    config = settings.teams[team]
    today = services.clock.today()
    month = month_key(today)
    months = months_back(today, TREND_MONTHS)
    async with services.db.session() as session:
        total = (await teams_repo.team_totals(session, month, team)).get(team)
        people = await teams_repo.team_breakdown(session, month, team, "person")
        models = await teams_repo.team_breakdown(session, month, team, "model")
        trend = await teams_repo.team_months(session, team, months)
        pending = list(await session.scalars(select(BudgetRequest).where(
            BudgetRequest.requester == team_key(team), BudgetRequest.status == "pending")))
        raised = await team_raises(session, team, month)
    spent = total.cost_usd if total is not None else ZERO
    privacy = settings.leaderboard
    ranked = [p for p in people if SLACK_USER_ID.match(p.key)]
    unlinked = sum((p.totals.cost_usd for p in people if not SLACK_USER_ID.match(p.key)), ZERO)
    names = await display_names(services, [p.key for p in ranked]) if privacy == "names" else {}
    lines = []
    for i, p in enumerate(ranked, start=1):
        mine = p.key == caller
        shown = privacy == "names" or mine
        name = names.get(p.key)
        lines.append(MemberLine(i, name if name and name != p.key else None,
                                p.key if shown else None, mine, p.totals.cost_usd, p.totals.tokens))
    budget = None if config.monthly_usd is None else config.monthly_usd + raised
    directory = services.teams
    return TeamCardView(
        team=team, month_label=month_label(month), spent_usd=spent, tokens=total.tokens if total else 0,
        calls=total.events if total else 0, budget_usd=budget, projected_usd=projected(spent, today),
        lead=config.lead, member_count=len(directory.members(team)), members=tuple(lines),
        members_hidden=privacy == "off", others_usd=unlinked,
        models=tuple((m.key, m.totals.cost_usd) for m in models[:3]),
        trend=tuple((f"{date.fromisoformat(m + '-01'):%b}", trend.get(m, ZERO)) for m in months),
        pending=tuple(TeamPending(r.id, r.amount_usd, r.created_at) for r in pending),
        can_request=caller == config.lead or (config.lead is None and caller in directory.members(team)),
    )


async def team_raises(session, team: str, month: str) -> Decimal:
    """This month's approved team raises (budget_raises under the team's key)."""
    value = await session.scalar(select(func.sum(BudgetRaise.amount_usd)).where(
        BudgetRaise.user_key == team_key(team), BudgetRaise.month == month))
    return value or ZERO


async def team_limit(session, settings, team: str, month: str) -> Decimal | None:
    config = settings.teams[team]
    if config.monthly_usd is None:
        return None
    return config.monthly_usd + await team_raises(session, team, month)
