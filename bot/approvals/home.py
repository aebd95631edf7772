"""The approval flow's App Home section: the requests waiting for this person's decision, above the card."""

from __future__ import annotations

from bot.approvals.builder import pending_for
from bot.services import Services
from bot.views.approvals import home_pending_blocks
from bot.views.home import HomeSection


async def pending_section(services: Services, user_id: str) -> HomeSection:
    """With the DM's buttons; nothing when nobody waits for them (listed in bot/wiring.py)."""
    return HomeSection(tuple(home_pending_blocks(await pending_for(services, user_id))), first=True)
