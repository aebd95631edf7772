"""Runaway detection (SPEC 12): cheap in-memory window sums as events arrive, confirmed in the database.

The ingest hook (installed by bot/wiring.py when `[breaker] mode` is not "off") sums each stored
batch per subject: the person (a Slack user id) or, for spend no person is linked to, the key or
id itself. Per event that is one time comparison, two dict updates and one addition; only events
that happened within the last window count (a backfill is not a rate). Each subject's batch sum
goes into the bucket of the minute it arrived in, and the subject's window is the sum of its last
`window_minutes` buckets, kept as a running sum. The webhook's answer waits for nothing more:
no query ever runs in the hook. A subject whose window passes half its threshold,
`max(min_usd, factor x usual)` ("usual": the person's average spend per window over the last 14
local days from the daily rollups, read by the background check and cached 10 minutes), gets a
background check.

The check sums the window in the database by the events' own times (every process's events
count there, so a burst spread over processes is seen as soon as one process's share passes
half the threshold) and trips only if that sum is over the threshold. The trip is an insert of
(subject, episode) that exactly one process wins (storage/breaker_repo.py).

Time is the injected clock's. A clock that jumps back never yields a negative window (buckets
"ahead" of it are left out until it catches up); one that jumps forward lets old buckets fall out.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from bot.identities import is_slack_user_id
from bot.services import Services
from bot.usage import IngestResult
from storage import breaker_repo

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


class Window:
    """One subject's spend per minute bucket, its running sum, and the last event seen (model, key)."""

    __slots__ = ("buckets", "last", "newest", "oldest", "senders", "subject", "sum")

    def __init__(self, subject: str) -> None:
        self.subject = subject
        self.buckets: dict[int, Decimal] = {}
        self.sum = ZERO
        self.oldest = self.newest = 0
        self.last = None  # the last UsageRecord (its model and metadata name the trip)
        self.senders: set[str] = set()  # the raw sender ids seen (indexed in the database)

    def total(self, start: int, end: int) -> Decimal:
        """Spend in minutes [start, end]; buckets before `start` are dropped for good."""
        buckets = self.buckets
        if buckets and self.oldest < start:
            for minute in [m for m in buckets if m < start]:
                self.sum -= buckets.pop(minute)
            self.oldest = min(buckets, default=0)
        if buckets and self.newest > end:  # the clock jumped back: what lies ahead does not count (yet)
            return sum((v for m, v in buckets.items() if m <= end), ZERO)
        return self.sum


class Windows:
    """Every subject's window, by the user_key events carry."""

    def __init__(self, window_minutes: int) -> None:
        self.window = window_minutes
        self.by_key: dict[str, Window] = {}
        self.by_subject: dict[str, Window] = {}

    def of(self, user_key: str) -> Window:
        window = self.by_key.get(user_key)
        if window is None:
            subject = f"user:{user_key}" if is_slack_user_id(user_key) else f"key:{user_key}"
            window = self.by_key[user_key] = self.by_subject[subject] = Window(subject)
        return window

    def total(self, subject: str, now_minute: int) -> Decimal:
        window = self.by_subject.get(subject)
        return window.total(now_minute - self.window + 1, now_minute + 1) if window is not None else ZERO

    def last_of(self, subject: str) -> tuple[str | None, str | None]:
        """(model, key or agent) of the subject's last event."""
        window = self.by_subject.get(subject)
        record = window.last if window is not None else None
        return (record.model, key_of(record.metadata)) if record is not None else (None, None)

    def senders(self, subject: str) -> set[str]:
        window = self.by_subject.get(subject)
        return window.senders if window is not None else set()


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
        cutoff = now - timedelta(minutes=self.windows.window)
        ahead = now + MAX_WAIT
        sums: dict[str, Decimal] = {}
        lasts: dict[str, Any] = {}
        for record, user_key, cost in result.stored:  # per event: a comparison, two dict updates, one addition
            when = record.occurred_at
            if not cost or when < cutoff or when > ahead:
                continue  # a backfill, or a sender's clock far ahead: not a rate
            known = sums.get(user_key)
            sums[user_key] = cost if known is None else known + cost
            lasts[user_key] = record
        if not sums:
            return
        windows = self.windows
        by_key, of = windows.by_key, windows.of
        floor = self.settings.min_usd
        start = now_minute - windows.window + 1
        near = []
        for user_key, spent in sums.items():  # per person, inlined: most people are nowhere near
            window = by_key.get(user_key) or of(user_key)
            buckets = window.buckets
            if buckets and next(iter(buckets)) < start:
                window.total(start, now_minute + 1)  # drop what fell out of the window
            if not buckets:
                window.oldest = window.newest = now_minute
            elif now_minute > window.newest:
                window.newest = now_minute
            elif now_minute < window.oldest:  # the clock jumped back
                window.oldest = now_minute
            buckets[now_minute] = buckets.get(now_minute, ZERO) + spent
            window.sum += spent
            record = window.last = lasts[user_key]
            window.senders.add(record.subject)
            if window.sum * 2 > floor:
                near.append(window)
        for window in near:
            total = window.total(start, now_minute + 1)
            if total * 2 <= floor:
                continue
            subject = window.subject
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
