"""Team raise requests: `/tokens request team <name> <amount> [reason]` and the team card's button.

Placeholder until the flow lands (see README "Teams").
"""

from __future__ import annotations

from bot.commands import Answer, Invocation
from bot.views.help import Notice


async def request_team_command(invocation: Invocation) -> Answer:
    return Notice("Team raise requests are not available yet.", ok=False)
