"""Block actions of the approval flow: parse the click, ack, call one bot/approvals/flows function.

- `request_budget` (the card's, an alert's or a notice's button): `flows.request_clicked`
  opens the request form at once (the trigger_id lives 3 s). The form is always for the
  clicker (the button's value names the card's owner, who is the only one who sees that card).
- `approve_request` (after Slack's confirm dialog): `flows.approve_clicked`.
- `deny_request` / `approve_other_amount`: `flows.decision_form_clicked` opens their modal.
Work after the ack runs in tasks held by `services.background` (Bolt keeps no reference
to listener tasks).

The three decision buttons match with or without a ":<request id>" suffix (the App Home
lists several requests in one view, where action ids must differ).
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.approvals import flows
from bot.services import Services
from bot.views import approvals as views
from bot.views.approval_forms import DecisionContext, amount_modal, deny_modal

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


def click_of(body: dict[str, Any]) -> flows.Click:
    """Who clicked which request's button, and where (a message, or the App Home)."""
    value = action_value(body)
    container = body.get("container") or {}
    context = DecisionContext(
        request_id=int(value["request_id"]),
        requester=str(value.get("requester") or ""),
        amount=str(value.get("amount") or "0"),
        scope=str(value.get("scope") or "month"),
        channel=container.get("channel_id") or (body.get("channel") or {}).get("id"),
        message_ts=container.get("message_ts"),
        response_url=body.get("response_url"),
    )
    return flows.Click(body["user"]["id"], context, trigger_id=body.get("trigger_id"),
                       from_home=container.get("type") == "view")


def register(app: AsyncApp, services: Services) -> None:
    async def run(coro) -> None:
        await services.background.after_ack(coro, name="approval-action")

    @app.action(_pattern(views.REQUEST_ACTION))
    async def request_budget(ack, body):
        await ack()
        await run(flows.request_clicked(services, body["user"]["id"], body["trigger_id"]))

    @app.action(_pattern(views.APPROVE_ACTION))
    async def approve_request(ack, body):
        await ack()
        await run(flows.approve_clicked(services, click_of(body)))

    @app.action(_pattern(views.DENY_ACTION))
    async def deny_request(ack, body):
        await ack()
        await run(flows.decision_form_clicked(services, click_of(body), deny_modal))

    @app.action(_pattern(views.OTHER_AMOUNT_ACTION))
    async def approve_other_amount(ack, body):
        await ack()
        await run(flows.decision_form_clicked(services, click_of(body), amount_modal))
