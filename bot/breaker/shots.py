"""The breaker's and the enforcers' surfaces for `tokenbot demo --shots` (bot/shots.py): the trip DM
in both modes and after each button, an unattributed key's, `/tokens admin breaker` and
`/tokens admin status`, all built by the real view functions."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

from bot.breaker.flows import breaker_list
from bot.breaker.messages import view_of
from bot.enforce.status import build_status
from bot.services import Services
from bot.views.breaker import BreakerListView, TripView, breaker_blocks, breaker_fallback, trip_blocks, trip_fallback
from bot.views.enforce_status import EnforcerLine, status_blocks, status_fallback
from bot.views.help import Message
from storage import breaker_repo


async def breaker_shots(services: Services, shots: Any, person: str, approver: str) -> None:
    now = services.clock.local_now()
    async with services.db.session() as session:
        trips = await breaker_repo.recent(session, services.clock.now() - timedelta(days=1), limit=1)
    if trips:
        base = replace(view_of(services, trips[0]), status="alert", decided_by=None, decided_at=None)
    else:
        base = TripView(1, person, "nightly-evals-agent", "gpt-4o", 15, Decimal("64.80"), Decimal("2.10"), "alert",
                        "alert", now)
    views = {
        "breaker-trip-alert": base,
        "breaker-trip-paused": replace(base, status="paused", decided_by=approver, decided_at=now),
        "breaker-trip-resumed": replace(base, status="resumed", decided_by=approver, decided_at=now),
        "breaker-trip-ignored": replace(base, status="ignored", decided_by=approver, decided_at=now,
                                        quiet_until=now + timedelta(hours=24)),
        "breaker-trip-pause-mode": replace(base, mode="pause", status="paused",
                                           auto_resume_at=now + timedelta(minutes=60)),
        "breaker-trip-pause-mode-resumed": replace(base, mode="pause", status="resumed", decided_by=approver,
                                                   decided_at=now),
        "breaker-trip-unattributed-key": replace(base, person=None, key_id="ci-nightly-key", model="gpt-4o-mini",
                                                 usual_usd=Decimal(0)),
    }
    for name, view in views.items():
        shots.message(name, view.person or services.settings.admins[0], trip_fallback(view), trip_blocks(view))

    listing = await breaker_list(services)
    if not listing.recent:
        listing = BreakerListView("pause", [views["breaker-trip-pause-mode"]], [views["breaker-trip-pause-mode"]])
    listing = replace(listing, mode="pause", paused=[views["breaker-trip-pause-mode"]])
    shots.ephemeral("admin-breaker", Message(breaker_fallback(listing), breaker_blocks(listing)))

    status = await build_status(services)
    local = services.clock.local_now()
    status = replace(status, breaker_mode="pause", paused=1, trips_today=max(status.trips_today, 1), enforcers=[
        EnforcerLine("litellm", "http://litellm:4000", 0, last_success=local - timedelta(minutes=3)),
        EnforcerLine("openai", "projects proj_platform", 2, last_success=local - timedelta(hours=2),
                     last_failure=local - timedelta(minutes=1), failing_since=local - timedelta(minutes=40),
                     last_error="OpenAI spend_limit proj_platform: APIConnectionError: Connection error."),
    ])
    shots.ephemeral("admin-status", Message(status_fallback(status), status_blocks(status)))
