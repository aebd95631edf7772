"""View submissions of the approval flow's modals: read the fields, ack, call one bot/approvals/flows function.

Input problems are answered inside the modal (`response_action: errors`, keyed by block
id) before the ack; so is a second request while one is pending (one database read).
Everything else runs after the ack, which closes the modal: the request is stored and
announced, or the decision taken; what could not be done is told to the person (DM, or
ephemeral where the click came from).
"""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.approvals import flows
from bot.services import Services
from bot.views import approvals as views
from bot.views.approval_forms import DecisionContext


def _value(state: dict[str, Any], block_id: str) -> Any:
    element = (state.get(block_id) or {}).get(block_id) or {}
    if "selected_option" in element:
        return (element.get("selected_option") or {}).get("value")
    return element.get("value")


def _click(body: dict[str, Any], view: dict[str, Any]) -> flows.Click:
    context = DecisionContext.load(view.get("private_metadata") or "{}")
    return flows.Click(body["user"]["id"], context, from_home=not context.channel)


def register(app: AsyncApp, services: Services) -> None:
    async def run(coro) -> None:
        await services.background.after_ack(coro, name="approval-modal")

    @app.view(views.REQUEST_MODAL)
    async def request_submitted(ack, body, view):
        user = body["user"]["id"]
        state = view["state"]["values"]
        amount, reason = _value(state, views.AMOUNT_BLOCK), _value(state, views.REASON_BLOCK)
        scope = _value(state, views.SCOPE_BLOCK) or "month"
        errors = await flows.request_form_errors(services, user, amount, reason, scope)
        if errors:
            await ack(response_action="errors", errors=errors)
            return
        await ack()
        await run(flows.request_submitted(services, user, amount, reason, scope))

    @app.view(views.DENY_MODAL)
    async def deny_submitted(ack, body, view):
        await ack()
        note = _value(view["state"]["values"], views.REASON_BLOCK)
        await run(flows.deny_submitted(services, _click(body, view), note))

    @app.view(views.AMOUNT_MODAL)
    async def amount_submitted(ack, body, view):
        state = view["state"]["values"]
        amount = _value(state, views.AMOUNT_BLOCK)
        error = flows.other_amount_error(services, amount)
        if error is not None:
            await ack(response_action="errors", errors={views.AMOUNT_BLOCK: error})
            return
        await ack()
        await run(flows.other_amount_submitted(services, _click(body, view), amount, _value(state, views.NOTE_BLOCK)))
