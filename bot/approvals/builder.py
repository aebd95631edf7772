"""Budget requests as people see them: rows -> `RequestView` and `AuditLine` (bot/views)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from bot.budgets import BudgetStatus, budget_status, forecast
from bot.clock import month_label, month_last_day
from bot.people import resolve_names
from bot.services import Services
from bot.views import approvals as views
from bot.views.audit import AuditLine
from storage import approvals_repo, audit_repo, queries, teams_repo
from storage.models import BudgetRequest

ZERO = Decimal(0)


async def build_view(services: Services, session: AsyncSession, request: BudgetRequest,
                     names: dict[str, str] | None = None, *, escalated_from: Iterable[str] = (),
                     status: BudgetStatus | None = None,
                     limits: tuple[Decimal, Decimal] | None = None) -> views.RequestView:
    """`status` (the requester's budget today) and `limits` (before, after a decision) are passed
    by a caller that already has them; otherwise they are read here."""
    clock = services.clock
    today = clock.today()
    if status is None:
        status = await budget_status(session, services.settings, clock, request.requester, day=today)
    if request.requester.startswith("team:"):  # a team's raise: the team's days (SPEC 13)
        days = dict(await teams_repo.team_days(session, request.requester[5:], today - timedelta(days=13), today))
    else:
        days = dict(await queries.person_days(session, request.requester, today - timedelta(days=13), today))
    last7 = sum((t.cost_usd for d, t in days.items() if d > today - timedelta(days=7)), ZERO)
    prev7 = sum((t.cost_usd for d, t in days.items() if d <= today - timedelta(days=7)), ZERO)
    if request.status == "pending":
        limit_before, limit_after = status.limit_usd, status.limit_usd + request.amount_usd
    elif limits is not None:
        limit_before, limit_after = limits
    else:
        details = await approvals_repo.decision_details(session, request.id)
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
        projected_usd=forecast(status, last7, today).projected_month_end,
        last7_usd=last7,
        prev7_usd=prev7,
        month_end=month_last_day(today),
        granted_usd=request.granted_usd,
        decided_by=request.decided_by,
        decided_at=request.decided_at.astimezone(tz) if request.decided_at else None,
        note=request.decision_note,
        automatic=request.automatic,
        escalated_from=tuple(escalated_from),
        names=names or {},
    )


def people_of(request: BudgetRequest) -> list[str]:
    return [request.requester, *(request.approvers or ()), *([request.decided_by] if request.decided_by else [])]


async def known_names(services: Services, users) -> dict[str, str]:
    """Display names of these people, asking Slack (users.info, cached) for the ones not known yet;
    people Slack cannot name are left out (views mention them instead)."""
    return {k: v for k, v in (await resolve_names(services, list(users))).items() if v}


async def request_view(services: Services, request_id: int, **kwargs) -> views.RequestView | None:
    async with services.db.session() as session:
        request = await approvals_repo.get_request(session, request_id)
    if request is None:
        return None
    names = await known_names(services, people_of(request))
    async with services.db.session() as session:
        return await build_view(services, session, request, names, **kwargs)


async def pending_for(services: Services, approver: str) -> list[views.RequestView]:
    """Pending requests this person is an approver of (App Home), oldest first."""
    async with services.db.session() as session:
        rows = [r for r in await approvals_repo.pending_requests(session) if approver in (r.approvers or [])]
    if not rows:
        return []
    names = await known_names(services, [p for r in rows for p in (r.requester, *r.approvers)])
    async with services.db.session() as session:
        return [await build_view(services, session, r, names) for r in rows]


async def audit_history(services: Services, user: str | None = None, limit: int = 40) -> list[AuditLine]:
    """Requests and decisions, newest first; for one person with `user`."""
    async with services.db.session() as session:
        rows = await audit_repo.audit_records(session, user, limit)
    tz = services.clock.tz
    return [AuditLine(at=r.at.astimezone(tz), actor=r.actor, action=r.action, subject=r.subject_user,
                      request_id=r.request_id, details=dict(r.details or {})) for r in rows]
