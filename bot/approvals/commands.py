"""The approval flow's `/tokens` words: `request` and `admin audit` (listed in bot/wiring.py)."""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackApiError

from bot.approvals.builder import audit_history
from bot.approvals.flows import open_request_form, submit_request
from bot.commands import Answer, Invocation, parse_user
from bot.people import display_names, is_admin
from bot.views.audit import audit_blocks, audit_fallback
from bot.views.help import Message, Notice

log = logging.getLogger(__name__)

REQUEST_USAGE = ("Usage: `/tokens request &lt;amount&gt; [reason]`, e.g. `/tokens request 50 eval run` "
                 "(this month only).")
AUDIT_USAGE = "Usage: `/tokens admin audit` for everyone, or `/tokens admin audit @person`."


async def request_command(invocation: Invocation) -> Answer:
    """`/tokens request <amount> [reason]`: a raise for this month only; alone, it opens the form."""
    services, user = invocation.services, invocation.user_id
    text = (invocation.text or "").strip()
    if not text:
        if invocation.trigger_id and services.slack is not None:
            try:
                await open_request_form(services, invocation.trigger_id)
                return Notice("Fill in the form to ask for more budget.")
            except SlackApiError as exc:
                log.warning("views.open for /tokens request failed: %s", exc.response.get("error"))
        return Notice(REQUEST_USAGE, ok=False)
    amount, _, reason = text.partition(" ")
    result = await submit_request(services, user, amount, reason.strip() or None, "month", via="command")
    if result.outcome == "invalid":
        return Notice(f"{result.message}. {REQUEST_USAGE}", ok=False)
    return Notice(result.message, ok=result.outcome in ("created", "auto_approved"))


async def audit_command(invocation: Invocation) -> Answer:
    """`/tokens admin audit [@person]`: requests and decisions, newest first (admins only)."""
    services = invocation.services
    if not await is_admin(services, invocation.user_id):
        return Notice("Only tokenbot admins can see the approval history. Admins are listed in the config "
                      "(`admins`) or are Slack workspace admins.", ok=False)
    words = (invocation.text or "").split()
    subject = None
    if words:
        subject = parse_user(words[0]) if len(words) == 1 else None
        if subject is None:
            return Notice(AUDIT_USAGE, ok=False)
    lines = await audit_history(services, subject)
    people = {x for line in lines for x in (line.actor, line.subject) if x}
    names = await display_names(services, [*people, *([subject] if subject else [])])
    return Message(audit_fallback(subject, lines), audit_blocks(subject, lines, names))
