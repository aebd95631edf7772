"""The digests' line about the runaway breaker: the period's trips (names only when the digest
shows names; otherwise just how many)."""

from __future__ import annotations

from datetime import date, timedelta

from bot.breaker.messages import view_of
from bot.services import Services
from bot.views.breaker import trip_digest_line
from bot.views.format import plural
from storage import breaker_repo


async def trip_lines(services: Services, first: date, last: date, privacy: str) -> tuple[str, ...]:
    if not services.settings.breaker.on:
        return ()
    clock = services.clock
    async with services.db.session() as session:
        trips = await breaker_repo.recent(session, clock.start_of_day(first),
                                          clock.start_of_day(last + timedelta(days=1)), limit=50)
    if not trips:
        return ()
    if privacy != "names":
        return (f"The runaway breaker tripped {plural(len(trips), 'time')}.",)
    return tuple(trip_digest_line(view_of(services, t)) for t in reversed(trips[:10]))
