"""Block actions of the approval flow: parse, ack, call bot/approvals, show the answer.

- `request_budget` (the card's, an alert's or a notice's button): opens the request form
  at once (the trigger_id lives 3 s), then, if the clicker already has a pending request,
  turns the form into a notice linking to it. The form is always for the clicker (the
  button's value names the card's owner, who is the only one who sees that card).
- `approve_request` (after Slack's confirm dialog): decides at once.
- `deny_request` / `approve_other_amount`: open their modal at once, then check the clicker
  may decide; if not, the modal turns into the refusal.
Refusals and "already decided by …" go to the clicker only: through the message's
response_url (ephemeral, the original left alone), else chat.postEphemeral; in the App
Home (no channel) as a small modal. Work after the ack runs in tasks held by
bot.background (Bolt keeps no reference to listener tasks).

The three decision buttons match with or without a ":<request id>" suffix (the App Home
lists several requests in one view, where action ids must differ).
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot import approvals
from bot.background import run_after_ack
from bot.services import Services
from bot.views import approvals as views

log = logging.getLogger(__name__)


def _pattern(action_id: str) -> re.Pattern:
    return re.compile(rf"^{re.escape(action_id)}(:\d+)?$")


def action_value(body: dict[str, Any]) -> dict[str, Any]:
    """The clicked button's value: JSON from bot/views/approvals.button_value, or a bare request id."""
    raw = (body.get("actions") or [{}])[0].get("value") or ""
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    if isinstance(value, dict) and "request_id" in value:
        return value
    if isinstance(value, int) or raw.isdigit():
        return {"request_id": int(raw)}
    raise ValueError(f"unexpected button value {raw[:50]!r}")


def decision_context(body: dict[str, Any], value: dict[str, Any]) -> views.DecisionContext:
    container = body.get("container") or {}
    return views.DecisionContext(
        request_id=int(value["request_id"]),
        requester=str(value.get("requester") or ""),
        amount=str(value.get("amount") or "0"),
        scope=str(value.get("scope") or "month"),
        channel=container.get("channel_id") or (body.get("channel") or {}).get("id"),
        message_ts=container.get("message_ts"),
        response_url=body.get("response_url"),
    )


async def tell(services: Services, actor: str, text: str, *, response_url: str | None = None,
               channel: str | None = None, trigger_id: str | None = None) -> None:
    """Show `text` to `actor` only, wherever the click came from; never changes the clicked message."""
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
            await services.slack.views_open(trigger_id=trigger_id, view=views.notice_modal("Budget request", text))
            return
        except SlackApiError as exc:
            log.warning("views.open for a refusal failed: %s", exc.response.get("error"))
    try:
        await services.slack.chat_postMessage(channel=actor, text=text)
    except SlackApiError as exc:
        log.warning("could not tell %s: %s", actor, exc.response.get("error"))


async def refresh_home(services: Services, user_id: str) -> None:
    from bot.home import publish_home

    try:
        await publish_home(services, user_id)
    except Exception:
        log.exception("App Home refresh for %s failed", user_id)


async def approve_clicked(services: Services, body: dict[str, Any]) -> None:
    actor = body["user"]["id"]
    ctx = decision_context(body, action_value(body))
    result = await approvals.decide(services, ctx.request_id, actor, approve=True)
    if result.outcome == "approved":
        await approvals.after_decision(services, ctx.request_id)
        if (body.get("container") or {}).get("type") == "view":
            await refresh_home(services, actor)
        return
    await tell(services, actor, result.message, response_url=ctx.response_url, channel=ctx.channel,
               trigger_id=body.get("trigger_id"))


async def open_decision_modal(services: Services, body: dict[str, Any], build) -> None:
    actor = body["user"]["id"]
    ctx = decision_context(body, action_value(body))
    opened = (await services.slack.views_open(trigger_id=body["trigger_id"], view=build(ctx)))["view"]
    refusal = await approvals.check_can_decide(services, ctx.request_id, actor)
    if refusal is not None:
        await services.slack.views_update(view_id=opened["id"], hash=opened.get("hash"),
                                          view=views.notice_modal("Budget request", refusal.message))


async def request_clicked(services: Services, body: dict[str, Any]) -> None:
    actor = body["user"]["id"]
    opened = await approvals.open_request_modal(services, body["trigger_id"])
    existing = await approvals.pending_exists(services, actor)
    if existing is not None and opened is not None:
        await services.slack.views_update(view_id=opened["id"], hash=opened.get("hash"),
                                          view=views.notice_modal("Request pending", existing.message))


def register(app: AsyncApp, services: Services) -> None:
    approvals.register_slack_features()

    async def run(coro) -> None:
        await run_after_ack(services, coro, name="approval-action")

    @app.action(_pattern(views.REQUEST_ACTION))
    async def request_budget(ack, body):
        await ack()
        await run(request_clicked(services, body))

    @app.action(_pattern(views.APPROVE_ACTION))
    async def approve_request(ack, body):
        await ack()
        await run(approve_clicked(services, body))

    @app.action(_pattern(views.DENY_ACTION))
    async def deny_request(ack, body):
        await ack()
        await run(open_decision_modal(services, body, views.deny_modal))

    @app.action(_pattern(views.OTHER_AMOUNT_ACTION))
    async def approve_other_amount(ack, body):
        await ack()
        await run(open_decision_modal(services, body, views.amount_modal))
