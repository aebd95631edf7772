"""The digest jobs: a sweep at start-up and every 5 minutes, and a cron job per subscription."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.config import Settings
from bot.digests.delivery import Outcome, deliver
from bot.digests.periods import Subscription, due_now, load_subscriptions
from bot.scheduler import JobSpec, add_job
from bot.services import Services

log = logging.getLogger(__name__)

SWEEP_EVERY = timedelta(minutes=5)


async def sweep(services: Services) -> list[Outcome]:
    """Post every digest due today and not posted yet; keep the cron jobs in step with the subscriptions."""
    subs = await load_subscriptions(services)
    sync_jobs(services, subs)
    outcomes = []
    for sub in subs:
        covered = due_now(services, sub)
        if covered is None:
            continue
        try:
            outcomes.append(await deliver(services, sub, *covered))
        except Exception:  # one digest's trouble must not hold up the others
            log.exception("digest %s for %s failed", sub.period, sub.channel)
    return outcomes


async def run_subscription(services: Services, channel: str, period: str) -> Outcome | None:
    """The cron job of one subscription (it re-reads the subscription: it may have changed)."""
    for sub in await load_subscriptions(services):
        if (sub.channel, sub.period) == (channel, period):
            covered = due_now(services, sub)
            return await deliver(services, sub, *covered) if covered else None
    return None


def cron_spec(sub: Subscription, settings: Settings) -> JobSpec:
    async def run(services: Services) -> None:
        await run_subscription(services, sub.channel, sub.period)

    trigger = CronTrigger(hour=sub.at.hour, minute=sub.at.minute,
                          day_of_week="mon" if sub.period == "week" else "*", timezone=settings.timezone)
    return JobSpec(sub.job_id, run, trigger)


def digest_jobs(services: Services) -> list[JobSpec]:
    """The sweep (at start-up, then every 5 minutes) and a cron job per config digest.
    Stored subscriptions get their cron jobs from the first sweep (`sync_jobs`)."""
    tz = services.settings.timezone
    specs = [
        JobSpec("digests:startup-sweep", sweep, DateTrigger(run_date=datetime.now(UTC), timezone=tz)),
        JobSpec("digests:sweep", sweep, IntervalTrigger(seconds=SWEEP_EVERY.total_seconds(), timezone=tz)),
    ]
    specs += [cron_spec(Subscription.from_config(d), services.settings) for d in services.settings.digests]
    return specs


def sync_jobs(services: Services, subs: list[Subscription]) -> None:
    """Add, move and remove the per-subscription cron jobs of the running scheduler (if any)."""
    scheduler = services.scheduler
    if scheduler is None:
        return
    wanted = {sub.job_id: sub for sub in subs}
    for job in scheduler.get_jobs():
        if job.id.startswith("digest:") and job.id not in wanted:
            job.remove()
    for sub in subs:
        job = scheduler.get_job(sub.job_id)
        if job is not None and job.name == sub.job_name:
            continue
        add_job(scheduler, services, cron_spec(sub, services.settings), name=sub.job_name)
