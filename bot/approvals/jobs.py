"""The approvals sweep, every minute in every process: expiries, reminders, repairs.

Idempotent in the database: a request expires through the decision's compare-and-set, a
reminder is claimed with `UPDATE … SET reminded_at … WHERE reminded_at IS NULL`, and a
repair only redoes Slack messages that are not yet marked as showing the outcome.
"""

from __future__ import annotations

from datetime import timedelta

from apscheduler.triggers.interval import IntervalTrigger

from bot.approvals import messaging, service
from bot.scheduler import JobSpec
from bot.services import Services
from storage import approvals_repo, audit_repo

REPAIR_AFTER = timedelta(minutes=2)  # the decider's own process had this long to update the messages
REPAIR_WINDOW = timedelta(days=7)


async def expire_due(services: Services) -> list[int]:
    """Close pending requests past `expires_at`; each expires exactly once, whichever process runs this."""
    now = services.clock.now()
    async with services.db.session() as session:
        due = await approvals_repo.due_expiries(session, now)
    expired = [request_id for request_id in due if await service.expire(services, request_id, now)]
    for request_id in expired:
        await messaging.after_decision(services, request_id)
    return expired


async def remind_due(services: Services) -> list[int]:
    """One reminder per request after `remind_after_hours`: to its approvers and to default_approvers."""
    settings = services.settings
    now = services.clock.now()
    async with services.db.session() as session:
        due = await approvals_repo.due_reminders(session, now - timedelta(hours=settings.remind_after_hours), now)
    reminded = []
    for request_id in due:
        async with services.db.write() as session:
            request = await approvals_repo.claim_reminder(session, request_id, now)
            if request is None:
                continue
            first = list(request.approvers or [])
            extra = [u for u in settings.default_approvers if u not in first and u != request.requester]
            if extra:
                request.approvers = first + extra
            audit_repo.add_audit(session, at=now, actor=service.SYSTEM, action="request.reminded",
                                     subject=request.requester, request_id=request_id, approvers=first,
                                     escalated_to=extra)
            messages = list(request.messages or [])
            created_at = request.created_at
        reminded.append(request_id)
        hours = int((now - created_at).total_seconds() // 3600)
        await messaging.send_reminder(services, request_id, first, extra, messages, hours)
    return reminded


async def repair_messages(services: Services) -> list[int]:
    """Finish what a crashed process left: decided requests whose DMs still show buttons or whose
    requester was not told. Only requests decided more than REPAIR_AFTER ago (the decider's own job)."""
    now = services.clock.now()
    async with services.db.session() as session:
        rows = await approvals_repo.decided_between(session, now - REPAIR_WINDOW, now - REPAIR_AFTER)
    repaired = []
    for request_id, status, messages in rows:
        stale = any(e.get("role") == "approver" and e.get("shown") != status for e in messages)
        untold = messages and not any(e.get("role") == "outcome" for e in messages)
        if stale or untold:
            await messaging.after_decision(services, request_id)
            repaired.append(request_id)
    return repaired


async def sweep(services: Services) -> None:
    """The scheduler job: expiries, reminders, repairs. Idempotent in the database."""
    await expire_due(services)
    await remind_due(services)
    await repair_messages(services)


def approval_jobs(services: Services) -> list[JobSpec]:
    return [JobSpec("approvals-sweep", sweep, IntervalTrigger(seconds=60))]
