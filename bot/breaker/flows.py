"""Pause, Resume and "Expected, ignore for 24 h" on a trip DM; auto-resume; `/tokens admin breaker`.

Who may press: the person's approver, an admin, or (with `breaker.self_resume`) the person;
for a key no person is linked to, admins only. Everyone else is told so, privately, and
nothing changes. A press is one conditional UPDATE naming the status it expects, so a double
click, two people or two processes make exactly one change; the winner's transaction also
marks the enforcer pushes and writes the audit row, then every copy of the DM is updated.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from apscheduler.triggers.interval import IntervalTrigger

from bot.breaker.messages import update_everywhere, view_of
from bot.commands import Invocation
from bot.enforce import push as enforce_push
from bot.people import is_admin
from bot.scheduler import JobSpec
from bot.services import Services
from bot.views.breaker import BreakerListView, breaker_blocks, breaker_fallback
from bot.views.help import Message, Notice
from storage import audit_repo, breaker_repo

log = logging.getLogger(__name__)

IGNORE_FOR = timedelta(hours=24)
EXPECT = {"pause": ("alert",), "resume": ("paused",), "ignore": ("alert", "paused")}


@dataclass(frozen=True)
class PressResult:
    outcome: str  # "done" | "already" | "refused" | "not_found"
    message: str | None = None


async def may_press(services: Services, trip, actor: str) -> bool:
    if await is_admin(services, actor):
        return True
    if trip.user_key is None:
        return False
    if actor == trip.user_key:
        return services.settings.breaker.self_resume
    approvers = await services.approvers.resolve(trip.user_key)
    return actor in approvers.users


async def press(services: Services, trip_id: int, actor: str, action: str) -> PressResult:
    async with services.db.session() as session:
        trip = await breaker_repo.get(session, trip_id)
    if trip is None:
        return PressResult("not_found", "That breaker trip no longer exists.")
    if not await may_press(services, trip, actor):
        who = "an admin" if trip.user_key is None else f"<@{trip.user_key}>'s approver or an admin"
        return PressResult("refused", f"Only {who} can do that. Nothing was changed.")
    now = services.clock.now()
    settings = services.settings.breaker
    values: dict = {"decided_by": actor, "decided_at": now}
    if action == "pause":
        values.update(status="paused", quiet_until=None,
                      auto_resume_at=now + timedelta(minutes=settings.auto_resume_minutes)
                      if settings.auto_resume_minutes else None)
    elif action == "resume":
        values.update(status="resumed", quiet_until=now + timedelta(minutes=settings.window_minutes),
                      auto_resume_at=None)
    elif action == "ignore":
        values.update(status="ignored", quiet_until=now + IGNORE_FOR, auto_resume_at=None)
    else:
        raise ValueError(action)
    async with services.db.write() as session:
        changed = await breaker_repo.change(session, trip_id, expect=EXPECT[action], **values)
        if changed:
            audit_repo.add_audit(session, at=now, actor=actor, action=f"breaker.{action}",
                                 subject=trip.user_key or trip.subject, trip_id=trip_id, was=trip.status)
            await enforce_push.mark_subject(services, session, trip.subject)
        trip = await breaker_repo.get(session, trip_id)
        await session.refresh(trip)
    if not changed:
        view = view_of(services, trip)
        by = f" by <@{view.decided_by}>" if view.decided_by and view.decided_by != "tokenbot" else ""
        return PressResult("already", f"This trip was already {trip.status}{by}. Nothing was changed.")
    enforce_push.kick(services)
    await update_everywhere(services, trip)
    return PressResult("done")


async def auto_resume(services: Services) -> int:
    """Resume every pause whose `auto_resume_minutes` ran out (the `breaker-auto-resume` job)."""
    now = services.clock.now()
    async with services.db.session() as session:
        due = await breaker_repo.due_auto_resume(session, now)
    resumed = 0
    for trip in due:
        async with services.db.write() as session:
            changed = await breaker_repo.change(
                session, trip.id, expect=("paused",), status="resumed", decided_by="tokenbot", decided_at=now,
                quiet_until=now + timedelta(minutes=trip.window_minutes), auto_resume_at=None)
            if changed:
                audit_repo.add_audit(session, at=now, actor="tokenbot", action="breaker.auto_resume",
                                     subject=trip.user_key or trip.subject, trip_id=trip.id)
                await enforce_push.mark_subject(services, session, trip.subject)
            fresh = await breaker_repo.get(session, trip.id)
            await session.refresh(fresh)
        if changed:
            resumed += 1
            await update_everywhere(services, fresh)
    if resumed:
        enforce_push.kick(services)
    return resumed


def breaker_jobs(services: Services) -> list[JobSpec]:
    if not services.settings.breaker.on:
        return []
    return [JobSpec("breaker-auto-resume", auto_resume, IntervalTrigger(minutes=1))]


async def breaker_list(services: Services) -> BreakerListView:
    now = services.clock.now()
    async with services.db.session() as session:
        paused = await breaker_repo.paused(session)
        recent = await breaker_repo.recent(session, now - timedelta(days=7))
    return BreakerListView(services.settings.breaker.mode, [view_of(services, t) for t in paused],
                           [view_of(services, t) for t in recent])


async def breaker_command(invocation: Invocation):
    """`/tokens admin breaker` (admins only): who is paused, and the last 7 days' trips."""
    services = invocation.services
    if not await is_admin(services, invocation.user_id):
        return Notice("Only tokenbot admins can see the runaway breaker. Admins are listed in the config "
                      "(`admins`) or are Slack workspace admins.", ok=False)
    view = await breaker_list(services)
    return Message(breaker_fallback(view), breaker_blocks(view))
