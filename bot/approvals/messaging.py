"""The approval flow's Slack messages, sent after the commit of what they report.

Each approver DM is stored (channel, ts) in `budget_requests.messages`, so any process can
`chat.update` it; entries are marked with the state they show (`shown`), and the sweep job
(jobs.py) repairs what a crashed process left undone. The requester's outcome DM is a reply in
the thread of their "your request went to …" DM, broadcast to the conversation. At the reminder, `default_approvers`
get the full message with buttons; the first approvers get a reminder in their DM's thread.
Refusals and "already decided by …" go to the clicker only (`tell`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from slack_sdk.errors import SlackApiError
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot import outbox
from bot.approvals.builder import build_view, known_names, people_of, request_view
from bot.approvals.service import DecisionResult
from bot.enforce import push as enforce_push
from bot.services import Services
from bot.views import approvals as views
from bot.views.approval_forms import notice_modal
from bot.views.approval_notices import RequesterNotice, notice_blocks, notice_fallback
from storage import approvals_repo
from storage.models import BudgetRequest

log = logging.getLogger(__name__)

GONE = ("message_not_found", "channel_not_found", "cant_update_message", "edit_window_closed", "is_archived")


async def post(services: Services, channel: str, text: str, blocks: list[dict], **extra) -> dict[str, str] | None:
    """chat.postMessage; the (channel, ts) to keep, or None when Slack refused."""
    if services.slack is None:
        return None
    if channel.startswith("team:"):  # a team's request: its lead hears about it (bot/teams/requests.py)
        team = services.settings.teams.get(channel[5:])
        if team is None or not team.lead:
            return None
        channel = team.lead
    try:
        response = await services.slack.chat_postMessage(channel=channel, text=text, blocks=blocks, **extra)
    except SlackApiError as exc:
        log.warning("chat.postMessage to %s failed: %s", channel, exc.response.get("error"))
        return None
    return {"channel": response["channel"], "ts": response["ts"]}


async def add_messages(services: Services, request_id: int, entries: list[dict[str, str]]) -> None:
    if not entries:
        return
    async with services.db.write() as session:
        await approvals_repo.append_messages(session, request_id, entries)


async def request_link(services: Services, request: BudgetRequest) -> str | None:
    """A permalink to the requester's own "your request went to …" DM, if Slack gives one."""
    if services.slack is None:
        return None
    for entry in request.messages or []:
        if entry.get("role") == "requester":
            try:
                response = await services.slack.chat_getPermalink(channel=entry["channel"], message_ts=entry["ts"])
            except SlackApiError:
                return None
            return response.get("permalink")
    return None


async def announce_request(services: Services, request_id: int) -> views.RequestView | None:
    """DM every approver (kept for chat.update) and tell the requester where it went."""
    view = await request_view(services, request_id)
    if view is None:
        return None
    stored = []
    text, blocks = views.approval_fallback(view), views.approval_blocks(view)
    for approver in view.approvers:
        posted = await post(services, approver, text, blocks)
        if posted:
            stored.append({"role": "approver", "user": approver, "shown": "pending", **posted})
    notice = RequesterNotice("submitted", view)
    posted = await post(services, view.requester, notice_fallback(notice), notice_blocks(notice))
    if posted:
        stored.append({"role": "requester", "user": view.requester, **posted})
    await add_messages(services, request_id, stored)
    async with services.db.session() as session:
        status = await approvals_repo.request_status(session, request_id)
    if status != "pending":  # decided while we were posting: show the outcome on what we just sent
        await after_decision(services, request_id)
    return view


@dataclass
class Announcement:
    """What a decision (or expiry) put on screen, for the demo and tests."""

    approver_view: views.RequestView
    notice: RequesterNotice | None


async def after_decision(services: Services, request_id: int, *,
                         decided: DecisionResult | None = None) -> Announcement | None:
    """Update the approvers' messages in place, tell the requester, push limit.changed.

    `decided` (from `service.decide`) carries the decided row, the budget and the limits, so a
    click reads nothing again; without it (expiry, repair, auto-approval) the row is read here."""
    outbox.kick(services)
    enforce_push.kick(services)
    request = decided.request if decided is not None else None
    if request is None:
        async with services.db.session() as session:
            request = await approvals_repo.get_request(session, request_id)
    if request is None or request.status == "pending":
        return None
    names = await known_names(services, people_of(request))
    async with services.db.session() as session:
        view = await build_view(services, session, request, names,
                                status=decided.status if decided else None, limits=decided.limits if decided else None)
    notice = RequesterNotice(view.status, view)
    entries = list(request.messages or [])
    marks: dict[tuple[str, str], str] = {}
    told = any(e.get("role") == "outcome" for e in entries)
    if services.slack is not None:
        text, blocks = views.approval_fallback(view), views.approval_blocks(view)
        for entry in entries:
            if entry.get("role") != "approver" or entry.get("shown") == view.status:
                continue
            try:
                await services.slack.chat_update(channel=entry["channel"], ts=entry["ts"], text=text, blocks=blocks)
            except SlackApiError as exc:
                error = exc.response.get("error")
                log.warning("chat.update of request #%s in %s failed: %s", request_id, entry["channel"], error)
                if error not in GONE:
                    continue  # retried by the sweep
            marks[(entry["channel"], entry["ts"])] = view.status
        new_entries = []
        if not told:  # in the thread of "your request went to …", broadcast so the DM shows it too
            parent = next((e for e in entries if e.get("role") == "requester"), None)
            thread = {"thread_ts": parent["ts"], "reply_broadcast": True} if parent else {}
            posted = await post(services, parent["channel"] if parent else view.requester, notice_fallback(notice),
                                notice_blocks(notice), **thread)
            if posted:
                new_entries.append({"role": "outcome", "user": view.requester, **posted})
        if marks or new_entries:
            async with services.db.write() as session:
                await approvals_repo.mark_messages(session, request_id, marks, new_entries)
    return Announcement(view, notice)


async def send_reminder(services: Services, request_id: int, first: list[str], extra: list[str],
                        messages: list[dict], hours: int) -> None:
    if services.slack is None:
        return
    view = await request_view(services, request_id)
    threads = {e["user"]: e for e in messages if e.get("role") == "approver"}
    text = views.reminder_text(view, hours, slack=False)
    for approver in first:
        thread = threads.get(approver)
        if thread:
            await post(services, thread["channel"], text, views.reminder_blocks(view, hours),
                       thread_ts=thread["ts"], reply_broadcast=True)
        else:
            await post(services, approver, views.approval_fallback(view), views.approval_blocks(view))
    if extra:
        escalated = await request_view(services, request_id, escalated_from=first)
        stored = []
        for approver in extra:
            posted = await post(services, approver, views.approval_fallback(escalated),
                                views.approval_blocks(escalated))
            if posted:
                stored.append({"role": "approver", "user": approver, "shown": "pending", **posted})
        await add_messages(services, request_id, stored)


async def tell(services: Services, actor: str, text: str, *, response_url: str | None = None,
               channel: str | None = None, trigger_id: str | None = None) -> None:
    """Show `text` to `actor` only, wherever the click came from; never changes the clicked message:
    through the message's response_url (ephemeral), else chat.postEphemeral, else (App Home, no
    channel) a small modal, else a DM."""
    if response_url:
        try:
            response = await AsyncWebhookClient(response_url).send(
                text=text, response_type="ephemeral", replace_original=False)
            if response.status_code < 300:
                return
            log.warning("response_url refused the refusal: %s", response.status_code)
        except Exception:
            log.exception("response_url post failed")
    if channel:
        try:
            await services.slack.chat_postEphemeral(channel=channel, user=actor, text=text)
            return
        except SlackApiError as exc:
            log.warning("chat.postEphemeral failed: %s", exc.response.get("error"))
    if trigger_id:
        try:
            await services.slack.views_open(trigger_id=trigger_id, view=notice_modal("Budget request", text))
            return
        except SlackApiError as exc:
            log.warning("views.open for a refusal failed: %s", exc.response.get("error"))
    try:
        await services.slack.chat_postMessage(channel=actor, text=text)
    except SlackApiError as exc:
        log.warning("could not tell %s: %s", actor, exc.response.get("error"))
