"""The teams section of the organisation's digest (read by bot/digests/builder.py)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from bot.services import Services
from bot.teams.builder import month_key, team_limit
from bot.views.team_digest import TeamLine
from storage import teams_repo

ZERO = Decimal(0)


async def teams_section(services: Services, first: date, last: date) -> tuple[TeamLine, ...]:
    """Every configured team (and "no team" when it spent), biggest spend first; empty without teams."""
    settings = services.settings
    if not settings.teams:
        return ()
    span = (last - first).days + 1
    month = month_key(last)
    async with services.db.session() as session:
        now = await teams_repo.team_costs_days(session, first, last)
        before = await teams_repo.team_costs_days(session, first - timedelta(days=span), first - timedelta(days=1))
        mtd = await teams_repo.team_costs_days(session, last.replace(day=1), last)
        limits = {t: await team_limit(session, settings, t, month) for t in settings.teams}
    lines = [TeamLine(t, _cost(now, t), _cost(before, t), _cost(mtd, t), limits[t]) for t in settings.teams]
    if _cost(now, "") or _cost(before, ""):
        lines.append(TeamLine("", _cost(now, ""), _cost(before, ""), _cost(mtd, ""), None))
    lines.sort(key=lambda x: (x.team == "", -x.cost_usd, x.team))
    return tuple(lines)


def _cost(rows, team: str) -> Decimal:
    m = rows.get(team)
    return m.cost_usd if m is not None else ZERO
