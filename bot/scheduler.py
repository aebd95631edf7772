"""Background jobs on the server's event loop (APScheduler 3 AsyncIOScheduler).

Every job is idempotent in the database, because with several `tokenbot serve`
processes each one runs every job (SLACK_NOTES.md). Jobs are plain async functions
of `Services`; tests call them directly instead of waiting for a schedule.

Features add their jobs by appending a `JobSpec` factory to `JOB_FACTORIES` at import
of their module, listed in `FEATURE_MODULES` below.
"""

from __future__ import annotations

import importlib
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


JobFactory = Callable[[Services], list[JobSpec]]
JOB_FACTORIES: list[JobFactory] = []

# modules that register job factories when imported
FEATURE_MODULES: list[str] = ["bot.digests", "bot.approvals", "bot.outbox", "bot.maintenance"]

_SCHEDULER_KEY = "_tokenbot_scheduler"


def build_scheduler(services: Services) -> AsyncIOScheduler:
    for name in FEATURE_MODULES:
        importlib.import_module(name)
    scheduler = AsyncIOScheduler(timezone=services.settings.timezone)
    for factory in JOB_FACTORIES:
        for spec in factory(services):
            scheduler.add_job(
                _guarded(spec, services), spec.trigger, id=spec.id, replace_existing=True,
                coalesce=True, max_instances=1, misfire_grace_time=3600,
            )
    return scheduler


def _guarded(spec: JobSpec, services: Services):
    async def run() -> None:
        try:
            await spec.func(services)
        except Exception:  # a failing job must not stop the scheduler; it runs again next time
            log.exception("job %s failed", spec.id)

    return run


async def start_background(services: Services) -> None:
    scheduler = build_scheduler(services)
    scheduler.start()
    setattr(services, _SCHEDULER_KEY, scheduler)


async def stop_background(services: Services) -> None:
    scheduler = getattr(services, _SCHEDULER_KEY, None)
    if scheduler is not None and scheduler.running:
        scheduler.shutdown(wait=False)
