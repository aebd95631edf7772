"""Runaway detection (SPEC 12): cheap in-memory window sums as events arrive, confirmed in the database.

The ingest hook (installed by bot/wiring.py when `[breaker] mode` is not "off") adds each stored
event's cost to a per-minute bucket of its subject: the person (a Slack user id), or, for spend
no person is linked to, the API key or agent id itself. That is a dict update per event; the
webhook's answer never waits for anything more. After a batch, each touched subject's window
sum (at most `window_minutes` buckets) is compared with its threshold,
`max(min_usd, factor x usual)`, where "usual" is the person's average spend per window over the
last 14 local days (from the daily rollups, cached 10 minutes per person).

Only a subject over its threshold here costs a query: a background task sums the window in the
database (every process's events count there, and a burst another process received is seen as
soon as this process's share passes half the threshold), and trips only if that sum is over too.
The trip itself is an insert of (subject, episode) that exactly one process wins
(storage/breaker_repo.py).

Time is the injected clock's. An event counts in the window when it happened in
[now - window, now + 1 min]; a clock that jumps back never yields a negative window (older
buckets simply fall out), and buckets far in the future are ignored.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from bot.identities import is_slack_user_id
from bot.services import Services
from bot.usage import IngestResult

log = logging.getLogger(__name__)

ZERO = Decimal(0)
USUAL_DAYS = 14
USUAL_CACHE_SECONDS = 600.0
KEY_FIELDS = ("agent_id", "agent", "key_alias", "api_key_id", "key_id", "key_hash_prefix", "api_key")
MAX_WAIT = timedelta(minutes=1)


def key_of(metadata: dict[str, Any] | None) -> str | None:
    """The API key or agent id behind an event, from its metadata."""
    if not metadata:
        return None
    for name in KEY_FIELDS:
        value = metadata.get(name)
        if isinstance(value, str) and value:
            return value[:200]
    return None


class Windows:
    """Per subject: minute bucket -> USD, plus what the last events looked like (model, key)."""

    def __init__(self, window_minutes: int) -> None:
        self.window = window_minutes
        self.buckets: dict[str, dict[int, Decimal]] = defaultdict(dict)
        self.last: dict[str, tuple[str, str | None]] = {}  # subject -> (model, key or agent)
        self.subjects_of: dict[str, set[str]] = defaultdict(set)  # subject -> raw sender ids seen

    def add(self, subject: str, minute: int, cost: Decimal) -> None:
        buckets = self.buckets[subject]
        buckets[minute] = buckets.get(minute, ZERO) + cost

    def total(self, subject: str, now_minute: int) -> Decimal:
        """The subject's spend in the window ending at `now_minute`; drops buckets that fell out."""
        buckets = self.buckets.get(subject)
        if not buckets:
            return ZERO
        start = now_minute - self.window + 1
        total = ZERO
        for minute in list(buckets):
            if minute < start:
                del buckets[minute]
            elif minute <= now_minute + 1:
                total += buckets[minute]
        if not buckets:
            self.buckets.pop(subject, None)
        return total


class Detector:
    """The after-ingest hook and its state (one per process)."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.settings = services.settings.breaker
        self.windows = Windows(self.settings.window_minutes)
        self._usual: dict[str, tuple[Decimal, float]] = {}
        self._checking: set[str] = set()
        # subject -> the (injected clock's) moment before which no query runs for it
        self._next_check: dict[str, tuple[datetime, bool]] = {}  # and whether an episode was open
        self.checks = 0  # database confirmations run (bench, tests)

    async def after_ingest(self, result: IngestResult) -> None:
        if not result.stored:
            return
        now = self.services.clock.now()
        now_minute = int(now.timestamp() // 60)
        oldest = now_minute - self.windows.window + 1
        touched: set[str] = set()
        windows = self.windows
        for record, user_key, cost in result.stored:
            if not cost:
                continue
            minute = int(record.occurred_at.timestamp() // 60)
            if minute < oldest or minute > now_minute + 1:
                continue  # a backfill, or a sender's clock far ahead: not a rate
            subject = f"user:{user_key}" if is_slack_user_id(user_key) else f"key:{user_key}"
            windows.add(subject, minute, cost)
            windows.last[subject] = (record.model, key_of(record.metadata))
            windows.subjects_of[subject].add(record.subject)
            touched.add(subject)
        floor = self.settings.min_usd
        for subject in touched:
            total = windows.total(subject, now_minute)
            if total * 2 <= floor:
                continue  # nowhere near: the usual case, no lookup at all
            threshold = self.cached_threshold(subject)  # never a query here: the webhook waits for this hook
            if total * 2 > threshold and subject not in self._checking and self._ready(subject, now, total > threshold):
                self._checking.add(subject)
                self.services.background.spawn(self._confirm(subject, now), name="breaker-confirm")

    def _ready(self, subject: str, now: datetime, over_here: bool) -> bool:
        """No query before the subject's next check, unless the clock jumped back past it, or this process's
        own sum is over the threshold and the last check found no open episode."""
        wait = self._next_check.get(subject)
        if wait is None:
            return True
        wait_until, episode_open = wait
        if over_here and not episode_open:
            return True
        return not (now < wait_until <= now + MAX_WAIT)

    def cached_threshold(self, subject: str) -> Decimal:
        """The threshold from the usual spend this process last read (min_usd until it has read it)."""
        cached = self._usual.get(subject.partition(":")[2]) if subject.startswith("user:") else None
        usual = cached[0] if cached is not None else ZERO
        return max(self.settings.min_usd, self.settings.factor * usual)

    async def threshold(self, subject: str) -> Decimal:
        usual = await self.usual(subject)
        return max(self.settings.min_usd, self.settings.factor * usual)

    async def usual(self, subject: str) -> Decimal:
        """The person's average spend per window over the last 14 local days (0 for a bare key)."""
        kind, _, name = subject.partition(":")
        if kind != "user":
            return ZERO
        cached = self._usual.get(name)
        if cached is not None and time.monotonic() - cached[1] < USUAL_CACHE_SECONDS:
            return cached[0]
        from storage import breaker_repo

        today = self.services.clock.today()
        async with self.services.db.session() as session:
            spent = await breaker_repo.daily_spend(session, name, today - timedelta(days=USUAL_DAYS), today)
        windows_per_day = Decimal(1440) / Decimal(self.windows.window)
        value = spent / (USUAL_DAYS * windows_per_day)
        self._usual[name] = (value, time.monotonic())
        return value

    async def _confirm(self, subject: str, now: datetime) -> None:
        from bot.breaker import trips

        try:
            self.checks += 1
            wait = await trips.confirm_and_trip(self.services, self, subject, now)
            self._next_check[subject] = (now + timedelta(seconds=wait), wait >= trips.OPEN_SECONDS)
        except Exception:
            log.exception("breaker check of %s failed", subject)
        finally:
            self._checking.discard(subject)
