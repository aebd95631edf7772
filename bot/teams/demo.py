"""The demo's teams: its five synthetic teams wired to `[teams.*]`, a team card, a team's own
digest and one team raise asked by the lead and approved (printed by `tokenbot demo`)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from bot.approvals import service
from bot.approvals.flows import submit_request
from bot.people import display_names
from bot.services import Services
from bot.teams.builder import team_card, team_key
from bot.teams.config import TeamConfig
from bot.teams.digest import build_team_digest
from bot.views.format import money
from bot.views.team_card import team_card_text
from bot.views.team_digest import team_digest_fallback
from storage import approvals_repo

BUDGETS = {"platform": 90, "research": 150, "growth": 60, "support": 40, "data": 80}  # near the demo spend


def demo_teams(people: list[tuple[str, str]]) -> dict[str, TeamConfig]:
    """(slack_id, team) pairs in order -> the teams; the first member of each leads it. Events carry
    the team's name in their `team` field (a LiteLLM team alias), which maps to it as well."""
    members: dict[str, list[str]] = {}
    for slack_id, team in people:
        members.setdefault(team, []).append(slack_id)
    return {team: TeamConfig(team, members=tuple(ids), lead=ids[0] if team != "support" else None,
                             channel=f"C0TEAM{team.upper()[:6]}" if team in ("platform", "research") else None,
                             monthly_usd=Decimal(BUDGETS.get(team, 1000)), aliases=(f"proj_{team}",))
            for team, ids in members.items()}


async def demo_team_walkthrough(services: Services, team: str = "platform") -> str:
    config = services.settings.teams[team]
    out = ["Teams", "=====", ""]
    view = await team_card(services, config.lead, team)
    out += [f"/tokens team (as the lead of {team}):", _indent(team_card_text(view)), ""]
    digest = await build_team_digest(services, team, services.clock.today() - timedelta(days=1))
    out += [f"Team digest in <#{config.channel}>: {team_digest_fallback(digest)}", ""]
    amount = (max(view.projected_usd - (view.budget_usd or 0), Decimal(100)) / 100).quantize(Decimal(1)) * 100
    created = await submit_request(services, team_key(team), amount, "launch week load tests", "month", via="demo")
    out.append(f"1. The lead asks: /tokens request team {team} {amount} launch week load tests -> {created.outcome}")
    if created.request_id is not None and created.outcome == "created":
        async with services.db.session() as session:
            request = await approvals_repo.get_request(session, created.request_id)
        approver = request.approvers[0]
        who = (await display_names(services, [approver]))[approver]
        decided = await service.decide(services, created.request_id, approver, approve=True)
        after = await team_card(services, config.lead, team)
        out.append(f"2. {who} approves with the same buttons as a personal request ({decided.outcome}).")
        out.append(f"3. Team {team}'s budget this month: {money(view.budget_usd)} -> {money(after.budget_usd)}.")
    return "\n".join(out)


def _indent(text: str, prefix: str = "   ") -> str:
    return "\n".join(prefix + line for line in text.splitlines())
