"""The one ingest path: validate, resolve identity, price, store (one transaction).

Every source (native webhook, LiteLLM, `tokenbot import`, the demo) ends here, so the
rules of SPEC 5 hold the same for all of them. `ingest` returns only after the commit:
what it reports as accepted survives a crash. The rollups follow within a second (the
fold in storage/fold.py); budget checks read them plus the unfolded tail.

Ranges kept here (per event, with the event's index in the answer): token counts at most
`MAX_EVENT_TOKENS` (10^12: rollups are wide, but no real call comes near), and, once
retention has started forgetting raw events, events for days before its horizon are refused
(their ids may be gone, so a resend could not be recognised as one; bot/maintenance.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from bot.clock import Clock
from bot.identities import IdentityResolver
from bot.pricing import Pricer
from bot.sources.native import EventError, UsageRecord, validate_event
from storage.db import Database
from storage.partitions import ingest_horizon
from storage.usage import MAX_EVENT_TOKENS, UsageWriter

log = logging.getLogger(__name__)
ZERO = Decimal(0)
HORIZON_SECONDS = 60.0  # how often the retention horizon is read again
RECENT_AHEAD = timedelta(minutes=1)  # a sender's clock may run this far ahead and its events still count as recent

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
    # with `UsageIngestor.recent_window` (the runaway breaker): user_key -> the cost of the events stored
    # here that happened within the window before now, and the last such event
    recent: dict[str, Decimal] = field(default_factory=dict)
    recent_last: dict[str, UsageRecord] = field(default_factory=dict)
    # (team, month) -> the cost this ingest charged to the team, for team budget checks (bot/teams/alerts.py)
    team_touched: dict[tuple[str, str], Decimal] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "skipped": self.skipped,
            "served_from_cache": self.served_from_cache,
            "rejected": [r.as_dict() for r in self.rejected],
        }


AfterIngest = Callable[[IngestResult], Awaitable[None]]
IngestObserver = Callable[[str, IngestResult], None]


class UsageIngestor:
    def __init__(self, db: Database, pricer: Pricer, identities: IdentityResolver, clock: Clock, *,
                 fold_interval: float = 0.25) -> None:
        self.db = db
        self.pricer = pricer
        self.identities = identities
        self.clock = clock
        self._horizon: tuple[date | None, float] = (None, float("-inf"))
        self.writer = UsageWriter(db, fold_interval=fold_interval)
        self.after_ingest: list[AfterIngest] = []
        self.observers: list[IngestObserver] = []  # (source, result) after each ingest: metrics
        self.recent_window: timedelta | None = None  # sum recent spend per person for the hooks (the breaker)
        self.teams: Any = None  # bot.teams.assign.TeamDirectory: the team each event is charged to

    async def ingest(self, raw_events: Sequence[Any], *, source: str) -> IngestResult:
        result = IngestResult()
        now = self.clock.now()
        oldest = await self._refuse_before()
        records: list[tuple[UsageRecord, Any]] = []
        seen: set[str] = set()
        local_day = self.clock.local_day
        for index, raw in enumerate(raw_events):
            if isinstance(raw, dict) and "_skip" in raw:  # a source's "not spend" (bot/sources)
                result.skipped += 1
                continue
            try:
                record = validate_event(raw, now)
                day = local_day(record.occurred_at)
                if (record.input_tokens > MAX_EVENT_TOKENS or record.output_tokens > MAX_EVENT_TOKENS
                        or (oldest is not None and day < oldest)):
                    _check_ranges(record, day, oldest)
            except EventError as exc:
                raw_id = raw.get("id") if isinstance(raw, dict) else None
                result.rejected.append(Rejection(index, raw_id if isinstance(raw_id, str) else None, str(exc)))
                continue
            if record.event_id in seen:  # the same id twice in one body counts once
                result.duplicates += 1
                continue
            seen.add(record.event_id)
            records.append((record, day))
        if records:
            await self._store(records, source, now, result)
        for observe in self.observers:
            observe(source, result)
        if not records:
            return result
        for hook in self.after_ingest:
            try:
                await hook(result)
            except Exception:  # a failing follow-up must not turn a stored batch into an error
                log.exception("after-ingest hook failed")
        return result

    async def _refuse_before(self) -> date | None:
        value, read_at = self._horizon
        if time.monotonic() - read_at >= HORIZON_SECONDS:
            value = await ingest_horizon(self.db)
            self._horizon = (value, time.monotonic())
        return value

    async def _store(self, records: list, source: str, now, result: IngestResult) -> None:
        user_keys = await self.identities.resolve_many(r.subject for r, _ in records)
        encode = self.writer.encoder.row
        received = self.writer.encoder.time(now)
        quote = self.pricer.quote
        teams = self.teams
        if teams is not None:
            await teams.refresh()
        charge = teams.charge_team if teams is not None and teams.enabled else (lambda raw, user: "")
        rows, costs, charged = [], [], []
        for r, day in records:  # one pass: validated record -> priced driver tuple
            cost, price_source, unpriced, pico = quote(r.model, r.provider, r.occurred_at, r.input_tokens,
                                                 r.cached_input_tokens, r.output_tokens, r.cost_usd)
            costs.append(cost)
            user_key = user_keys[r.subject]
            team = charge(r.team, user_key)
            charged.append(team)
            rows.append(encode(r.event_id, r.occurred_at, day, received, source, r.subject, user_key, r.model,
                               r.provider, r.team, r.project, r.input_tokens, r.cached_input_tokens, r.output_tokens,
                               r.reasoning_tokens, cost, price_source, unpriced, r.metadata, r.cache_hit, team, pico))
        inserted = await self.writer.write_rows(rows)
        await self.identities.after_commit(user_keys)
        result.accepted = len(inserted)
        result.served_from_cache = sum(1 for i in inserted if records[i][0].cache_hit)
        result.duplicates += len(rows) - len(inserted)
        touched = result.touched
        team_touched = result.team_touched
        for i in inserted:
            if charged[i]:
                day = records[i][1]
                team_key = (charged[i], f"{day.year:04d}-{day.month:02d}")
                team_touched[team_key] = team_touched.get(team_key, ZERO) + costs[i]
        if self.recent_window is None:
            months: dict[date, str] = {}
            for i in inserted:
                record, day = records[i]
                month = months.get(day)
                if month is None:
                    month = months[day] = f"{day.year:04d}-{day.month:02d}"
                key = (user_keys[record.subject], month)
                touched[key] = touched.get(key, ZERO) + costs[i]
            return
        # the same pass, also summing what happened lately per person (a backfill, or a sender's clock
        # far ahead, is not a rate): one comparison and two dict updates more per event
        cutoff, ahead = now - self.recent_window, now + RECENT_AHEAD
        recent, last = result.recent, result.recent_last
        for i in inserted:
            record, day = records[i]
            user = user_keys[record.subject]
            cost = costs[i]
            key = (user, f"{day.year:04d}-{day.month:02d}")
            touched[key] = touched.get(key, ZERO) + cost
            if cost and cutoff <= record.occurred_at <= ahead:
                recent[user] = recent.get(user, ZERO) + cost
                last[user] = record


def _check_ranges(record: UsageRecord, day: date, oldest: date | None) -> None:
    for name in ("input_tokens", "output_tokens"):
        value = getattr(record, name)
        if value > MAX_EVENT_TOKENS:
            raise EventError(f"{name}: {value} is more than {MAX_EVENT_TOKENS:,} tokens for one event")
    if oldest is not None and day < oldest:
        raise EventError(f"timestamp: {record.occurred_at.isoformat()} is before {oldest.isoformat()}: raw events "
                         "are kept retention.raw_days, so older ones cannot be checked for duplicates")
