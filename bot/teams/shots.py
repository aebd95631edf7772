"""The team surfaces for `tokenbot demo --shots DIR` (bot/shots.py calls `team_shots`): the team
card, the admin's team list, a team's own digest, the teams section (it is in the digest's thread,
`digest-details`), and a team raise request as its approver sees it, before and after approval."""

from __future__ import annotations

from datetime import timedelta

from bot.approvals import messaging, service
from bot.approvals.builder import request_view
from bot.commands import Invocation
from bot.services import Services
from bot.teams.builder import team_card, team_key
from bot.teams.commands import admin_team_command
from bot.teams.digest import build_team_digest
from bot.teams.section import teams_section
from bot.views import approvals as approval_views
from bot.views.blocks import long_text_sections
from bot.views.help import Message
from bot.views.team_card import team_card_blocks, team_card_fallback
from bot.views.team_digest import team_digest_blocks, team_digest_fallback, teams_section_lines
from bot.views.team_forms import team_raise_modal


async def team_shots(services: Services, shots) -> None:
    teams = services.settings.teams
    if not teams:
        return
    name = next(iter(teams))
    config = teams[name]
    view = await team_card(services, config.lead or services.settings.admins[0], name)
    shots.ephemeral("team-card", Message(team_card_fallback(view), team_card_blocks(view)))
    shots.write("modal-team-raise", team_raise_modal(name, services.settings.max_request_usd))
    shots.ephemeral("team-admin", await admin_team_command(Invocation(services, services.settings.admins[0], "")))
    yesterday = services.clock.today() - timedelta(days=1)
    digest = await build_team_digest(services, name, yesterday)
    shots.message("team-digest", config.channel or "C0TEAMDIGEST", team_digest_fallback(digest),
                  team_digest_blocks(digest))
    lines = await teams_section(services, yesterday, yesterday)
    shots.message("teams-section", "C0DEMODIGEST", "Teams", long_text_sections(teams_section_lines(lines)),
                  thread_ts="1700000000.000100")
    other = next((t for t in teams if t != name and teams[t].lead), None)
    if other is None:
        return
    created = await service.create_request(services, team_key(other), "250", "launch week load tests", "month",
                                           via="demo")
    if created.request_id is None:
        return
    pending = await request_view(services, created.request_id)
    approver = pending.approvers[0]
    shots.message("team-request-pending", approver, approval_views.approval_fallback(pending),
                  approval_views.approval_blocks(pending))
    decided = await service.decide(services, created.request_id, approver, approve=True)
    shown = await messaging.after_decision(services, created.request_id, decided=decided)
    shots.message("team-request-approved", approver, approval_views.approval_fallback(shown.approver_view),
                  approval_views.approval_blocks(shown.approver_view))
