"""The one source of "now", and of the organisation's days and months.

Storage keeps UTC; days and months are the organisation's local calendar (config
`timezone`). Tests pass a `Clock` with a fixed or settable `now`.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


def utcnow() -> datetime:
    return datetime.now(UTC)


class Clock:
    def __init__(self, tz: ZoneInfo, now: Callable[[], datetime] = utcnow) -> None:
        self.tz = tz
        self._now = now

    def now(self) -> datetime:
        return self._now()

    def local_now(self) -> datetime:
        return self._now().astimezone(self.tz)

    def today(self) -> date:
        return self.local_now().date()

    def local_day(self, moment: datetime) -> date:
        return moment.astimezone(self.tz).date()

    def start_of_day(self, day: date) -> datetime:
        """The UTC instant the local `day` begins (DST-safe)."""
        return datetime.combine(day, time(0), self.tz).astimezone(UTC)

    def at_local(self, day: date, at: time) -> datetime:
        return datetime.combine(day, at, self.tz).astimezone(UTC)


class SettableClock(Clock):
    """A clock tests move by hand."""

    def __init__(self, tz: ZoneInfo, start: datetime) -> None:
        self.current = start
        super().__init__(tz, lambda: self.current)

    def set(self, moment: datetime) -> None:
        self.current = moment

    def advance(self, **delta: float) -> None:
        self.current += timedelta(**delta)


def month_key(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def month_first_day(day: date) -> date:
    return day.replace(day=1)


def month_last_day(day: date) -> date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def next_month_first_day(day: date) -> date:
    return month_last_day(day) + timedelta(days=1)


def parse_month(key: str) -> date:
    year, month = key.split("-")
    return date(int(year), int(month), 1)


def month_label(key: str) -> str:
    """"2026-11" -> "November 2026"."""
    return f"{parse_month(key):%B %Y}"
