"""The one ingest path: validate, resolve identity, price, store (one transaction).

Every source (native webhook, LiteLLM, `tokenbot import`, the demo) ends here, so the
rules of SPEC 5 hold the same for all of them. `ingest` returns only after the commit:
what it reports as accepted survives a crash.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from bot.clock import Clock
from bot.identities import IdentityResolver
from bot.pricing import Pricer
from bot.sources.native import EventError, UsageRecord, validate_event
from storage.db import Database
from storage.usage import UsageWriter

log = logging.getLogger(__name__)
ZERO = Decimal(0)


@dataclass(slots=True)
class Rejection:
    index: int
    id: str | None
    error: str

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "id": self.id, "error": self.error}


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    skipped: int = 0  # not spend (a failed call with no tokens): answered, not stored
    served_from_cache: int = 0  # of those accepted, calls a gateway answered from its cache
    rejected: list[Rejection] = field(default_factory=list)
    # (user_key, month) -> the cost this ingest added, for budget checks
    touched: dict[tuple[str, str], Decimal] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "skipped": self.skipped,
            "served_from_cache": self.served_from_cache,
            "rejected": [r.as_dict() for r in self.rejected],
        }


AfterIngest = Callable[[IngestResult], Awaitable[None]]


class UsageIngestor:
    def __init__(self, db: Database, pricer: Pricer, identities: IdentityResolver, clock: Clock) -> None:
        self.db = db
        self.pricer = pricer
        self.identities = identities
        self.clock = clock
        self.writer = UsageWriter(db)
        self.after_ingest: list[AfterIngest] = []

    async def ingest(self, raw_events: Sequence[Any], *, source: str) -> IngestResult:
        result = IngestResult()
        now = self.clock.now()
        records: list[UsageRecord] = []
        seen: set[str] = set()
        for index, raw in enumerate(raw_events):
            if isinstance(raw, dict) and "_skip" in raw:  # a source's "not spend" (bot/sources)
                result.skipped += 1
                continue
            try:
                record = validate_event(raw, now)
            except EventError as exc:
                raw_id = raw.get("id") if isinstance(raw, dict) else None
                result.rejected.append(Rejection(index, raw_id if isinstance(raw_id, str) else None, str(exc)))
                continue
            if record.event_id in seen:  # the same id twice in one body counts once
                result.duplicates += 1
                continue
            seen.add(record.event_id)
            records.append(record)
        if not records:
            return result

        user_keys = await self.identities.resolve_many(r.subject for r in records)
        rows = [self._row(r, user_keys[r.subject], source, now) for r in records]
        inserted = await self.writer.write(rows)
        await self.identities.after_commit(user_keys)
        result.accepted = len(inserted)
        result.served_from_cache = sum(1 for row in inserted if row["cache_hit"])
        result.duplicates += len(rows) - len(inserted)
        for row in inserted:
            day = row["day"]
            key = (row["user_key"], f"{day.year:04d}-{day.month:02d}")
            result.touched[key] = result.touched.get(key, ZERO) + row["cost_usd"]
        for hook in self.after_ingest:
            try:
                await hook(result)
            except Exception:  # a failing follow-up must not turn a stored batch into an error
                log.exception("after-ingest hook failed")
        return result

    def _row(self, record: UsageRecord, user_key: str, source: str, now) -> dict[str, Any]:
        price = self.pricer.price(
            model=record.model,
            provider=record.provider,
            occurred_at=record.occurred_at,
            input_tokens=record.input_tokens,
            cached_input_tokens=record.cached_input_tokens,
            output_tokens=record.output_tokens,
            cost_usd=record.cost_usd,
        )
        return {
            "event_id": record.event_id,
            "occurred_at": record.occurred_at,
            "day": self.clock.local_day(record.occurred_at),
            "received_at": now,
            "source": source,
            "subject": record.subject,
            "user_key": user_key,
            "model": record.model,
            "provider": record.provider,
            "team": record.team,
            "project": record.project,
            "input_tokens": record.input_tokens,
            "cached_input_tokens": record.cached_input_tokens,
            "output_tokens": record.output_tokens,
            "reasoning_tokens": record.reasoning_tokens,
            "cost_usd": price.cost_usd,
            "price_source": price.source,
            "unpriced": price.unpriced,
            "metadata": record.metadata,
            "cache_hit": record.cache_hit,
        }
