"""Whole-table jobs: re-pricing, and rebuilding local days when the time zone changes."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select, update

from bot.services import Services
from storage.models import Setting, UsageEvent
from storage.usage import rebuild_rollups

log = logging.getLogger(__name__)
BATCH = 2000


@dataclass
class RepriceResult:
    examined: int = 0
    changed: int = 0
    still_unpriced: int = 0


async def reprice(services: Services, *, include_priced: bool = False) -> RepriceResult:
    """Price stored events again with today's rate cards and overrides.

    By default only events flagged unpriced; with `include_priced`, every event whose
    cost was not sent by its source. Rollups of the people touched are rebuilt.
    """
    result = RepriceResult()
    touched: set[str] = set()
    last_id = ""
    while True:
        async with services.db.session() as session:
            query = select(UsageEvent).where(UsageEvent.event_id > last_id, UsageEvent.price_source != "source")
            if not include_priced:
                query = query.where(UsageEvent.unpriced.is_(True))
            events = list(await session.scalars(query.order_by(UsageEvent.event_id).limit(BATCH)))
        if not events:
            break
        last_id = events[-1].event_id
        async with services.db.write() as session:
            for event in events:
                result.examined += 1
                price = services.pricer.price(
                    model=event.model,
                    provider=event.provider,
                    occurred_at=event.occurred_at,
                    input_tokens=event.input_tokens,
                    cached_input_tokens=event.cached_input_tokens,
                    output_tokens=event.output_tokens,
                )
                if price.unpriced:
                    result.still_unpriced += 1
                if (price.cost_usd, price.source, price.unpriced) == (
                    event.cost_usd, event.price_source, event.unpriced
                ):
                    continue
                result.changed += 1
                touched.add(event.user_key)
                await session.execute(
                    update(UsageEvent)
                    .where(UsageEvent.event_id == event.event_id)
                    .values(cost_usd=price.cost_usd, price_source=price.source, unpriced=price.unpriced)
                )
    if touched:
        async with services.db.write() as session:
            await rebuild_rollups(session, touched)
    return result


async def ensure_rollup_timezone(services: Services) -> bool:
    """Rollups are kept in local days; if the configured zone changed, rebuild them.

    Returns True when a rebuild ran.
    """
    zone = services.settings.timezone.key
    async with services.db.session() as session:
        stored = await session.get(Setting, "rollup_timezone")
        has_events = await session.scalar(select(UsageEvent.event_id).limit(1)) is not None
    if stored is not None and stored.value == zone:
        return False
    if stored is not None and has_events:
        log.warning("time zone changed from %s to %s: rebuilding local days and rollups", stored.value, zone)
        last_id = ""
        while True:
            async with services.db.write() as session:
                rows = (
                    await session.execute(
                        select(UsageEvent.event_id, UsageEvent.occurred_at)
                        .where(UsageEvent.event_id > last_id)
                        .order_by(UsageEvent.event_id)
                        .limit(BATCH)
                    )
                ).all()
                if not rows:
                    break
                last_id = rows[-1][0]
                for event_id, occurred_at in rows:
                    await session.execute(
                        update(UsageEvent)
                        .where(UsageEvent.event_id == event_id)
                        .values(day=services.clock.local_day(occurred_at))
                    )
        async with services.db.write() as session:
            await rebuild_rollups(session)
    async with services.db.write() as session:
        await session.merge(Setting(key="rollup_timezone", value=zone))
    return stored is not None and has_events
