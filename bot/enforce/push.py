"""Enforcer pushes: marked inside the decision's transaction, delivered leased and retried.

Every limit decision (an approval, `/tokens admin set-budget`, the month rollover, the 100%
crossing, a breaker pause or resume) calls `mark_person` (or `mark_subject`) in the
transaction that records it: storage/enforce_repo.py bumps the subject's version there, so
the push exists if and only if the decision committed. Delivery (`deliver_due`, kicked at once
after a decision and retried by a job every 30 s, from any process):

- takes the subject's row with a lease (one process, one subject, at a time: in order);
- reads what the subject should be allowed *now* (bot/enforce/subjects.py) and pushes it:
  idempotent, so a retry or a second process repeating it changes nothing (exactly once in
  effect), and the newest decision always wins, since an older state is never pushed after
  a newer one was read;
- records the version it pushed; a decision that committed meanwhile leaves the row due;
- a failure is retried with backoff (15 s doubling, at most 10 min apart), counted in /metrics
  and shown in `/tokens admin status`; admins get one DM when an enforcer has failed for
  `TELL_AFTER` (once per failing spell, claimed in the database).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import aiohttp
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import month_key
from bot.enforce import litellm, openai_limits
from bot.enforce.litellm import EnforcerError, LiteLLMClient
from bot.enforce.subjects import (
    SubjectState,
    known_ids,
    project_subject,
    state_of,
    team_proxy_ids,
    team_subject,
    team_subjects,
    user_subject,
)
from bot.identities import is_slack_user_id
from bot.people import tell_admins
from bot.scheduler import JobSpec
from bot.services import Services
from storage import enforce_repo
from storage.models import EnforcePush, UsageMonthly

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=60)
BATCH = 50
TELL_AFTER = timedelta(minutes=15)


def enforcers_for(services: Services, subject: str) -> list[str]:
    """The configured enforcers that hold `subject`'s kind of limit."""
    enforce = services.settings.enforce
    kind = subject.partition(":")[0]
    names = []
    if enforce.litellm is not None and kind in ("user", "key", "team"):
        names.append("litellm")
    if enforce.openai is not None and kind == "project":
        names.append("openai")
    return names


async def mark_subject(services: Services, session: AsyncSession, subject: str) -> bool:
    """Queue `subject`'s push to every enforcer that holds it, in the caller's transaction."""
    names = enforcers_for(services, subject)
    now = services.clock.now()
    for name in names:
        await enforce_repo.mark(session, name, subject, now)
    return bool(names)


async def mark_person(services: Services, session: AsyncSession, user_key: str) -> bool:
    """A person's budget decision; a team's ("team:<name>", the requester of its raises) marks the team."""
    if user_key.startswith("team:"):
        return await mark_team(services, session, user_key.removeprefix("team:"))
    return await mark_subject(services, session, user_subject(user_key))


async def mark_team(services: Services, session: AsyncSession, team: str) -> bool:
    """A team's budget decision (an approved team raise, its 100% crossing): the team on the LiteLLM
    proxy and every OpenAI project mapped to it, in the caller's transaction."""
    marked = False
    for subject in team_subjects(services.settings, team):
        marked = await mark_subject(services, session, subject) or marked
    return marked


async def mark_everyone(services: Services) -> int:
    """The month rollover: every subject any enforcer holds, everyone who spent last month or this one,
    every team with a budget and every mapped project, pushed again (the new month's limit; LiteLLM's
    spend keeps counting, so its budget is re-based). Also how a deployment that just turned an
    enforcer on gets everyone's budget there: `tokenbot enforce push --all`."""
    enforce = services.settings.enforce
    if not enforce.names:
        return 0
    today = services.clock.today()
    months = (month_key(today), month_key(today.replace(day=1) - timedelta(days=1)))
    async with services.db.write() as session:
        subjects = set(await session.scalars(select(EnforcePush.subject).distinct()))
        if enforce.litellm is not None:  # everyone who spent last month or this one, pushed or not yet
            spenders = await session.scalars(select(UsageMonthly.user_key).where(UsageMonthly.month.in_(months))
                                             .distinct())
            subjects.update(user_subject(u) for u in spenders if is_slack_user_id(u))
            subjects.update(team_subject(t) for t, c in services.settings.teams.items() if c.monthly_usd is not None)
        if enforce.openai is not None:
            subjects.update(project_subject(p) for p in {*enforce.openai.projects, *enforce.openai.amounts})
        for subject in sorted(subjects):
            await mark_subject(services, session, subject)
    kick(services)
    return len(subjects)


def kick(services: Services) -> None:
    """Deliver now, in the background (after a decision committed)."""
    if services.settings.enforce.names:
        services.background.spawn(deliver_due(services), name="enforce-kick")


async def _push(services: Services, http: aiohttp.ClientSession, enforcer: str, state: SubjectState,
                previous: dict[str, Any], session: AsyncSession) -> dict[str, Any]:
    settings = services.settings
    if enforcer == "litellm":
        client = LiteLLMClient(settings.enforce.litellm.url, settings.litellm_master_key, http)
        if state.kind == "user":
            ids = await known_ids(services, session, state.name)
            return await litellm.push_user(client, ids, remaining=state.remaining_usd, paused=state.paused,
                                           previous=previous)
        if state.kind == "key":
            return await litellm.push_key(client, state.name, paused=state.paused)
        if state.kind == "team":
            if state.limit_usd is None:
                return {"team": state.name, "skipped": "no budget for it (no monthly_usd)"}
            return await litellm.push_teams(client, team_proxy_ids(settings, state.name),
                                            remaining=state.remaining_usd, paused=state.paused)
        raise EnforcerError(f"LiteLLM holds no {state.kind} limits here")
    if enforcer == "openai":
        client = openai_limits.openai_client(settings)
        try:
            return await openai_limits.push_project(client, state.name, limit=state.limit_usd, paused=state.paused)
        finally:
            await client.close()
    raise EnforcerError(f"unknown enforcer {enforcer}")


async def deliver_due(services: Services) -> int:
    """Push every due subject this process can lease; returns how many pushes were taken."""
    if not services.settings.enforce.names:
        return 0
    pushed = 0
    async with aiohttp.ClientSession() as http:
        while True:
            now = services.clock.now()
            async with services.db.session() as session:
                rows = await enforce_repo.due(session, now, BATCH)
            if not rows:
                return pushed
            progressed = False
            for row in rows:
                async with services.db.write() as session:
                    version = await enforce_repo.take(session, row.id, now, LEASE)
                if version is None:
                    continue  # another process pushes this subject now
                progressed = True
                error, detail = None, None
                try:
                    async with services.db.session() as session:
                        state = await state_of(services, session, row.subject)
                        detail = await _push(services, http, row.enforcer, state, row.detail or {}, session)
                    detail = {**detail, "version": version, "paused": state.paused,
                              "limit_usd": None if state.limit_usd is None else str(state.limit_usd),
                              "remaining_usd": str(state.remaining_usd)}
                except EnforcerError as exc:
                    error = str(exc)
                except Exception as exc:  # a bug must not stop the other subjects' pushes
                    log.exception("enforcer push %s %s failed", row.enforcer, row.subject)
                    error = f"{type(exc).__name__}: {exc}"[:300]
                done = services.clock.now()
                async with services.db.write() as session:
                    await enforce_repo.settle(session, row.id, version=version, now=done, error=error, detail=detail)
                    await enforce_repo.record_health(session, row.enforcer, done, error)
                if error is None:
                    pushed += 1
                    services.metrics.enforcer_pushes.labels(row.enforcer).inc()
                else:
                    log.warning("enforcer %s: push of %s not taken: %s", row.enforcer, row.subject, error)
                    services.metrics.enforcer_push_failures.labels(row.enforcer).inc()
                    await _tell_admins_once(services, row.enforcer, error)
            if not progressed or len(rows) < BATCH:
                return pushed


async def _tell_admins_once(services: Services, enforcer: str, error: str) -> None:
    async with services.db.write() as session:
        claimed = await enforce_repo.claim_told(session, enforcer, services.clock.now(), TELL_AFTER)
    if not claimed:
        return
    from bot.views.enforce_status import failing_text

    await tell_admins(services, failing_text(enforcer, error), about=f"the {enforcer} enforcer failing")


async def rollover(services: Services) -> None:
    await mark_everyone(services)


def enforce_jobs(services: Services) -> list[JobSpec]:
    """Retry pushes every 30 s; re-push everything just after each local month starts."""
    if not services.settings.enforce.names:
        return []
    return [JobSpec("enforce-deliver", deliver_due, IntervalTrigger(seconds=30)),
            JobSpec("enforce-rollover", rollover, CronTrigger(day=1, hour=0, minute=1))]
