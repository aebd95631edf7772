"""Budget requests and approver assignments: the queries and writes of bot/approvals (the audit log is audit_repo.py).

Every once-only step is a conditional UPDATE here: closing a request (`close_request`,
`WHERE status = 'pending'`) and claiming its reminder (`claim_reminder`, `WHERE
reminded_at IS NULL`); the transaction whose UPDATE changed the row is the one that won.
`budget_requests.messages` (the Slack messages showing a request) is changed under a row
lock, so two processes adding or marking messages never lose each other's entries.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.chunks import chunked
from storage.models import ApproverAssignment, AuditRecord, BudgetRaise, BudgetRequest

DECISIONS = ("request.approved", "request.auto_approved", "request.denied", "request.expired")


async def get_request(session: AsyncSession, request_id: int) -> BudgetRequest | None:
    return await session.get(BudgetRequest, request_id)


async def pending_request(session: AsyncSession, user_key: str) -> BudgetRequest | None:
    """A person's pending request (at most one: the partial unique index says so)."""
    return await session.scalar(
        select(BudgetRequest).where(BudgetRequest.requester == user_key, BudgetRequest.status == "pending"))


async def pending_request_id(session: AsyncSession, user_key: str) -> int | None:
    return await session.scalar(select(BudgetRequest.id).where(
        BudgetRequest.requester == user_key, BudgetRequest.status == "pending"))


async def pending_ids_of(session: AsyncSession, user_keys: Iterable[str]) -> dict[str, int]:
    """requester -> pending request id, for those of `user_keys` who have one."""
    found: dict[str, int] = {}
    for chunk in chunked(user_keys):
        found.update((await session.execute(
            select(BudgetRequest.requester, BudgetRequest.id)
            .where(BudgetRequest.status == "pending", BudgetRequest.requester.in_(chunk)))).all())
    return found


async def pending_requests(session: AsyncSession) -> list[BudgetRequest]:
    """Every pending request, oldest first."""
    return list(await session.scalars(
        select(BudgetRequest).where(BudgetRequest.status == "pending").order_by(BudgetRequest.created_at)))


async def request_status(session: AsyncSession, request_id: int) -> str | None:
    return await session.scalar(select(BudgetRequest.status).where(BudgetRequest.id == request_id))


async def assigned_approver(session: AsyncSession, requester: str) -> str | None:
    """The approver set with `/tokens admin approver`, if any."""
    row = await session.get(ApproverAssignment, requester)
    return row.approver if row is not None else None


def add_request(session: AsyncSession, **fields: Any) -> BudgetRequest:
    request = BudgetRequest(**fields)
    session.add(request)
    return request


def add_raise(session: AsyncSession, *, user_key: str, month: str, amount_usd: Decimal, request_id: int,
              at: datetime) -> None:
    """A "this month only" raise."""
    session.add(BudgetRaise(user_key=user_key, month=month, amount_usd=amount_usd, request_id=request_id,
                            created_at=at))


async def close_request(session: AsyncSession, request_id: int, status: str, actor: str, granted: Decimal | None,
                        note: str | None, now: datetime, *, automatic: bool = False) -> list[dict] | None:
    """The compare-and-set out of pending. The request's messages (as committed, under the row lock this
    UPDATE takes) for the one transaction that won; None for everybody else."""
    row = (await session.execute(
        update(BudgetRequest)
        .where(BudgetRequest.id == request_id, BudgetRequest.status == "pending")
        .values(status=status, decided_by=actor, decided_at=now, granted_usd=granted, decision_note=note,
                automatic=automatic)
        .returning(BudgetRequest.messages)
        .execution_options(synchronize_session=False)
    )).first()
    return None if row is None else list(row[0] or [])


async def claim_reminder(session: AsyncSession, request_id: int, now: datetime) -> BudgetRequest | None:
    """Mark a pending request reminded, once; the fresh row for the one transaction that did it."""
    claimed = await session.execute(
        update(BudgetRequest)
        .where(BudgetRequest.id == request_id, BudgetRequest.status == "pending",
               BudgetRequest.reminded_at.is_(None))
        .values(reminded_at=now)
        .execution_options(synchronize_session=False))
    if claimed.rowcount != 1:
        return None
    return await session.scalar(
        select(BudgetRequest).where(BudgetRequest.id == request_id).execution_options(populate_existing=True))


async def due_expiries(session: AsyncSession, now: datetime) -> list[int]:
    return list(await session.scalars(
        select(BudgetRequest.id).where(BudgetRequest.status == "pending", BudgetRequest.expires_at <= now)
        .order_by(BudgetRequest.id)))


async def due_reminders(session: AsyncSession, created_before: datetime, now: datetime) -> list[int]:
    return list(await session.scalars(
        select(BudgetRequest.id).where(
            BudgetRequest.status == "pending", BudgetRequest.reminded_at.is_(None),
            BudgetRequest.created_at <= created_before, BudgetRequest.expires_at > now)
        .order_by(BudgetRequest.id)))


async def decided_between(session: AsyncSession, after: datetime, until: datetime) -> list[tuple[int, str, list]]:
    """(id, status, messages) of requests decided in (after, until]."""
    rows = await session.execute(
        select(BudgetRequest.id, BudgetRequest.status, BudgetRequest.messages).where(
            BudgetRequest.status != "pending", BudgetRequest.decided_at <= until, BudgetRequest.decided_at > after))
    return [(request_id, status, messages or []) for request_id, status, messages in rows]


async def decision_details(session: AsyncSession, request_id: int) -> dict[str, Any]:
    """The details of the audit row that closed a request ({} when there is none)."""
    row = await session.scalar(
        select(AuditRecord)
        .where(AuditRecord.request_id == request_id, AuditRecord.action.in_(DECISIONS))
        .order_by(AuditRecord.id.desc())
        .limit(1))
    return dict(row.details) if row is not None else {}


async def _locked(session: AsyncSession, request_id: int) -> BudgetRequest:
    return await session.scalar(select(BudgetRequest).where(BudgetRequest.id == request_id).with_for_update())


async def append_messages(session: AsyncSession, request_id: int, entries: list[dict]) -> None:
    request = await _locked(session, request_id)
    request.messages = [*(request.messages or []), *entries]


async def mark_messages(session: AsyncSession, request_id: int, marks: dict[tuple[str, str], str],
                        new_entries: list[dict]) -> None:
    """Set `shown` on the messages keyed (channel, ts) in `marks`, and add `new_entries`."""
    request = await _locked(session, request_id)
    updated = []
    for entry in request.messages or []:
        key = (entry.get("channel"), entry.get("ts"))
        updated.append({**entry, "shown": marks[key]} if key in marks else entry)
    request.messages = updated + new_entries
