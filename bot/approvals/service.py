"""The rules of a budget request and the transactions that hold them (no Slack here).

Every once-only step is a database fact, so it holds with several processes:
- one pending request per person: the partial unique index `uq_budget_requests_one_pending`
  (a second insert fails; we answer with the first request);
- a decision: `UPDATE budget_requests SET status=… WHERE id=:id AND status='pending'` in
  the same transaction as the limit change, the audit row and the outbox row; the one
  process whose UPDATE changed a row won, everybody else is told who decided.

Decisions taken here (SPEC is silent):
- When nobody is found to approve (no default approvers) the configured `admins` are
  asked; with none of those either, the request is refused (bot/approvers.py).
- `auto_approve_under_usd`: requests *up to* that amount are approved at once (SPEC 7
  says "up to"); 0 turns it off. They are decided by "tokenbot", marked automatic.
- Amounts are US dollars with at most two decimals, above 0 and at most
  `max_request_usd` (bot/amounts.py); an approver granting another amount is held to the same cap.
- A "this month only" raise is added to the month the decision is taken in (normally the
  request's month; a request approved after its month ended raises the new month, since
  a raise for a finished month would grant nothing).
- Reasons and notes are kept to 500 characters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot import outbox
from bot.amounts import parse_amount
from bot.budgets import BudgetStatus, budget_status
from bot.clock import month_key
from bot.config import Settings
from bot.enforce import push as enforce_push
from bot.people import is_admin
from bot.services import Services
from bot.views import approvals as views
from bot.views.format import json_money, money, slack_moment
from storage import approvals_repo, audit_repo, queries
from storage.models import BudgetRequest

SYSTEM = "tokenbot"  # the actor of automatic approvals, reminders and expiries
SCOPES = ("month", "standing")


# -- input --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RequestInput:
    amount: Decimal
    reason: str | None
    scope: str


def clean_text(text: str | None) -> str | None:
    text = (text or "").strip()
    return text[: views.REASON_MAX] if text else None


def parse_request_amount(text: str | None, settings: Settings) -> Decimal:
    """A raise asked for or granted: more than $0, at most `max_request_usd`; AmountError otherwise."""
    return parse_amount(text, maximum=settings.max_request_usd, allow_zero=False)


def check_input(settings: Settings, amount_text: str | None, reason: str | None,
                scope: str | None) -> tuple[RequestInput | None, dict[str, str]]:
    """Validate a request; errors are keyed by the modal's block ids."""
    errors: dict[str, str] = {}
    amount = Decimal(0)
    try:
        amount = parse_request_amount(amount_text, settings)
    except ValueError as exc:
        errors[views.AMOUNT_BLOCK] = str(exc)
    if reason and len(reason.strip()) > views.REASON_MAX:
        errors[views.REASON_BLOCK] = f"At most {views.REASON_MAX} characters"
    scope = scope or "month"
    if scope not in SCOPES:
        errors[views.SCOPE_BLOCK] = "Choose this month only or from now on"
    if errors:
        return None, errors
    return RequestInput(amount, clean_text(reason), scope), {}


# -- asking -------------------------------------------------------------------------------------

@dataclass
class CreateResult:
    outcome: str  # created | auto_approved | pending_exists | invalid | no_approver
    request_id: int | None = None
    errors: dict[str, str] = field(default_factory=dict)
    message: str = ""  # a line for the requester (command answer, modal notice)
    existing: BudgetRequest | None = None  # the pending request, with pending_exists


def pending_message(request: BudgetRequest, link: str | None) -> str:
    where = f"<{link}|your request>" if link else "your request"
    who = " or ".join(f"<@{a}>" for a in request.approvers) or "an admin"
    return (f"You already have a request waiting: {where} for {money(request.amount_usd)} more, with {who}. "
            "One request at a time.")


async def _pending_exists(services: Services, requester: str) -> CreateResult | None:
    async with services.db.session() as session:
        existing = await approvals_repo.pending_request(session, requester)
    if existing is None:
        return None
    return CreateResult("pending_exists", existing.id, message=pending_message(existing, None), existing=existing)


class _AlreadyPending(Exception):
    pass


async def create_request(services: Services, requester: str, amount_text: str | Decimal | None,
                         reason: str | None, scope: str | None = "month", *, via: str = "slack") -> CreateResult:
    """Validate and store a request (pending, or approved at once when small enough). No Slack messages:
    bot/approvals/flows.py sends those."""
    settings, clock = services.settings, services.clock
    data, errors = check_input(settings, None if amount_text is None else str(amount_text), reason, scope)
    if data is None:
        return CreateResult("invalid", errors=errors, message="; ".join(e.rstrip(".") for e in errors.values()))
    if (existing := await _pending_exists(services, requester)) is not None:
        return existing
    automatic = settings.auto_approve_under_usd > 0 and data.amount <= settings.auto_approve_under_usd
    approvers = await services.approvers.resolve(requester)
    if not approvers.users and not automatic:
        return CreateResult("no_approver", message=(
            "No approver is configured for you: ask an admin to set one with /tokens admin approver, "
            "or [approvals] default_approvers in the config."))
    now = clock.now()
    try:
        async with services.db.write() as session:
            if await approvals_repo.pending_request(session, requester) is not None:
                raise _AlreadyPending
            status = await budget_status(session, settings, clock, requester)
            request = approvals_repo.add_request(
                session, requester=requester, amount_usd=data.amount, reason=data.reason, scope=data.scope,
                month=status.period, status="pending", approvers=list(approvers.users),
                limit_before_usd=status.limit_usd, created_at=now,
                expires_at=now + timedelta(hours=settings.expire_after_hours), messages=[],
            )
            await session.flush()
            audit_repo.add_audit(
                session, at=now, actor=requester, action="request.created", subject=requester, request_id=request.id,
                requested_usd=json_money(data.amount), scope=data.scope, reason=data.reason,
                approvers=list(approvers.users), approver_source=approvers.source,
                limit_usd=json_money(status.limit_usd), via=via)
            request_id = request.id
            if automatic:
                await approvals_repo.close_request(session, request_id, "approved", SYSTEM, data.amount, None, now,
                                                   automatic=True)
                await apply_approval(services, session, request, data.amount, SYSTEM, now, automatic=True,
                                     note=None)
    except (_AlreadyPending, IntegrityError):
        # a concurrent request won the one-pending index
        existing = await _pending_exists(services, requester)
        if existing is not None:
            return existing
        raise
    if automatic:
        return CreateResult("auto_approved", request_id, message=(
            f"Approved automatically: {money(data.amount)} more, {views.scope_label(data.scope)}."))
    who = " or ".join(f"<@{a}>" for a in approvers.users)
    return CreateResult("created", request_id, message=(
        f"Your request for {money(data.amount)} more ({views.scope_label(data.scope)}) went to {who}. "
        "You'll get a DM when they decide."))


# -- deciding -----------------------------------------------------------------------------------

@dataclass
class DecisionResult:
    outcome: str  # approved | denied | already_decided | not_found | own_request | not_allowed | invalid
    request_id: int
    message: str = ""  # for the clicker when nothing changed
    errors: dict[str, str] = field(default_factory=dict)
    # with approved | denied: the request as decided (its messages as of the decision), the requester's
    # budget at the decision and the limit before and after it
    request: BudgetRequest | None = None
    status: BudgetStatus | None = None
    limits: tuple[Decimal, Decimal] | None = None

    @property
    def decided(self) -> bool:
        return self.outcome in ("approved", "denied")


async def apply_approval(services: Services, session: AsyncSession, request: BudgetRequest, granted: Decimal,
                         actor: str, now: datetime, *, automatic: bool, note: str | None,
                         before: BudgetStatus | None = None) -> tuple[BudgetStatus, Decimal]:
    """The limit change, audit row and outbox row, inside the decision's transaction. Returns the
    requester's budget before and the limit after (the limit grows by exactly what was granted,
    whether as this month's raise or in the standing budget)."""
    settings, clock = services.settings, services.clock
    today = clock.today()
    if before is None:
        before = await budget_status(session, settings, clock, request.requester, day=today)
    if request.scope == "month":
        approvals_repo.add_raise(session, user_key=request.requester, month=month_key(today), amount_usd=granted,
                                 request_id=request.id, at=now)
    else:
        await queries.upsert_budget(session, request.requester, before.standing_usd + granted, actor, now)
    limit_after = before.limit_usd + granted
    audit_repo.add_audit(
        session, at=now, actor=actor, action="request.auto_approved" if automatic else "request.approved",
        subject=request.requester, request_id=request.id,
        requested_usd=json_money(request.amount_usd), granted_usd=json_money(granted), scope=request.scope,
        month=before.period, limit_before_usd=json_money(before.limit_usd), limit_after_usd=json_money(limit_after),
        automatic=automatic, reason=request.reason, note=note)
    await enforce_push.mark_person(services, session, request.requester)  # SPEC 11: enforcers follow
    if settings.limits_webhook_url:
        outbox.enqueue(session, msg_id=f"limit-changed-{request.id}", kind="limit.changed", now=now,
                       payload=outbox.limit_changed_payload(
                           user=request.requester, period=before.period, limit=limit_after,
                           previous=before.limit_usd, scope=request.scope, request_id=request.id,
                           decided_by=actor, now=now))
    return before, limit_after


def _status_words(request: BudgetRequest) -> str:
    if request.status == "expired":
        return "expired with no decision"
    verb = {"approved": "approved", "denied": "denied"}.get(request.status, request.status)
    who = "automatically" if request.automatic else f"by <@{request.decided_by}>"
    return f"was already {verb} {who}"


def already_decided(services: Services, request: BudgetRequest) -> DecisionResult:
    when = slack_moment(request.decided_at.astimezone(services.clock.tz)) if request.decided_at else ""
    granted = f" ({money(request.granted_usd)})" if request.status == "approved" and request.granted_usd else ""
    return DecisionResult("already_decided", request.id, message=(
        f"<@{request.requester}>'s request for {money(request.amount_usd)} more {_status_words(request)}{granted}"
        f"{' ' + when if when else ''}. Nothing was changed."))


async def authorise(services: Services, request: BudgetRequest, actor: str) -> DecisionResult | None:
    """None when `actor` may decide `request` (an approver of it or an admin, never the requester)."""
    approvers = " or ".join(f"<@{a}>" for a in request.approvers) or "an admin"
    team = services.settings.teams.get(request.requester[5:]) if request.requester.startswith("team:") else None
    if actor == request.requester or (team is not None and actor == team.lead):
        return DecisionResult("own_request", request.id, message=(
            f"You can't decide your own request: it is waiting for {approvers}. Nothing was changed."))
    if actor in (request.approvers or []) or await is_admin(services, actor):
        return None
    return DecisionResult("not_allowed", request.id, message=(
        f"Only {approvers} or an admin can decide <@{request.requester}>'s request for "
        f"{money(request.amount_usd)} more. "
        "Nothing was changed."))


async def _pending_request(services: Services, request_id: int) -> BudgetRequest | DecisionResult:
    """The request if it is still pending; else the answer to show (not found, already decided)."""
    async with services.db.session() as session:
        request = await approvals_repo.get_request(session, request_id)
    if request is None:
        return DecisionResult("not_found", request_id, message="That request does not exist.")
    if request.status != "pending":
        return already_decided(services, request)
    return request


async def check_can_decide(services: Services, request_id: int, actor: str) -> DecisionResult | None:
    """None when `actor` may decide the request now; else the answer to show (nothing changes)."""
    request = await _pending_request(services, request_id)
    if isinstance(request, DecisionResult):
        return request
    return await authorise(services, request, actor)


async def decide(services: Services, request_id: int, actor: str, *, approve: bool,
                 granted: Decimal | str | None = None, note: str | None = None) -> DecisionResult:
    """Approve (the requested amount, or `granted`) or deny. Exactly one decision per request wins.

    The request row is read once, before the transaction; the compare-and-set returns its
    messages as of the decision; the requester's budget is computed once, inside it."""
    request = await _pending_request(services, request_id)
    if isinstance(request, DecisionResult):
        return request
    refusal = await authorise(services, request, actor)
    if refusal is not None:
        return refusal
    amount: Decimal | None = None
    if approve:
        try:
            amount = request.amount_usd if granted is None else parse_request_amount(str(granted), services.settings)
        except ValueError as exc:
            return DecisionResult("invalid", request_id, message=str(exc), errors={views.AMOUNT_BLOCK: str(exc)})
    note = clean_text(note)
    now = services.clock.now()
    outcome = "approved" if approve else "denied"
    async with services.db.write() as session:
        messages = await approvals_repo.close_request(session, request_id, outcome, actor, amount, note, now)
        if messages is not None:
            before = await budget_status(session, services.settings, services.clock, request.requester,
                                         day=services.clock.today())
            if approve:
                _, limit_after = await apply_approval(services, session, request, amount, actor, now,
                                                      automatic=False, note=note, before=before)
            else:
                limit_after = before.limit_usd
                audit_repo.add_audit(
                    session, at=now, actor=actor, action="request.denied", subject=request.requester,
                    request_id=request_id, requested_usd=json_money(request.amount_usd), scope=request.scope,
                    note=note, limit_before_usd=json_money(before.limit_usd),
                    limit_after_usd=json_money(limit_after), automatic=False)
    if messages is None:
        async with services.db.session() as session:
            request = await approvals_repo.get_request(session, request_id)
        return already_decided(services, request)
    request.status, request.decided_by, request.decided_at = outcome, actor, now
    request.granted_usd, request.decision_note, request.automatic, request.messages = amount, note, False, messages
    return DecisionResult(outcome, request_id, request=request, status=before, limits=(before.limit_usd, limit_after))


async def expire(services: Services, request_id: int, now: datetime) -> bool:
    """Close one request past its expiry, audited; False when it was decided (or expired) elsewhere."""
    async with services.db.write() as session:
        if await approvals_repo.close_request(session, request_id, "expired", SYSTEM, None, None, now) is None:
            return False
        request = await approvals_repo.get_request(session, request_id)
        limit = (await budget_status(session, services.settings, services.clock, request.requester)).limit_usd
        audit_repo.add_audit(
            session, at=now, actor=SYSTEM, action="request.expired", subject=request.requester, request_id=request_id,
            requested_usd=json_money(request.amount_usd), scope=request.scope,
            limit_before_usd=json_money(limit), limit_after_usd=json_money(limit), automatic=True)
    return True
