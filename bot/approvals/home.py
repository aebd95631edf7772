"""The approval flow's App Home section: the requests waiting for this person's decision."""

from __future__ import annotations

from bot.approvals.builder import pending_for
from bot.services import Services
from bot.views.approvals import home_pending_blocks


async def pending_section(services: Services, user_id: str) -> list[dict]:
    """With the DM's buttons; nothing when nobody waits for them (listed in bot/wiring.py)."""
    return home_pending_blocks(await pending_for(services, user_id))
