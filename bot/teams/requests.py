"""Team raise requests: `/tokens request team [name] <amount> [reason]` and the team card's button.

A team's request is an ordinary budget request whose requester is "team:<name>"
(budget_requests), so it has the personal requests' buttons and guarantees: one pending
per team (the partial unique index), decisions once (`UPDATE ... WHERE status='pending'`),
expiry, reminders, the audit log. It goes to `[approvals] team_approver`, else
`default_approvers`, else the admins, never the team's lead; an approved raise is a
`budget_raises` row under "team:<name>" for the month, added to the team's budget
(bot/budgets.py, bot/teams/builder.py). The lead asks and hears the outcome; a team with
no lead can be asked for by its members or an admin.
"""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackApiError

from bot.approvals import messaging
from bot.approvals.flows import submit_request
from bot.approvals.service import check_input
from bot.commands import Answer, Invocation
from bot.people import is_admin
from bot.services import Services
from bot.teams.builder import team_key
from bot.views.approvals import AMOUNT_BLOCK
from bot.views.help import Notice
from bot.views.team_forms import team_raise_modal
from storage import approvals_repo

log = logging.getLogger(__name__)
USAGE = ("Usage: `/tokens request team [name] &lt;amount&gt; [reason]`, e.g. "
         "`/tokens request team platform 500 launch week` (this month only).")


async def request_team_command(invocation: Invocation) -> Answer:
    services, user = invocation.services, invocation.user_id
    teams = services.settings.teams
    words = (invocation.text or "").split(None, 2)
    if not teams:
        return Notice("No teams are configured.", ok=False)
    if words and words[0].lower() in teams:
        name, rest = words[0].lower(), words[1:]
    else:
        led = services.teams.led_by(user)
        if len(led) != 1:
            return Notice(USAGE, ok=False)
        name, rest = led[0], words
    if not rest:
        return Notice(USAGE, ok=False)
    outcome, message = await ask_for_team(services, user, name, rest[0], " ".join(rest[1:]) or None,
                                          via="command")
    if outcome == "invalid":
        message = f"{message} {USAGE}"
    return Notice(message, ok=outcome in ("created", "auto_approved"))


async def ask_for_team(services: Services, user: str, team: str, amount: str, reason: str | None, *,
                       via: str) -> tuple[str, str]:
    """Create and announce a team's request; (outcome, what to tell the asker)."""
    refusal = await may_ask(services, user, team)
    if refusal is not None:
        return "not_allowed", refusal
    result = await submit_request(services, team_key(team), amount, reason, "month", via=via)
    if result.outcome == "invalid":
        return "invalid", f"{result.message}."
    if result.outcome == "pending_exists":
        return "pending_exists", f"Team {team} already has a request waiting for a decision; one at a time."
    lead = services.settings.teams[team].lead
    message = result.message.replace("Your request", f"Team {team}'s request").replace(
        "You'll get a DM", "The lead gets a DM" if lead else "Check `/tokens team`")
    return result.outcome, message


async def may_ask(services: Services, user: str, team: str) -> str | None:
    config = services.settings.teams[team]
    if config.lead:
        return None if user == config.lead else (
            f"Only team {team}'s lead, <@{config.lead}>, can ask for a team raise.")
    if user in services.teams.members(team) or await is_admin(services, user):
        return None
    return f"Team {team} has no lead: its members or an admin can ask for a team raise."


# -- the team card's button and its form ---------------------------------------------------------------

async def team_raise_clicked(services: Services, user: str, team: str, trigger_id: str) -> None:
    """Open the form at once (the trigger lives 3 s), or say why not."""
    if team not in services.settings.teams:
        await messaging.tell(services, user, "That team is no longer configured.")
        return
    refusal = await may_ask(services, user, team)
    if refusal is not None:
        await messaging.tell(services, user, refusal)
        return
    try:
        await services.slack.views_open(trigger_id=trigger_id,
                                        view=team_raise_modal(team, services.settings.max_request_usd))
    except SlackApiError as exc:
        log.warning("views.open of the team raise form failed: %s", exc.response.get("error"))
        await messaging.tell(services, user, f"Ask with `/tokens request team {team} &lt;amount&gt; [reason]`.")


async def team_raise_form_errors(services: Services, team: str, amount: str | None,
                                 reason: str | None) -> dict[str, str]:
    """Answered inside the modal before the ack: a bad amount, or a request already waiting."""
    _, errors = check_input(services.settings, amount, reason, "month")
    if not errors and team in services.settings.teams:
        async with services.db.session() as session:
            if await approvals_repo.pending_request_id(session, team_key(team)) is not None:
                errors = {AMOUNT_BLOCK: f"Team {team} already has a request waiting for a decision."}
    return errors


async def team_raise_submitted(services: Services, user: str, team: str, amount: str, reason: str | None) -> None:
    if team not in services.settings.teams:
        await messaging.tell(services, user, "That team is no longer configured.")
        return
    _, message = await ask_for_team(services, user, team, amount, reason, via="modal")
    await messaging.tell(services, user, message)
