"""Whole-ledger jobs: re-pricing, rebuilding local days when the time zone changes, keeping
PostgreSQL partitions ahead of time, and retention of raw events (SPEC 14).

Each rewrites events and moves the rollups by deltas in the same transaction, after folding
what was pending (storage/fold.py), so a rollup never counts an event twice or misses one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from apscheduler.triggers.cron import CronTrigger

from bot.scheduler import JobSpec
from bot.services import Services
from storage.models import Setting
from storage.partitions import HORIZON_KEY, apply_retention, ensure_partitions_ahead, refuse_before
from storage.rewrites import has_events, relocate_days, reprice_pass

log = logging.getLogger(__name__)
HORIZON_SETTLE = timedelta(minutes=10)  # a new horizon is in force this long before rows are deleted


@dataclass
class RepriceResult:
    examined: int = 0
    changed: int = 0
    still_unpriced: int = 0


async def reprice(services: Services, *, include_priced: bool = False) -> RepriceResult:
    """Price stored events again with today's rate cards and overrides.

    By default only events flagged unpriced; with `include_priced`, every event whose
    cost was not sent by its source. Rollups follow by deltas.
    """
    result = RepriceResult()

    def price_again(event: dict[str, Any]):
        price = services.pricer.price(
            model=event["model"], provider=event["provider"], occurred_at=event["occurred_at"],
            input_tokens=event["input_tokens"], cached_input_tokens=event["cached_input_tokens"],
            output_tokens=event["output_tokens"])
        if price.unpriced:
            result.still_unpriced += 1
        return price.cost_usd, price.source, price.unpriced

    result.examined, result.changed = await reprice_pass(services.db, price_again, include_priced=include_priced)
    return result


async def ensure_rollup_timezone(services: Services) -> bool:
    """Rollups are kept in local days; if the configured zone changed, rebuild them.

    Returns True when a rebuild ran.
    """
    zone = services.settings.timezone.key
    async with services.db.session() as session:
        stored = await session.get(Setting, "rollup_timezone")
        any_events = await has_events(session)
    if stored is not None and stored.value == zone:
        return False
    if stored is not None and any_events:
        log.warning("time zone changed from %s to %s: rebuilding local days and rollups", stored.value, zone)
        await relocate_days(services.db, services.clock.local_day, zone)
    async with services.db.write() as session:
        await session.merge(Setting(key="rollup_timezone", value=zone))
    return stored is not None and any_events


async def start_ledger(services: Services) -> None:
    """`serve` start-up: partitions ahead, everything a previous process committed folded into
    the rollups before the first request, then the background fold."""
    await keep_partitions_ahead(services)
    await services.ingestor.writer.settle()
    services.ingestor.writer.start()


def ledger_jobs(services: Services) -> list[JobSpec]:
    """Listed in `bot.wiring.scheduled_jobs`."""
    return [
        JobSpec("ledger-partitions", keep_partitions_ahead, CronTrigger(hour=0, minute=17)),
        JobSpec("ledger-retention", retention, CronTrigger(hour=3, minute=41)),
    ]


async def keep_partitions_ahead(services: Services) -> None:
    """Daily (and at start): this month's and the next two months' partitions exist."""
    await ensure_partitions_ahead(services.db, services.clock.today())


async def retention(services: Services) -> int:
    """Delete raw events older than `[retention] raw_days` (rollups stay). Returns how many went.

    Two steps, so no process can accept a resend of an event whose id is being forgotten:
    first the horizon is recorded (ingest refuses older events from then on, every process
    within a minute); raw rows go only once a horizon has been in force for 10 minutes.
    """
    now = services.clock.now()
    horizon = services.clock.today() - timedelta(days=services.settings.retention_raw_days)
    async with services.db.session() as session:
        row = await session.get(Setting, HORIZON_KEY)
    in_force: date | None = None
    if row is not None:
        since = row.value.partition("@")[2]
        if now - datetime.fromisoformat(since) >= HORIZON_SETTLE:
            in_force = refuse_before(row.value)
    if row is None or refuse_before(row.value) < horizon:
        async with services.db.write() as session:
            await session.merge(Setting(key=HORIZON_KEY, value=f"{horizon.isoformat()}@{now.isoformat()}"))
    if in_force is None:
        return 0
    deleted = await apply_retention(services.db, in_force)
    if deleted:
        log.info("retention: %d raw events before %s deleted (rollups kept)", deleted, in_force)
    return deleted
