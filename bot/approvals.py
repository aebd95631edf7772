"""The approval flow (SPEC 7): who approves, asking, deciding, reminding, expiring, history.

Every once-only step is a database fact, so it holds with several processes:
- one pending request per person: the partial unique index `uq_budget_requests_one_pending`
  (a second insert fails; we answer with the first request);
- a decision: `UPDATE budget_requests SET status=… WHERE id=:id AND status='pending'` in
  the same transaction as the limit change, the audit row and the outbox row; the one
  process whose UPDATE changed a row won, everybody else is told who decided;
- a reminder: `UPDATE … SET reminded_at=… WHERE reminded_at IS NULL`; an expiry: the
  same compare-and-set as a decision.
Slack messages are sent after the commit. Each approver DM is stored (channel, ts) in
`budget_requests.messages`, so any process can `chat.update` it; entries are marked with
the state they show, and the sweep job repairs what a crashed process left undone
(messages still showing buttons, a requester not told) after `REPAIR_AFTER`.

Decisions taken here (SPEC is silent):
- The approver order is SPEC 7's; when nobody is found (no default approvers) the
  configured `admins` are asked; with none of those either, the request is refused.
- `auto_approve_under_usd`: requests *up to* that amount are approved at once (SPEC 7
  says "up to"); 0 turns it off. They are decided by "tokenbot", marked automatic.
- Amounts are US dollars with at most two decimals, above 0 and at most
  `max_request_usd`; an approver granting another amount is held to the same cap.
- A "this month only" raise is added to the month the decision is taken in (normally the
  request's month; a request approved after its month ended raises the new month, since
  a raise for a finished month would grant nothing).
- At the reminder, `default_approvers` are added to the request's approvers and get the
  full message with buttons; the first approvers get a reminder in their DM's thread.
- Reasons and notes are kept to 500 characters.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from apscheduler.triggers.interval import IntervalTrigger
from slack_sdk.errors import SlackApiError
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot import outbox
from bot.budgets import budget_status, forecast, standing_budget, trailing_spend
from bot.clock import month_key, parse_month
from bot.config import SLACK_USER_ID, Settings
from bot.limits import money as api_money
from bot.limits import pending_request
from bot.people import display_names, is_admin
from bot.scheduler import JOB_FACTORIES, JobSpec
from bot.services import Services
from bot.views import approvals as views
from bot.views.format import money
from storage import queries
from storage.models import ApproverAssignment, AuditRecord, BudgetRaise, BudgetRequest, UsageDaily

log = logging.getLogger(__name__)

SYSTEM = "tokenbot"  # the actor of automatic approvals, reminders and expiries
REPAIR_AFTER = timedelta(minutes=2)
REPAIR_WINDOW = timedelta(days=7)
FIELD_CACHE_SECONDS = 3600.0
TREND_DAYS = 14
CENT = Decimal("0.01")
SCOPES = ("month", "standing")
FINAL_ACTIONS = {"approved": "request.approved", "denied": "request.denied", "expired": "request.expired"}


# -- who approves -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Approvers:
    users: tuple[str, ...]
    source: str  # config | admin | profile | default | admins | none


async def resolve_approvers(services: Services, requester: str) -> Approvers:
    """SPEC 7 order: [approvals.approver], /tokens admin approver, the Manager profile field,
    default_approvers (then admins). Never the requester."""
    settings = services.settings
    configured = settings.approvers.get(requester)
    if configured and configured != requester:
        return Approvers((configured,), "config")
    async with services.db.session() as session:
        assigned = await session.get(ApproverAssignment, requester)
    if assigned is not None and assigned.approver != requester:
        return Approvers((assigned.approver,), "admin")
    manager = await manager_from_profile(services, requester)
    if manager:
        return Approvers((manager,), "profile")
    defaults = tuple(dict.fromkeys(u for u in settings.default_approvers if u != requester))
    if defaults:
        return Approvers(defaults, "default")
    admins = tuple(dict.fromkeys(u for u in settings.admins if u != requester))
    if admins:
        return Approvers(admins, "admins")
    return Approvers((), "none")


_FIELD_KEY = "_tokenbot_manager_field"


async def _manager_field_id(services: Services) -> str | None:
    """The id of the custom profile field labelled `approvals.manager_field` (team.profile.get, cached)."""
    cached = getattr(services, _FIELD_KEY, None)
    if cached is not None and cached[1] > time.monotonic():
        return cached[0]
    label = (services.settings.manager_field or "").casefold()
    found: str | None = None
    try:
        response = await services.slack.team_profile_get()
    except SlackApiError as exc:
        log.warning("team.profile.get failed (%s): no manager field", exc.response.get("error"))
        setattr(services, _FIELD_KEY, (None, time.monotonic() + 300))
        return None
    for profile_field in (response.get("profile") or {}).get("fields") or []:
        if str(profile_field.get("label", "")).strip().casefold() == label and profile_field.get("type") == "user":
            found = profile_field.get("id")
            break
    setattr(services, _FIELD_KEY, (found, time.monotonic() + FIELD_CACHE_SECONDS))
    return found


async def manager_from_profile(services: Services, user: str) -> str | None:
    if not services.settings.manager_field or services.slack is None or not SLACK_USER_ID.match(user):
        return None
    field_id = await _manager_field_id(services)
    if not field_id:
        return None
    try:
        response = await services.slack.users_profile_get(user=user)
    except SlackApiError as exc:
        log.warning("users.profile.get %s failed: %s", user, exc.response.get("error"))
        return None
    value = (((response.get("profile") or {}).get("fields") or {}).get(field_id) or {}).get("value") or ""
    for candidate in re.split(r"[,\s]+", str(value)):
        if SLACK_USER_ID.match(candidate) and candidate != user:
            return candidate
    return None


# -- input --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RequestInput:
    amount: Decimal
    reason: str | None
    scope: str


def parse_amount(text: str | None, settings: Settings) -> Decimal:
    """A raise in USD: '50', '$1,250.50'. Raises ValueError with the message to show."""
    cleaned = re.sub(r"(?i)^\s*(usd|\$)\s*|\s*(usd)\s*$", "", (text or "").strip()).replace(",", "").strip()
    cleaned = cleaned.removeprefix("$").strip()
    try:
        amount = Decimal(cleaned)
    except InvalidOperation:
        raise ValueError("Enter an amount in US dollars, like 50 or 49.99") from None
    if not amount.is_finite():
        raise ValueError("Enter an amount in US dollars, like 50 or 49.99")
    if amount <= 0:
        raise ValueError("The amount must be more than $0")
    if amount != amount.quantize(CENT):
        raise ValueError("Use at most two decimals (cents)")
    if amount > settings.max_request_usd:
        raise ValueError(f"At most {money(settings.max_request_usd)} per request")
    return amount.quantize(CENT)


def clean_text(text: str | None) -> str | None:
    text = (text or "").strip()
    return text[: views.REASON_MAX] if text else None


def check_input(settings: Settings, amount_text: str | None, reason: str | None,
                scope: str | None) -> tuple[RequestInput | None, dict[str, str]]:
    """Validate a request; errors are keyed by the modal's block ids."""
    errors: dict[str, str] = {}
    amount = Decimal(0)
    try:
        amount = parse_amount(amount_text, settings)
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


# -- views of a request -------------------------------------------------------------------------

def month_label(month: str) -> str:
    return f"{parse_month(month):%B %Y}"


async def _decision_audit(session: AsyncSession, request_id: int) -> dict[str, Any]:
    row = await session.scalar(
        select(AuditRecord)
        .where(AuditRecord.request_id == request_id, AuditRecord.action.in_(
            ["request.approved", "request.auto_approved", "request.denied", "request.expired"]))
        .order_by(AuditRecord.id.desc())
        .limit(1)
    )
    return dict(row.details) if row is not None else {}


async def build_view(services: Services, session: AsyncSession, request: BudgetRequest,
                     names: dict[str, str] | None = None, *, escalated_from: Iterable[str] = ()) -> views.RequestView:
    clock, settings = services.clock, services.settings
    today = clock.today()
    status = await budget_status(session, settings, clock, request.requester, day=today)
    spent_7 = await trailing_spend(session, request.requester, today)
    spent_14 = dict((await session.execute(
        select(UsageDaily.day, UsageDaily.cost_usd).where(
            UsageDaily.user_key == request.requester,
            UsageDaily.day > today - timedelta(days=TREND_DAYS), UsageDaily.day <= today)
    )).all())
    trend = tuple(spent_14.get(today - timedelta(days=back), Decimal(0)) for back in range(TREND_DAYS - 1, -1, -1))
    if request.status == "pending":
        limit_before = status.limit_usd
        limit_after = status.limit_usd + request.amount_usd
    else:
        details = await _decision_audit(session, request.id)
        limit_before = Decimal(details.get("limit_before_usd", status.limit_usd))
        limit_after = Decimal(details.get("limit_after_usd", limit_before))
    tz = clock.tz
    return views.RequestView(
        id=request.id,
        requester=request.requester,
        amount_usd=request.amount_usd,
        scope=request.scope,
        month_label=month_label(request.month),
        status=request.status,
        reason=request.reason,
        approvers=tuple(request.approvers or ()),
        created_at=request.created_at.astimezone(tz),
        expires_at=request.expires_at.astimezone(tz),
        spent_usd=status.spent_usd,
        limit_usd=limit_before,
        limit_after_usd=limit_after,
        projected_usd=forecast(status, spent_7, today).projected_month_end,
        trend=trend,
        last7_usd=sum(trend[-7:], Decimal(0)),
        prev7_usd=sum(trend[:7], Decimal(0)),
        granted_usd=request.granted_usd,
        decided_by=request.decided_by,
        decided_at=request.decided_at.astimezone(tz) if request.decided_at else None,
        note=request.decision_note,
        automatic=request.automatic,
        escalated_from=tuple(escalated_from),
        names=names or {},
    )


async def request_view(services: Services, request_id: int, **kwargs) -> views.RequestView | None:
    async with services.db.session() as session:
        request = await session.get(BudgetRequest, request_id)
        if request is None:
            return None
        names = await display_names(services, [request.requester, *request.approvers,
                                               *([request.decided_by] if request.decided_by else [])])
        return await build_view(services, session, request, names, **kwargs)


# -- asking -------------------------------------------------------------------------------------

@dataclass
class CreateResult:
    outcome: str  # created | auto_approved | pending_exists | invalid | no_approver
    request_id: int | None = None
    errors: dict[str, str] = field(default_factory=dict)
    message: str = ""  # a line for the requester (command answer, modal notice)


def _pending_message(request: BudgetRequest, link: str | None) -> str:
    where = f"<{link}|request #{request.id}>" if link else f"request #{request.id}"
    who = " or ".join(f"<@{a}>" for a in request.approvers) or "an admin"
    return (f"You already have a pending request: {where} for {money(request.amount_usd)} more, waiting for {who}. "
            "One request at a time.")


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


async def pending_id(services: Services, requester: str) -> int | None:
    """The requester's pending request, from the database only (fast enough before an ack)."""
    async with services.db.session() as session:
        return await session.scalar(select(BudgetRequest.id).where(
            BudgetRequest.requester == requester, BudgetRequest.status == "pending"))


async def pending_exists(services: Services, requester: str) -> CreateResult | None:
    async with services.db.session() as session:
        existing = await pending_request(session, requester)
    if existing is None:
        return None
    link = await request_link(services, existing)
    return CreateResult("pending_exists", existing.id, message=_pending_message(existing, link))


async def create_request(services: Services, requester: str, amount_text: str | Decimal | None,
                         reason: str | None, scope: str | None = "month", *, via: str = "slack") -> CreateResult:
    """Validate and store a request (pending, or approved at once when small enough). No Slack messages:
    `announce_request` sends those."""
    settings, clock = services.settings, services.clock
    data, errors = check_input(settings, None if amount_text is None else str(amount_text), reason, scope)
    if data is None:
        return CreateResult("invalid", errors=errors, message="; ".join(errors.values()))
    if (existing := await pending_exists(services, requester)) is not None:
        return existing
    automatic = settings.auto_approve_under_usd > 0 and data.amount <= settings.auto_approve_under_usd
    approvers = await resolve_approvers(services, requester)
    if not approvers.users and not automatic:
        return CreateResult("no_approver", message=(
            "No approver is configured for you: ask an admin to set one with /tokens admin approver, "
            "or [approvals] default_approvers in the config."))
    now = clock.now()
    try:
        async with services.db.write() as session:
            if await pending_request(session, requester) is not None:
                raise _AlreadyPending
            status = await budget_status(session, settings, clock, requester)
            request = BudgetRequest(
                requester=requester, amount_usd=data.amount, reason=data.reason, scope=data.scope,
                month=status.period, status="pending", approvers=list(approvers.users),
                limit_before_usd=status.limit_usd, created_at=now,
                expires_at=now + timedelta(hours=settings.expire_after_hours), messages=[],
            )
            session.add(request)
            await session.flush()
            session.add(AuditRecord(at=now, actor=requester, action="request.created", subject_user=requester,
                                    request_id=request.id, details={
                                        "requested_usd": api_money(data.amount), "scope": data.scope,
                                        "reason": data.reason, "approvers": list(approvers.users),
                                        "approver_source": approvers.source, "limit_usd": api_money(status.limit_usd),
                                        "via": via}))
            request_id = request.id
            if automatic:
                await _close(session, request_id, "approved", SYSTEM, data.amount, None, now, automatic=True)
                await _apply_approval(services, session, request_id, requester, data.scope, data.amount,
                                      data.amount, SYSTEM, now, automatic=True, reason=data.reason, note=None)
    except (_AlreadyPending, IntegrityError):
        # a concurrent request won the one-pending index
        existing = await pending_exists(services, requester)
        if existing is not None:
            return existing
        raise
    if automatic:
        return CreateResult("auto_approved", request_id, message=(
            f"Approved automatically: {money(data.amount)} more, {views.scope_label(data.scope)}."))
    who = " or ".join(f"<@{a}>" for a in approvers.users)
    return CreateResult("created", request_id, message=(
        f"Request #{request_id} for {money(data.amount)} more ({views.scope_label(data.scope)}) went to {who}. "
        "You'll get a DM when they decide."))


class _AlreadyPending(Exception):
    pass


async def submit_request(services: Services, requester: str, amount_text: str | Decimal | None,
                         reason: str | None, scope: str | None = "month", *, via: str = "slack") -> CreateResult:
    """Create, then tell the approvers and the requester (or the requester only, when automatic)."""
    result = await create_request(services, requester, amount_text, reason, scope, via=via)
    if result.outcome == "created":
        await announce_request(services, result.request_id)
    elif result.outcome == "auto_approved":
        await after_decision(services, result.request_id)
    return result


async def _post(services: Services, channel: str, text: str, blocks: list[dict], **extra) -> dict[str, str] | None:
    """chat.postMessage; the (channel, ts) to keep, or None when Slack refused."""
    if services.slack is None:
        return None
    try:
        response = await services.slack.chat_postMessage(channel=channel, text=text, blocks=blocks, **extra)
    except SlackApiError as exc:
        log.warning("chat.postMessage to %s failed: %s", channel, exc.response.get("error"))
        return None
    return {"channel": response["channel"], "ts": response["ts"]}


async def _add_messages(services: Services, request_id: int, entries: list[dict[str, str]]) -> None:
    if not entries:
        return
    async with services.db.write() as session:
        request = await session.scalar(
            select(BudgetRequest).where(BudgetRequest.id == request_id).with_for_update()
        )
        request.messages = [*(request.messages or []), *entries]


async def announce_request(services: Services, request_id: int) -> views.RequestView | None:
    """DM every approver (kept for chat.update) and tell the requester where it went."""
    view = await request_view(services, request_id)
    if view is None:
        return None
    stored = []
    text, blocks = views.approval_fallback(view), views.approval_blocks(view)
    for approver in view.approvers:
        posted = await _post(services, approver, text, blocks)
        if posted:
            stored.append({"role": "approver", "user": approver, "shown": "pending", **posted})
    notice = views.RequesterNotice("submitted", view)
    posted = await _post(services, view.requester, views.notice_fallback(notice), views.notice_blocks(notice))
    if posted:
        stored.append({"role": "requester", "user": view.requester, **posted})
    await _add_messages(services, request_id, stored)
    async with services.db.session() as session:
        status = await session.scalar(select(BudgetRequest.status).where(BudgetRequest.id == request_id))
    if status != "pending":  # decided while we were posting: show the outcome on what we just sent
        await after_decision(services, request_id)
    return view


# -- deciding -----------------------------------------------------------------------------------

@dataclass
class DecisionResult:
    outcome: str  # approved | denied | already_decided | not_found | own_request | not_allowed | invalid
    request_id: int
    message: str = ""  # for the clicker when nothing changed
    errors: dict[str, str] = field(default_factory=dict)


async def _close(session: AsyncSession, request_id: int, status: str, actor: str, granted: Decimal | None,
                 note: str | None, now: datetime, *, automatic: bool = False) -> bool:
    """The compare-and-set: True only for the one transaction that moved the request out of pending."""
    result = await session.execute(
        update(BudgetRequest)
        .where(BudgetRequest.id == request_id, BudgetRequest.status == "pending")
        .values(status=status, decided_by=actor, decided_at=now, granted_usd=granted, decision_note=note,
                automatic=automatic)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def limit_changed_payload(*, user: str, period: str, limit: Decimal, previous: Decimal, scope: str,
                          request_id: int | None, decided_by: str, now: datetime) -> dict[str, Any]:
    """The `limit.changed` event; `request_id` is None when an admin set the budget directly."""
    return {
        "type": "limit.changed",
        "timestamp": now.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "data": {
            "user": user,
            "period": period,
            "limit_usd": api_money(limit),
            "previous_limit_usd": api_money(previous),
            "scope": "this_month" if scope == "month" else "from_now_on",
            "request_id": request_id,
            "decided_by": decided_by,
        },
    }


async def _apply_approval(services: Services, session: AsyncSession, request_id: int, requester: str, scope: str,
                          requested: Decimal, granted: Decimal, actor: str, now: datetime, *, automatic: bool,
                          reason: str | None, note: str | None) -> tuple[Decimal, Decimal]:
    """The limit change, audit row and outbox row, inside the decision's transaction."""
    settings, clock = services.settings, services.clock
    today = clock.today()
    before = await budget_status(session, settings, clock, requester, day=today)
    if scope == "month":
        session.add(BudgetRaise(user_key=requester, month=month_key(today), amount_usd=granted,
                                request_id=request_id, created_at=now))
    else:
        standing = await standing_budget(session, settings, requester)
        await queries.upsert_budget(session, requester, standing + granted, actor, now)
    await session.flush()
    after = await budget_status(session, settings, clock, requester, day=today)
    session.add(AuditRecord(
        at=now, actor=actor, action="request.auto_approved" if automatic else "request.approved",
        subject_user=requester, request_id=request_id, details={
            "requested_usd": api_money(requested), "granted_usd": api_money(granted), "scope": scope,
            "month": before.period,
            "limit_before_usd": api_money(before.limit_usd), "limit_after_usd": api_money(after.limit_usd),
            "automatic": automatic, "reason": reason, "note": note,
        }))
    if settings.limits_webhook_url:
        outbox.enqueue(session, msg_id=f"limit-changed-{request_id}", kind="limit.changed", now=now,
                       payload=limit_changed_payload(user=requester, period=before.period, limit=after.limit_usd,
                                                     previous=before.limit_usd, scope=scope,
                                                     request_id=request_id, decided_by=actor, now=now))
    return before.limit_usd, after.limit_usd


def _status_words(request: BudgetRequest) -> str:
    if request.status == "expired":
        return "expired with no decision"
    verb = {"approved": "approved", "denied": "denied"}.get(request.status, request.status)
    who = "automatically" if request.automatic else f"by <@{request.decided_by}>"
    return f"was already {verb} {who}"


async def already_decided(services: Services, request: BudgetRequest) -> DecisionResult:
    when = views.local_text(request.decided_at.astimezone(services.clock.tz)) if request.decided_at else ""
    granted = f" ({money(request.granted_usd)})" if request.status == "approved" and request.granted_usd else ""
    return DecisionResult("already_decided", request.id, message=(
        f"Request #{request.id} from <@{request.requester}> {_status_words(request)}{granted}"
        f"{' on ' + when if when else ''}. Nothing was changed."))


async def authorise(services: Services, request: BudgetRequest, actor: str) -> DecisionResult | None:
    """None when `actor` may decide `request` (an approver of it or an admin, never the requester)."""
    if actor == request.requester:
        approvers = " or ".join(f"<@{a}>" for a in request.approvers) or "an admin"
        return DecisionResult("own_request", request.id, message=(
            f"You can't decide your own request #{request.id}: it is waiting for {approvers}. Nothing was changed."))
    if actor in (request.approvers or []) or await is_admin(services, actor):
        return None
    approvers = " or ".join(f"<@{a}>" for a in request.approvers) or "an admin"
    return DecisionResult("not_allowed", request.id, message=(
        f"Only {approvers} or an admin can decide request #{request.id} from <@{request.requester}>. "
        "Nothing was changed."))


async def _pending_request(services: Services, request_id: int) -> BudgetRequest | DecisionResult:
    """The request if it is still pending; else the answer to show (not found, already decided)."""
    async with services.db.session() as session:
        request = await session.get(BudgetRequest, request_id)
    if request is None:
        return DecisionResult("not_found", request_id, message=f"Request #{request_id} does not exist.")
    if request.status != "pending":
        return await already_decided(services, request)
    return request


async def check_can_decide(services: Services, request_id: int, actor: str) -> DecisionResult | None:
    """None when `actor` may decide the request now; else the answer to show (nothing changes)."""
    request = await _pending_request(services, request_id)
    if isinstance(request, DecisionResult):
        return request
    return await authorise(services, request, actor)


async def decide(services: Services, request_id: int, actor: str, *, approve: bool,
                 granted: Decimal | str | None = None, note: str | None = None) -> DecisionResult:
    """Approve (the requested amount, or `granted`) or deny. Exactly one decision per request wins."""
    request = await _pending_request(services, request_id)
    if isinstance(request, DecisionResult):
        return request
    refusal = await authorise(services, request, actor)
    if refusal is not None:
        return refusal
    amount: Decimal | None = None
    if approve:
        try:
            amount = request.amount_usd if granted is None else parse_amount(str(granted), services.settings)
        except ValueError as exc:
            return DecisionResult("invalid", request_id, message=str(exc), errors={views.AMOUNT_BLOCK: str(exc)})
    note = clean_text(note)
    now = services.clock.now()
    async with services.db.write() as session:
        won = await _close(session, request_id, "approved" if approve else "denied", actor, amount, note, now)
        if won:
            if approve:
                await _apply_approval(services, session, request_id, request.requester, request.scope,
                                      request.amount_usd, amount, actor, now, automatic=False,
                                      reason=request.reason, note=note)
            else:
                limit = (await budget_status(session, services.settings, services.clock, request.requester)).limit_usd
                session.add(AuditRecord(
                    at=now, actor=actor, action="request.denied", subject_user=request.requester,
                    request_id=request_id, details={
                        "requested_usd": api_money(request.amount_usd), "scope": request.scope, "note": note,
                        "limit_before_usd": api_money(limit), "limit_after_usd": api_money(limit), "automatic": False}))
    if not won:
        async with services.db.session() as session:
            request = await session.get(BudgetRequest, request_id)
        return await already_decided(services, request)
    return DecisionResult("approved" if approve else "denied", request_id)


@dataclass
class Announcement:
    """What a decision (or expiry) put on screen, for the demo and tests."""

    approver_view: views.RequestView
    notice: views.RequesterNotice | None


async def after_decision(services: Services, request_id: int) -> Announcement | None:
    """Update the approvers' messages in place, tell the requester, push limit.changed."""
    outbox.kick(services)
    view = await request_view(services, request_id)
    if view is None or view.pending:
        return None
    notice = views.RequesterNotice(view.status, view)
    async with services.db.session() as session:
        request = await session.get(BudgetRequest, request_id)
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
                if error not in ("message_not_found", "channel_not_found", "cant_update_message",
                                 "edit_window_closed", "is_archived"):
                    continue  # retried by the sweep
            marks[(entry["channel"], entry["ts"])] = view.status
        new_entries = []
        if not told:
            posted = await _post(services, view.requester, views.notice_fallback(notice), views.notice_blocks(notice))
            if posted:
                new_entries.append({"role": "outcome", "user": view.requester, **posted})
        if marks or new_entries:
            async with services.db.write() as session:
                row = await session.scalar(
                    select(BudgetRequest).where(BudgetRequest.id == request_id).with_for_update())
                updated = []
                for entry in row.messages or []:
                    key = (entry.get("channel"), entry.get("ts"))
                    updated.append({**entry, "shown": marks[key]} if key in marks else entry)
                row.messages = updated + new_entries
    return Announcement(view, notice)


# -- reminders, expiry and repair (the sweep job) -------------------------------------------------

async def expire_due(services: Services) -> list[int]:
    """Close pending requests past `expires_at`; each expires exactly once, whichever process runs this."""
    now = services.clock.now()
    async with services.db.session() as session:
        due = list(await session.scalars(
            select(BudgetRequest.id).where(BudgetRequest.status == "pending", BudgetRequest.expires_at <= now)
            .order_by(BudgetRequest.id)))
    expired = []
    for request_id in due:
        async with services.db.write() as session:
            if not await _close(session, request_id, "expired", SYSTEM, None, None, now):
                continue
            request = await session.get(BudgetRequest, request_id)
            limit = (await budget_status(session, services.settings, services.clock, request.requester)).limit_usd
            session.add(AuditRecord(
                at=now, actor=SYSTEM, action="request.expired", subject_user=request.requester, request_id=request_id,
                details={"requested_usd": api_money(request.amount_usd), "scope": request.scope,
                         "limit_before_usd": api_money(limit), "limit_after_usd": api_money(limit), "automatic": True}))
        expired.append(request_id)
    for request_id in expired:
        await after_decision(services, request_id)
    return expired


async def remind_due(services: Services) -> list[int]:
    """One reminder per request after `remind_after_hours`: to its approvers and to default_approvers."""
    settings = services.settings
    now = services.clock.now()
    cutoff = now - timedelta(hours=settings.remind_after_hours)
    async with services.db.session() as session:
        due = list(await session.scalars(
            select(BudgetRequest.id).where(
                BudgetRequest.status == "pending", BudgetRequest.reminded_at.is_(None),
                BudgetRequest.created_at <= cutoff, BudgetRequest.expires_at > now)
            .order_by(BudgetRequest.id)))
    reminded = []
    for request_id in due:
        async with services.db.write() as session:
            claimed = await session.execute(
                update(BudgetRequest)
                .where(BudgetRequest.id == request_id, BudgetRequest.status == "pending",
                       BudgetRequest.reminded_at.is_(None))
                .values(reminded_at=now)
                .execution_options(synchronize_session=False))
            if claimed.rowcount != 1:
                continue
            request = await session.scalar(
                select(BudgetRequest).where(BudgetRequest.id == request_id).execution_options(populate_existing=True))
            first = list(request.approvers or [])
            extra = [u for u in settings.default_approvers if u not in first and u != request.requester]
            if extra:
                request.approvers = first + extra
            session.add(AuditRecord(at=now, actor=SYSTEM, action="request.reminded", subject_user=request.requester,
                                    request_id=request_id, details={"approvers": first, "escalated_to": extra}))
            messages = list(request.messages or [])
            created_at = request.created_at
        reminded.append(request_id)
        await _send_reminder(services, request_id, first, extra, messages, int((now - created_at).total_seconds()
                                                                              // 3600))
    return reminded


async def _send_reminder(services: Services, request_id: int, first: list[str], extra: list[str],
                         messages: list[dict], hours: int) -> None:
    if services.slack is None:
        return
    view = await request_view(services, request_id)
    threads = {e["user"]: e for e in messages if e.get("role") == "approver"}
    text = views.reminder_text(view, hours, slack=False)
    for approver in first:
        thread = threads.get(approver)
        if thread:
            await _post(services, thread["channel"], text, views.reminder_blocks(view, hours),
                        thread_ts=thread["ts"], reply_broadcast=True)
        else:
            await _post(services, approver, views.approval_fallback(view), views.approval_blocks(view))
    if extra:
        escalated = await request_view(services, request_id, escalated_from=first)
        stored = []
        for approver in extra:
            posted = await _post(services, approver, views.approval_fallback(escalated),
                                 views.approval_blocks(escalated))
            if posted:
                stored.append({"role": "approver", "user": approver, "shown": "pending", **posted})
        await _add_messages(services, request_id, stored)


async def repair_messages(services: Services) -> list[int]:
    """Finish what a crashed process left: decided requests whose DMs still show buttons or whose
    requester was not told. Only requests decided more than REPAIR_AFTER ago (the decider's own job)."""
    now = services.clock.now()
    async with services.db.session() as session:
        rows = list(await session.execute(
            select(BudgetRequest.id, BudgetRequest.status, BudgetRequest.messages).where(
                BudgetRequest.status != "pending",
                BudgetRequest.decided_at <= now - REPAIR_AFTER,
                BudgetRequest.decided_at > now - REPAIR_WINDOW)))
    repaired = []
    for request_id, status, messages in rows:
        messages = messages or []
        stale = any(e.get("role") == "approver" and e.get("shown") != status for e in messages)
        untold = messages and not any(e.get("role") == "outcome" for e in messages)
        if stale or untold:
            await after_decision(services, request_id)
            repaired.append(request_id)
    return repaired


async def sweep(services: Services) -> None:
    """The scheduler job: expiries, reminders, repairs. Idempotent in the database."""
    await expire_due(services)
    await remind_due(services)
    await repair_messages(services)


def _jobs(services: Services) -> list[JobSpec]:
    return [JobSpec("approvals-sweep", sweep, IntervalTrigger(seconds=60))]


JOB_FACTORIES.append(_jobs)


# -- for approvers and admins ----------------------------------------------------------------------

async def pending_for(services: Services, approver: str) -> list[views.RequestView]:
    """Pending requests this person is an approver of (App Home), oldest first."""
    async with services.db.session() as session:
        rows = [r for r in await session.scalars(
            select(BudgetRequest).where(BudgetRequest.status == "pending").order_by(BudgetRequest.created_at))
            if approver in (r.approvers or [])]
        if not rows:
            return []
        names = await display_names(services, [p for r in rows for p in (r.requester, *r.approvers)])
        return [await build_view(services, session, r, names) for r in rows]


async def audit_history(services: Services, user: str | None = None, limit: int = 40) -> list[views.AuditLine]:
    """Requests and decisions, newest first; for one person with `user`."""
    query = select(AuditRecord).order_by(AuditRecord.at.desc(), AuditRecord.id.desc()).limit(limit)
    if user:
        query = query.where(AuditRecord.subject_user == user)
    async with services.db.session() as session:
        rows = list(await session.scalars(query))
    tz = services.clock.tz
    return [views.AuditLine(at=r.at.astimezone(tz), actor=r.actor, action=r.action, subject=r.subject_user,
                            request_id=r.request_id, details=dict(r.details or {})) for r in rows]



# -- /tokens words and the App Home (the /tokens feature's registries) ----------------------------

REQUEST_USAGE = "Usage: `/tokens request <amount> [reason]`, e.g. `/tokens request 50 eval run` (this month only)."
AUDIT_USAGE = "Usage: `/tokens admin audit` for everyone, or `/tokens admin audit @person`."


async def open_request_modal(services: Services, trigger_id: str) -> dict | None:
    """views.open the request form; call it right after the ack (the trigger lives 3 s)."""
    if services.slack is None:
        return None
    response = await services.slack.views_open(trigger_id=trigger_id,
                                               view=views.request_modal(services.settings.max_request_usd))
    return response["view"]


async def request_command(invocation: Any) -> Any:
    """`/tokens request <amount> [reason]`: a raise for this month only; alone, it opens the form."""
    from bot.views.help import Notice

    services, user = invocation.services, invocation.user_id
    text = (invocation.text or "").strip()
    if not text:
        if invocation.trigger_id and services.slack is not None:
            try:
                await open_request_modal(services, invocation.trigger_id)
                return Notice("Fill in the form to ask for more budget.")
            except SlackApiError as exc:
                log.warning("views.open for /tokens request failed: %s", exc.response.get("error"))
        return Notice(REQUEST_USAGE, ok=False)
    amount, _, reason = text.partition(" ")
    result = await submit_request(services, user, amount, reason.strip() or None, "month", via="command")
    if result.outcome == "invalid":
        return Notice(f"{result.message}. {REQUEST_USAGE}", ok=False)
    return Notice(result.message, ok=result.outcome in ("created", "auto_approved"))


async def audit_command(invocation: Any) -> Any:
    """`/tokens admin audit [@person]`: requests and decisions, newest first (admins only)."""
    from bot.commands import parse_user
    from bot.views.help import Message, Notice

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
    return Message(views.audit_fallback(subject, lines), views.audit_blocks(subject, lines, names))


async def home_section(services: Services, user_id: str) -> list[dict]:
    """App Home: the requests waiting for this person's decision, with the DM's buttons."""
    return views.home_pending_blocks(await pending_for(services, user_id))


def register_slack_features() -> None:
    """Add "request" and "admin audit" to /tokens and the approver list to the App Home (idempotent)."""
    from bot.commands import EXTRA_COMMANDS
    from bot.home import HOME_SECTIONS

    EXTRA_COMMANDS["request"] = request_command
    EXTRA_COMMANDS["admin audit"] = audit_command
    if home_section not in HOME_SECTIONS:
        HOME_SECTIONS.append(home_section)


# -- the demo: one request walked through, as text -----------------------------------------------

async def demo_walkthrough(services: Services, amount: str = "75", reason: str = "load test for the launch") -> str:
    """Ask, notify, approve, update, push: each message as the text Slack would show (no Slack needed).
    The requester is whoever has used the largest share of their budget, approvers and admins aside."""
    from bot.limits import limits_for

    settings = services.settings
    reserved = {*settings.default_approvers, *settings.admins, *settings.approvers.values()}
    async with services.db.session() as session:
        ranked = await queries.leaderboard_month(session, month_key(services.clock.today()))
        shares = {r.key: (await budget_status(session, settings, services.clock, r.key)).used_share
                  for r in ranked if SLACK_USER_ID.match(r.key) and r.key not in reserved}
    requester = max(shares, key=lambda key: shares[key], default=None)
    if requester is None:
        return "Approval walkthrough: nobody to ask (no spend yet)."
    names = await display_names(services, [requester, *reserved])
    who = names.get(requester, requester)
    out = ["One budget request, start to finish", "",
           f"1. {who} types: /tokens request {amount} {reason}"]
    created = await create_request(services, requester, amount, reason, "month", via="demo")
    if created.outcome != "created":
        return "\n".join([*out, f"   (not created: {created.outcome}: {created.message})"])
    view = await request_view(services, created.request_id)
    approver = view.approvers[0]
    out += ["", f"2. DM to {view.name(approver)} (the approver):", _indent(views.approval_text(view)),
            "", f"   DM to {who}:", _indent(views.notice_text(views.RequesterNotice("submitted", view)))]
    decided = await decide(services, created.request_id, approver, approve=True)
    shown = await after_decision(services, created.request_id)
    out += ["", f"3. {view.name(approver)} clicks Approve and confirms ({decided.outcome}).",
            "", f"4. {view.name(approver)}'s message, updated in place (buttons gone):",
            _indent(views.approval_text(shown.approver_view)),
            "", f"   DM to {who}:", _indent(views.notice_text(shown.notice))]
    limits = await limits_for(services, requester)
    final = shown.approver_view
    event = limit_changed_payload(user=requester, period=limits["period"], limit=final.limit_after_usd,
                                  previous=final.limit_usd, scope=final.scope, request_id=final.id,
                                  decided_by=approver, now=final.decided_at)
    import json

    out += ["", "5. limit.changed, signed (Standard Webhooks) and delivered through the outbox to "
            "LIMITS_WEBHOOK_URL when it is set:", _indent(json.dumps(event, indent=2)),
            "", f"   GET /api/v1/limits/{requester}: limit_usd {limits['limit_usd']}, "
            f"spent_usd {limits['spent_usd']}, pending_request {limits['pending_request']}",
            "", "6. /tokens admin audit:",
            _indent(views.audit_text(requester, await audit_history(services, requester),
                                     await display_names(services, [requester, approver])))]
    return "\n".join(out)


def _indent(text: str, prefix: str = "   ") -> str:
    return "\n".join(prefix + line for line in text.splitlines())
