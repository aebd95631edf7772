"""View submissions of the approval flow's modals.

Input problems are answered inside the modal (`response_action: errors`, keyed by block
id) before the ack; so is a second request while one is pending (one database read).
Everything else runs after the ack, which closes the modal: the request is stored and
announced, or the decision taken; what could not be done is told to the person (DM, or
ephemeral where the click came from).
"""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp

from bot import approvals
from bot.background import run_after_ack
from bot.services import Services
from bot.views import approvals as views
from handlers.slack.actions import refresh_home, tell


def _value(state: dict[str, Any], block_id: str) -> Any:
    element = (state.get(block_id) or {}).get(block_id) or {}
    if "selected_option" in element:
        return (element.get("selected_option") or {}).get("value")
    return element.get("value")


async def submit_request(services: Services, user: str, amount: str, reason: str | None, scope: str) -> None:
    result = await approvals.submit_request(services, user, amount, reason, scope, via="modal")
    if result.outcome not in ("created", "auto_approved"):
        await tell(services, user, result.message)


async def decide(services: Services, actor: str, ctx: views.DecisionContext, *, approve: bool,
                 granted: str | None = None, note: str | None = None) -> None:
    result = await approvals.decide(services, ctx.request_id, actor, approve=approve, granted=granted, note=note)
    if result.outcome in ("approved", "denied"):
        await approvals.after_decision(services, ctx.request_id)
        if not ctx.channel:  # decided from the App Home
            await refresh_home(services, actor)
        return
    await tell(services, actor, result.message, response_url=ctx.response_url, channel=ctx.channel)


def register(app: AsyncApp, services: Services) -> None:
    settings = services.settings

    async def run(coro) -> None:
        await run_after_ack(services, coro, name="approval-modal")

    @app.view(views.REQUEST_MODAL)
    async def request_submitted(ack, body, view):
        user = body["user"]["id"]
        state = view["state"]["values"]
        amount, reason = _value(state, views.AMOUNT_BLOCK), _value(state, views.REASON_BLOCK)
        scope = _value(state, views.SCOPE_BLOCK) or "month"
        _, errors = approvals.check_input(settings, amount, reason, scope)
        if not errors and (pending := await approvals.pending_id(services, user)) is not None:
            errors = {views.AMOUNT_BLOCK: f"You already have a pending request (#{pending}); one at a time."}
        if errors:
            await ack(response_action="errors", errors=errors)
            return
        await ack()
        await run(submit_request(services, user, amount, reason, scope))

    @app.view(views.DENY_MODAL)
    async def deny_submitted(ack, body, view):
        await ack()
        ctx = views.DecisionContext.load(view.get("private_metadata") or "{}")
        note = _value(view["state"]["values"], views.REASON_BLOCK)
        await run(decide(services, body["user"]["id"], ctx, approve=False, note=note))

    @app.view(views.AMOUNT_MODAL)
    async def amount_submitted(ack, body, view):
        state = view["state"]["values"]
        try:
            amount = approvals.parse_amount(_value(state, views.AMOUNT_BLOCK), settings)
        except ValueError as exc:
            await ack(response_action="errors", errors={views.AMOUNT_BLOCK: str(exc)})
            return
        await ack()
        ctx = views.DecisionContext.load(view.get("private_metadata") or "{}")
        await run(decide(services, body["user"]["id"], ctx, approve=True, granted=str(amount),
                         note=_value(state, views.NOTE_BLOCK)))
