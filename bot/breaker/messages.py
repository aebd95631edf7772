"""The trip DM: who gets it, posting it, and updating every copy in place."""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackApiError

from bot.services import Services
from bot.views.breaker import TripView, trip_blocks, trip_fallback
from storage import breaker_repo
from storage.models import BreakerTrip

log = logging.getLogger(__name__)


def view_of(services: Services, trip: BreakerTrip) -> TripView:
    tz = services.clock.tz

    def local(moment):
        return moment.astimezone(tz) if moment is not None else None

    return TripView(trip.id, trip.user_key, trip.key_id, trip.model, trip.window_minutes, trip.window_usd,
                    trip.usual_usd, trip.mode, trip.status, local(trip.tripped_at), trip.decided_by,
                    local(trip.decided_at), local(trip.auto_resume_at), local(trip.quiet_until))


async def recipients(services: Services, trip: BreakerTrip) -> list[str]:
    """The person and their approver(s); admins for a key no person is linked to."""
    if trip.user_key is None:
        return list(dict.fromkeys(services.settings.admins))
    approvers = await services.approvers.resolve(trip.user_key)
    return list(dict.fromkeys([trip.user_key, *approvers.users]))


async def post_trip(services: Services, trip: BreakerTrip) -> None:
    if services.slack is None:
        return
    view = view_of(services, trip)
    text, blocks = trip_fallback(view), trip_blocks(view)
    posted: list[list[str]] = []
    for user in await recipients(services, trip):
        try:
            response = await services.slack.chat_postMessage(channel=user, text=text, blocks=blocks)
        except SlackApiError as exc:
            log.warning("breaker DM to %s failed: %s", user, exc.response.get("error"))
            continue
        posted.append([response["channel"], response["ts"]])
    async with services.db.write() as session:
        await breaker_repo.set_messages(session, trip.id, posted)


async def update_everywhere(services: Services, trip: BreakerTrip) -> None:
    """chat.update every copy of the trip DM with its state now."""
    if services.slack is None:
        return
    view = view_of(services, trip)
    text, blocks = trip_fallback(view), trip_blocks(view)
    for channel, ts in trip.messages or []:
        try:
            await services.slack.chat_update(channel=channel, ts=ts, text=text, blocks=blocks)
        except SlackApiError as exc:
            log.warning("breaker DM update in %s failed: %s", channel, exc.response.get("error"))
