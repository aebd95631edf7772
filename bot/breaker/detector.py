"""Runaway detection (SPEC 12): cheap in-memory window sums as events arrive, confirmed in the database.

The ingest hook (installed by bot/wiring.py when `[breaker] mode` is not "off") reads each stored
batch's spend per person (or, for spend no person is linked to, per key or id), summed by the
ingest's own pass over the events (bot/usage.py `recent_window`: one comparison and two dict
updates more per event); only events that happened within the last window count (a backfill is
not a rate). The hook adds each person's batch sum to the minute it arrived in and to the person's
running total over the minutes still held (minutes are forgotten once per minute, not per batch);
the webhook's answer waits for nothing more, and no query ever runs in the hook. Someone past half
of `min_usd` gets their window summed exactly; past half their threshold,
`max(min_usd, factor x usual)` ("usual": the person's average spend per window over the last 14
local days from the daily rollups, read by the background check and cached 10 minutes), they get a
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


class Windows:
    """Spend per arrival minute per user_key, the running total of each user_key's window, and the last
    event seen of each (its model and metadata name the trip)."""

    def __init__(self, window_minutes: int) -> None:
        self.window = window_minutes
        self.minutes: dict[int, dict[str, Decimal]] = {}  # minute -> user_key -> spend that arrived then
        self.totals: dict[str, Decimal] = {}  # user_key -> the sum over its minutes still held
        self.last: dict[str, Any] = {}  # user_key -> the last recent UsageRecord

    def expire(self, start: int) -> None:
        """Forget the minutes before `start` (once per minute that falls out, whatever the traffic)."""
        minutes, totals = self.minutes, self.totals
        for minute in [m for m in minutes if m < start]:
            for user_key, spent in minutes.pop(minute).items():
                left = totals[user_key] - spent
                if left:
                    totals[user_key] = left
                else:
                    del totals[user_key]
                    self.last.pop(user_key, None)

    def total(self, subject: str, now_minute: int) -> Decimal:
        """A subject's spend in the window ending at `now_minute`: exact, and never counting minutes
        "ahead" of a clock that jumped back."""
        user_key = subject.partition(":")[2]
        start, end = now_minute - self.window + 1, now_minute + 1
        return sum((spent.get(user_key, ZERO) for minute, spent in self.minutes.items() if start <= minute <= end),
                   ZERO)

    def last_of(self, subject: str) -> tuple[str | None, str | None]:
        """(model, key or agent) of the subject's last recent event."""
        record = self.last.get(subject.partition(":")[2])
        return (record.model, key_of(record.metadata)) if record is not None else (None, None)


def subject_of(user_key: str) -> str:
    return f"user:{user_key}" if is_slack_user_id(user_key) else f"key:{user_key}"


class Detector:
    """The after-ingest hook and its state (one per process)."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.settings = services.settings.breaker
        self.windows = Windows(self.settings.window_minutes)
        self.window = timedelta(minutes=self.settings.window_minutes)
        self._usual: dict[str, tuple[Decimal, float]] = {}
        self._checking: set[str] = set()
        # subject -> the (injected clock's) moment before which no query runs for it
        self._next_check: dict[str, tuple[datetime, bool]] = {}  # and whether an episode was open
        self.checks = 0  # database confirmations run (bench, tests)

    async def after_ingest(self, result: IngestResult) -> None:
        sums, lasts = result.recent, result.recent_last  # summed per person by the ingest's own pass
        if not sums:
            return
        now = self.services.clock.now()
        now_minute = int(now.timestamp() // 60)
        windows = self.windows
        start = now_minute - windows.window + 1
        if windows.minutes and next(iter(windows.minutes)) < start:
            windows.expire(start)
        bucket = windows.minutes.get(now_minute)
        if bucket is None:
            bucket = windows.minutes[now_minute] = {}
        totals = windows.totals
        half = self.settings.min_usd / 2
        near = []
        for user_key, spent in sums.items():  # per person: two dict updates, two additions, a comparison
            known = bucket.get(user_key)
            bucket[user_key] = spent if known is None else known + spent
            known = totals.get(user_key)
            total = totals[user_key] = spent if known is None else known + spent
            if total > half:
                near.append(user_key)
        windows.last.update(lasts)
        for user_key in near:  # rarely anyone: those past half of min_usd
            subject = subject_of(user_key)
            total = windows.total(subject, now_minute)
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
