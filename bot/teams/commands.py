"""`/tokens team [name]` (the team card) and `/tokens admin team [sync]` (listed in bot/wiring.py)."""

from __future__ import annotations

from bot.commands import Answer, Invocation
from bot.people import is_admin
from bot.teams.builder import team_card
from bot.teams.sync import sync_teams
from bot.views.help import Message, Notice
from bot.views.team_card import (
    TeamAdminLine,
    team_admin_blocks,
    team_admin_fallback,
    team_card_blocks,
    team_card_fallback,
)
from storage import teams_repo

TEAM_USAGE = "Usage: `/tokens team` for your team, or `/tokens team &lt;name&gt;`."


def resolve_team(invocation: Invocation) -> tuple[str | None, Notice | None]:
    """The team asked for (or the caller's own), or a clear answer why there is none."""
    services = invocation.services
    teams = services.settings.teams
    if not teams:
        return None, Notice("No teams are configured yet: an admin adds `[teams.&lt;name&gt;]` to the config "
                            "file (README, \"Teams\").", ok=False)
    words = (invocation.text or "").split()
    if len(words) > 1:
        return None, Notice(TEAM_USAGE, ok=False)
    if words:
        name = words[0].lower().lstrip("#")
        if name not in teams:
            return None, Notice(f"There is no team called `{name[:40].replace('<', '&lt;').replace('>', '&gt;')}`. "
                                f"Teams: {', '.join(f'`{t}`' for t in teams)}.", ok=False)
        return name, None
    directory = services.teams
    name = directory.primary_team(invocation.user_id) or next(iter(directory.led_by(invocation.user_id)), None)
    if name is None:
        return None, Notice("You are not in a team. See one with `/tokens team &lt;name&gt;`; teams: "
                            f"{', '.join(f'`{t}`' for t in teams)}.", ok=False)
    return name, None


async def team_command(invocation: Invocation) -> Answer:
    name, refusal = resolve_team(invocation)
    if refusal is not None:
        return refusal
    await invocation.services.teams.refresh()
    view = await team_card(invocation.services, invocation.user_id, name)
    return Message(team_card_fallback(view), team_card_blocks(view))


async def admin_team_command(invocation: Invocation) -> Answer:
    services = invocation.services
    if not await is_admin(services, invocation.user_id):
        return Notice("Only tokenbot admins can see and sync teams. Admins are listed in the config (`admins`) "
                      "or are Slack workspace admins.", ok=False)
    words = (invocation.text or "").lower().split()
    if words and words != ["sync"]:
        return Notice("Usage: `/tokens admin team` lists the teams; `/tokens admin team sync` reads their "
                      "Slack user groups now.", ok=False)
    if words == ["sync"]:
        outcomes = await sync_teams(services)
        if not outcomes:
            return Notice("No team has a `usergroup`: config members are up to date.")
        parts = [f"*{o.team}*: " + (f"`{o.error}`" if o.error else f"{o.members} members (+{o.added} −{o.removed})")
                 for o in outcomes]
        failed = any(o.error for o in outcomes)
        return Notice("Synced the teams' user groups. " + "; ".join(parts), ok=not failed)
    await services.teams.refresh(force=True)
    async with services.db.session() as session:
        states = await teams_repo.sync_states(session)
    lines = []
    for name, team in services.settings.teams.items():
        state = states.get(name)
        lines.append(TeamAdminLine(name, len(services.teams.members(name)), team.lead, team.channel,
                                   team.monthly_usd, team.usergroup, state.synced_at if state else None,
                                   state.error if state else None))
    return Message(team_admin_fallback(lines), team_admin_blocks(lines))
