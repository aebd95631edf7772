"""One function per thing a person does in the approval flow; the Slack handler calls one, once.

Each takes plain values (who clicked, the request, what was typed, where the click came
from), does the whole of it (decide, update the messages, refresh the clicker's App Home,
or tell the clicker why nothing changed) and sends nothing back to the handler but form
errors that must go into the ack.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from bot.approvals import messaging, service
from bot.approvals.service import CreateResult, DecisionResult
from bot.home_builder import refresh_home
from bot.services import Services
from bot.views import approvals as views
from bot.views.approval_forms import DecisionContext, notice_modal, request_modal
from storage import approvals_repo


@dataclass(frozen=True)
class Click:
    """Who clicked a decision button (or submitted its modal), on which request, from where."""

    actor: str
    context: DecisionContext
    trigger_id: str | None = None
    from_home: bool = False  # the App Home (no channel, no response_url)


async def submit_request(services: Services, requester: str, amount_text: str | Decimal | None,
                         reason: str | None, scope: str | None = "month", *, via: str = "slack") -> CreateResult:
    """Create, then tell the approvers and the requester (or the requester only, when automatic)."""
    result = await service.create_request(services, requester, amount_text, reason, scope, via=via)
    if result.outcome == "created":
        await messaging.announce_request(services, result.request_id)
    elif result.outcome == "auto_approved":
        await messaging.after_decision(services, result.request_id)
    elif result.outcome == "pending_exists":
        link = await messaging.request_link(services, result.existing)
        result.message = service.pending_message(result.existing, link)
    return result


async def request_form_errors(services: Services, requester: str, amount: str | None, reason: str | None,
                              scope: str | None) -> dict[str, str]:
    """The request form's errors, keyed by block id, answered inside the modal before the ack
    (one database read: a second request while one is pending)."""
    _, errors = service.check_input(services.settings, amount, reason, scope)
    if not errors:
        async with services.db.session() as session:
            pending = await approvals_repo.pending_request_id(session, requester)
        if pending is not None:
            errors = {views.AMOUNT_BLOCK: "You already have a request waiting for a decision; one at a time."}
    return errors


async def request_submitted(services: Services, requester: str, amount: str, reason: str | None, scope: str) -> None:
    """The request form, after its ack closed it: store and announce, or tell why not."""
    result = await submit_request(services, requester, amount, reason, scope, via="modal")
    if result.outcome not in ("created", "auto_approved"):
        await messaging.tell(services, requester, result.message)


async def open_request_form(services: Services, trigger_id: str) -> dict | None:
    """views.open the request form; call it right after the ack (the trigger lives 3 s)."""
    if services.slack is None:
        return None
    response = await services.slack.views_open(trigger_id=trigger_id,
                                               view=request_modal(services.settings.max_request_usd))
    return response["view"]


async def request_clicked(services: Services, actor: str, trigger_id: str) -> None:
    """"Request more budget": the form at once; turned into a notice when a request is already pending."""
    opened = await open_request_form(services, trigger_id)
    async with services.db.session() as session:
        existing = await approvals_repo.pending_request(session, actor)
    if existing is not None and opened is not None:
        message = service.pending_message(existing, await messaging.request_link(services, existing))
        await services.slack.views_update(view_id=opened["id"], hash=opened.get("hash"),
                                          view=notice_modal("Request pending", message))


async def decision_form_clicked(services: Services, click: Click, form: Callable[[DecisionContext], dict]) -> None:
    """Deny / Approve another amount: the form at once, then the refusal in its place if the
    clicker may not decide."""
    opened = (await services.slack.views_open(trigger_id=click.trigger_id, view=form(click.context)))["view"]
    refusal = await service.check_can_decide(services, click.context.request_id, click.actor)
    if refusal is not None:
        await services.slack.views_update(view_id=opened["id"], hash=opened.get("hash"),
                                          view=notice_modal("Budget request", refusal.message))


async def approve_clicked(services: Services, click: Click) -> None:
    """Approve (confirmed in Slack's dialog): the requested amount."""
    await _decide(services, click, approve=True)


async def deny_submitted(services: Services, click: Click, note: str | None) -> None:
    await _decide(services, click, approve=False, note=note)


async def other_amount_submitted(services: Services, click: Click, granted: str, note: str | None) -> None:
    """Approve another amount: `granted` as typed (checked by `other_amount_error` before the ack)."""
    await _decide(services, click, approve=True, granted=granted, note=note)


def other_amount_error(services: Services, text: str | None) -> str | None:
    """The "approve another amount" form's amount error, answered inside the modal before the ack."""
    try:
        service.parse_request_amount(text, services.settings)
    except ValueError as exc:
        return str(exc)
    return None


async def _decide(services: Services, click: Click, *, approve: bool, granted: str | None = None,
                  note: str | None = None) -> None:
    ctx = click.context
    result: DecisionResult = await service.decide(services, ctx.request_id, click.actor, approve=approve,
                                                  granted=granted, note=note)
    if result.decided:
        await messaging.after_decision(services, ctx.request_id, decided=result)
        if click.from_home:
            await refresh_home(services, click.actor)
        return
    await messaging.tell(services, click.actor, result.message, response_url=ctx.response_url, channel=ctx.channel,
                         trigger_id=click.trigger_id)
