"""Team raise requests: `/tokens request team [name] <amount> [reason]` (this month only).

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

from bot.approvals.flows import submit_request
from bot.commands import Answer, Invocation
from bot.people import is_admin
from bot.teams.builder import team_key
from bot.views.help import Notice

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
    allowed = await may_ask(services, user, name)
    if allowed is not None:
        return Notice(allowed, ok=False)
    amount, reason = rest[0], (" ".join(rest[1:]) if len(rest) > 1 else None)
    result = await submit_request(services, team_key(name), amount, reason, "month", via="command")
    if result.outcome == "invalid":
        return Notice(f"{result.message}. {USAGE}", ok=False)
    if result.outcome == "pending_exists":
        return Notice(f"Team {name} already has a request waiting for a decision; one at a time.", ok=False)
    message = result.message.replace("Your request", f"Team {name}'s request").replace(
        "You'll get a DM", "The lead gets a DM" if teams[name].lead else "Check `/tokens team`")
    return Notice(message, ok=result.outcome in ("created", "auto_approved"))


async def may_ask(services, user: str, team: str) -> str | None:
    config = services.settings.teams[team]
    if config.lead:
        return None if user == config.lead else (
            f"Only team {team}'s lead, <@{config.lead}>, can ask for a team raise.")
    if user in services.teams.members(team) or await is_admin(services, user):
        return None
    return f"Team {team} has no lead: its members or an admin can ask for a team raise."
