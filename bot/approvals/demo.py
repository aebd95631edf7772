"""The demo's walkthrough of one budget request, start to finish, as the text Slack would show."""

from __future__ import annotations

import json

from bot.approvals import messaging, service
from bot.approvals.builder import audit_history, request_view
from bot.budgets import budget_statuses
from bot.clock import month_key
from bot.config import SLACK_USER_ID
from bot.limits import limits_for
from bot.outbox import limit_changed_payload
from bot.people import display_names
from bot.services import Services
from bot.views import approvals as views
from bot.views.approval_notices import RequesterNotice, notice_text
from bot.views.audit import audit_text
from storage import queries


async def demo_walkthrough(services: Services, amount: str = "75", reason: str = "load test for the launch") -> str:
    """Ask, notify, approve, update, push: each message as the text Slack would show (no Slack needed).
    The requester is whoever has used the largest share of their budget, approvers and admins aside."""
    settings = services.settings
    reserved = {*settings.default_approvers, *settings.admins, *settings.approvers.values()}
    today = services.clock.today()
    async with services.db.session() as session:
        ranked = await queries.leaderboard_month(session, month_key(today))
        candidates = [r.key for r in ranked if SLACK_USER_ID.match(r.key) and r.key not in reserved]
        statuses = await budget_statuses(session, settings, candidates, today)
    shares = {key: statuses[key].used_share for key in candidates}  # in leaderboard order: ties go to the first
    requester = max(shares, key=lambda key: shares[key], default=None)
    if requester is None:
        return "Approval walkthrough: nobody to ask (no spend yet)."
    names = await display_names(services, [requester, *reserved])
    who = names.get(requester, requester)
    out = ["One budget request, start to finish", "",
           f"1. {who} types: /tokens request {amount} {reason}"]
    created = await service.create_request(services, requester, amount, reason, "month", via="demo")
    if created.outcome != "created":
        return "\n".join([*out, f"   (not created: {created.outcome}: {created.message})"])
    view = await request_view(services, created.request_id)
    approver = view.approvers[0]
    out += ["", f"2. DM to {view.name(approver)} (the approver):", _indent(views.approval_text(view)),
            "", f"   DM to {who}:", _indent(notice_text(RequesterNotice("submitted", view)))]
    decided = await service.decide(services, created.request_id, approver, approve=True)
    shown = await messaging.after_decision(services, created.request_id, decided=decided)
    out += ["", f"3. {view.name(approver)} clicks Approve and confirms ({decided.outcome}).",
            "", f"4. {view.name(approver)}'s message, updated in place (buttons gone):",
            _indent(views.approval_text(shown.approver_view)),
            "", f"   DM to {who}:", _indent(notice_text(shown.notice))]
    limits = await limits_for(services, requester)
    final = shown.approver_view
    event = limit_changed_payload(user=requester, period=limits["period"], limit=final.limit_after_usd,
                                  previous=final.limit_usd, scope=final.scope, request_id=final.id,
                                  decided_by=approver, now=final.decided_at)
    out += ["", "5. limit.changed, signed (Standard Webhooks) and delivered through the outbox to "
            "LIMITS_WEBHOOK_URL when it is set:", _indent(json.dumps(event, indent=2)),
            "", f"   GET /api/v1/limits/{requester}: limit_usd {limits['limit_usd']}, "
            f"spent_usd {limits['spent_usd']}, pending_request {limits['pending_request']}",
            "", "6. /tokens admin audit:",
            _indent(audit_text(requester, await audit_history(services, requester),
                               await display_names(services, [requester, approver])))]
    return "\n".join(out)


def _indent(text: str, prefix: str = "   ") -> str:
    return "\n".join(prefix + line for line in text.splitlines())
