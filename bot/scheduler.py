"""Background jobs on the server's event loop (APScheduler 3 AsyncIOScheduler).

Every job is idempotent in the database, because with several `tokenbot serve`
processes each one runs every job (SLACK_NOTES.md). Jobs are plain async functions
of `Services`; tests call them directly instead of waiting for a schedule.

Which jobs exist is listed in one place, `bot.wiring.scheduled_jobs`; a feature offers
a function `(services) -> list[JobSpec]` and never registers itself.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.services import Services

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobSpec:
    id: str
    func: Callable[[Services], Awaitable[Any]]
    trigger: Any  # an APScheduler trigger (IntervalTrigger, CronTrigger, ...)


def build_scheduler(services: Services, specs: list[JobSpec]) -> AsyncIOScheduler:
    scheduler = AsyncIOScheduler(timezone=services.settings.timezone)
    for spec in specs:
        add_job(scheduler, services, spec)
    return scheduler


def add_job(scheduler: AsyncIOScheduler, services: Services, spec: JobSpec, *, name: str | None = None) -> None:
    """Add (or replace) one job: never two runs of it at once, missed runs coalesced."""
    extra = {"name": name} if name else {}
    scheduler.add_job(_guarded(spec, services), spec.trigger, id=spec.id, replace_existing=True,
                      coalesce=True, max_instances=1, misfire_grace_time=3600, **extra)


def _guarded(spec: JobSpec, services: Services):
    async def run() -> None:
        try:
            await spec.func(services)
        except Exception:  # a failing job must not stop the scheduler; it runs again next time
            log.exception("job %s failed", spec.id)

    return run


def start_scheduler(services: Services, specs: list[JobSpec]) -> AsyncIOScheduler:
    scheduler = build_scheduler(services, specs)
    scheduler.start()
    services.scheduler = scheduler
    return scheduler


def stop_scheduler(services: Services) -> None:
    scheduler, services.scheduler = services.scheduler, None
    if scheduler is not None and scheduler.running:
        scheduler.shutdown(wait=False)
