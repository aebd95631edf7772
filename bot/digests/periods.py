"""Digest subscriptions and the days a digest covers (see the package docstring for the rules)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, time, timedelta

from bot.config import ConfigError, DigestConfig, Settings, parse_hhmm
from bot.services import Services
from storage import digests_repo

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Subscription:
    channel: str
    at: time  # local time in the organisation's zone
    period: str = "day"  # "day" | "week"
    top: int = 10
    leaderboard: str | None = None  # privacy override; None: settings.leaderboard
    source: str = "config"  # "config" | "admin" | "cli" | "demo"

    @property
    def job_id(self) -> str:
        return f"digest:{self.channel}:{self.period}"

    @property
    def job_name(self) -> str:
        return f"{self.job_id}@{self.at:%H:%M}"

    def privacy(self, settings: Settings) -> str:
        return self.leaderboard or settings.leaderboard

    @classmethod
    def from_config(cls, entry: DigestConfig) -> Subscription:
        return cls(entry.channel, entry.time, entry.period, entry.top, entry.leaderboard, "config")


async def load_subscriptions(services: Services) -> list[Subscription]:
    """Config `[[digests]]` plus stored rows (a stored row replaces the config entry of its channel+period)."""
    subs = {(d.channel, d.period): Subscription.from_config(d) for d in services.settings.digests}
    async with services.db.session() as session:
        rows = await digests_repo.subscriptions(session)
    for row in rows:
        try:
            at = parse_hhmm(row.local_time, key=f"digest_subscriptions[{row.id}].local_time")
        except ConfigError as exc:
            log.warning("ignoring a stored digest: %s", exc)
            continue
        if row.period not in ("day", "week"):
            log.warning("ignoring stored digest %s: unknown period %r", row.id, row.period)
            continue
        subs[(row.channel, row.period)] = Subscription(
            row.channel, at, row.period, max(1, min(row.top or 10, 50)), row.leaderboard, "admin"
        )
    return sorted(subs.values(), key=lambda s: (s.channel, s.period))


def covered_by_post(period: str, post_day: date) -> tuple[date, date] | None:
    """The days a digest posted on local `post_day` covers; None when it is not posted that day."""
    if period == "day":
        day = post_day - timedelta(days=1)
        return day, day
    if post_day.weekday() != 0:  # weekly digests are posted on Mondays
        return None
    return post_day - timedelta(days=7), post_day - timedelta(days=1)


def period_containing(period: str, day: date) -> tuple[date, date]:
    """`tokenbot digest --date D`: that day, or the Monday-Sunday week around it."""
    if period == "day":
        return day, day
    monday = day - timedelta(days=day.weekday())
    return monday, monday + timedelta(days=6)


def latest_complete(period: str, today: date) -> tuple[date, date]:
    """What `tokenbot digest` without --date covers: yesterday, or the last complete week."""
    if period == "day":
        return period_containing("day", today - timedelta(days=1))
    this_monday = today - timedelta(days=today.weekday())
    return period_containing("week", this_monday - timedelta(days=7))


def due_now(services: Services, sub: Subscription) -> tuple[date, date] | None:
    """(first, last) covered when the subscription's moment today has passed; else None."""
    clock = services.clock
    today = clock.today()
    covered = covered_by_post(sub.period, today)
    if covered is None or clock.now() < clock.at_local(today, sub.at):
        return None
    return covered
