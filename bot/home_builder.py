"""The App Home: builds the `HomeView` (bot/views/home.py): the caller's card, then the sections.

The sections are `Services.home_sections`, listed by the composition root (bot/wiring.py):
async functions `(services, user_id) -> list of blocks` (shown under the card; an empty list
when they have nothing to show) or `-> HomeSection` (bot/views/home.py; `first=True` puts
pending work above the card). A failing section is logged and left out: the card still shows.

Kept current: every `app_home_opened` rebuilds the Home; the published view carries a
fingerprint of its content in `private_metadata`, and Slack sends that view back with
the event, so the Home is republished exactly when something shown changed (the
person's usage, budget, a request, a section). `publish_home(..., shown=None)` forces
a publish (for features that change what a Home shows).

Events API retries (X-Slack-Retry-Num) carry the same event_id: `first_delivery`
claims it with an INSERT that ignores conflicts in slack_events_seen, so only one
delivery, in one process, does the work.
"""

from __future__ import annotations

import hashlib
import json
import logging
import zlib
from dataclasses import replace
from datetime import timedelta

from bot import card_builder
from bot.services import Services
from bot.views.card import CardView
from bot.views.home import HomeSection, HomeView, home_view
from storage import queries

log = logging.getLogger(__name__)

SEEN_KEEP = timedelta(days=2)  # Slack retries within minutes; old claims are purged now and then


def fingerprint(card: CardView, sections: tuple[HomeSection, ...]) -> str:
    """What the Home shows, minus the time it was drawn."""
    digest = hashlib.sha256(repr(replace(card, as_of=None)).encode())
    digest.update(json.dumps([(s.first, s.blocks) for s in sections], sort_keys=True, default=str).encode())
    return digest.hexdigest()[:32]


async def build_home(services: Services, user_id: str) -> HomeView:
    card = replace(await card_builder.build_card(services, user_id), as_of=None)  # the Home is kept current
    sections: list[HomeSection] = []
    for section in services.home_sections:
        try:
            shown = await section(services, user_id)
        except Exception:
            log.exception("home section %s failed for %s", getattr(section, "__name__", section), user_id)
            continue
        sections.append(shown if isinstance(shown, HomeSection) else HomeSection(tuple(shown or ())))
    frozen = tuple(sections)
    return HomeView(card=card, sections=frozen, fingerprint=fingerprint(card, frozen))


async def publish_home(services: Services, user_id: str, *, shown: str | None = None) -> bool:
    """Build the Home and publish it unless `shown` (the fingerprint Slack has) is the same."""
    if services.slack is None:
        return False
    view = await build_home(services, user_id)
    if shown is not None and shown == view.fingerprint:
        return False
    await services.slack.views_publish(user_id=user_id, view=home_view(view))
    return True


async def first_delivery(services: Services, event_id: str) -> bool:
    """True for the first delivery of an Events API event_id, in any process; False for retries."""
    now = services.clock.now()
    async with services.db.write() as session:
        claimed = await queries.claim_slack_event(session, event_id, now)
        if claimed and zlib.crc32(event_id.encode()) % 64 == 0:
            await queries.forget_slack_events(session, now - SEEN_KEEP)
    return claimed


async def on_home_opened(services: Services, user_id: str, event_id: str | None, shown: str | None) -> bool:
    """app_home_opened: link an email-only caller, then republish if what is shown changed."""
    if event_id and not await first_delivery(services, event_id):
        return False
    try:
        await card_builder.link_caller_email(services, user_id)
        return await publish_home(services, user_id, shown=shown or None)
    except Exception:
        if event_id:  # let Slack's retry try again
            async with services.db.write() as session:
                await queries.release_slack_event(session, event_id)
        raise


async def refresh_home(services: Services, user_id: str) -> None:
    """Publish someone's Home after something it shows changed (a decision taken from it)."""
    try:
        await publish_home(services, user_id)
    except Exception:
        log.exception("App Home refresh for %s failed", user_id)
