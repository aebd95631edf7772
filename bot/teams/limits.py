"""The team part of the limits API answer (GET /api/v1/limits/{user}).

`team`: the person's primary team with its budget, spend (exact to the last event) and
whether it is over, or null. When the team is over its budget, `allowed` is false and
`reason` says so ("team_budget") unless the person's own answer already had a reason
("budget", "paused": bot/limits.py).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from bot.clock import month_first_day, month_last_day
from bot.services import Services
from bot.teams.builder import month_key, team_limit
from bot.views.format import json_money
from storage import teams_repo


async def team_answer(services: Services, user_key: str, answer: dict[str, Any]) -> dict[str, Any]:
    directory = services.teams
    name = directory.primary_team(user_key) if directory is not None else None
    if name is None:
        answer["team"] = None
        return answer
    today = services.clock.today()
    month = month_key(today)
    async with services.db.session() as session:
        limit = await team_limit(session, services.settings, name, month)
        spent = (await teams_repo.team_month_spend(session, month, month_first_day(today), month_last_day(today),
                                                   [name])).get(name, Decimal(0))
    over = limit is not None and spent >= limit
    answer["team"] = {
        "name": name,
        "limit_usd": json_money(limit) if limit is not None else None,
        "spent_usd": json_money(spent),
        "remaining_usd": json_money(max(limit - spent, Decimal(0))) if limit is not None else None,
        "allowed": not over,
    }
    if over:
        answer["allowed"] = False
        answer["reason"] = answer.get("reason") or "team_budget"
    return answer
