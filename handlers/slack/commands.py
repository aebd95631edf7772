"""/tokens: ack at once, then run the command (bot/commands.py) and answer ephemerally.

The answer goes through Bolt's `respond` (the command's response_url, response_type
"ephemeral"). Bolt's webhook client does not retry 429s, so `send` does: it honours
Retry-After a few times before giving up.
"""

from __future__ import annotations

import asyncio
import logging

from slack_bolt.async_app import AsyncApp

from bot.commands import run_command
from bot.services import Services
from bot.views.answers import render
from bot.views.blocks import fit
from bot.views.help import Message, Notice, notice_message

log = logging.getLogger(__name__)

RESPOND_ATTEMPTS = 4
MAX_RETRY_AFTER = 10.0


async def send(respond, message: Message) -> bool:
    """Post an ephemeral answer to the response_url, retrying 429 and 5xx."""
    for attempt in range(RESPOND_ATTEMPTS):
        response = await respond(text=message.text, blocks=fit(message.blocks) or None, response_type="ephemeral")
        status = response.status_code
        if status < 400:
            return True
        if status != 429 and status < 500:
            log.error("response_url refused the answer: %s %s", status, response.body)
            return False
        if attempt + 1 < RESPOND_ATTEMPTS:
            retry_after = _retry_after(response.headers) if status == 429 else 1.0
            await asyncio.sleep(retry_after)
    log.error("response_url kept failing (%s); the answer was not delivered", status)
    return False


def _retry_after(headers) -> float:
    for key, value in (headers or {}).items():
        if key.lower() == "retry-after":
            raw = value[0] if isinstance(value, list) else value
            try:
                return min(max(float(raw), 0.0), MAX_RETRY_AFTER)
            except (TypeError, ValueError):
                break
    return 1.0


def register(app: AsyncApp, services: Services) -> None:
    @app.command("/tokens")
    async def tokens(ack, command, respond):
        await ack()
        try:
            answer = await run_command(
                services, command["user_id"], command.get("text", ""),
                channel_id=command.get("channel_id"), trigger_id=command.get("trigger_id"),
            )
            message = render(answer)
        except Exception:
            log.exception("/tokens %r failed for %s", command.get("text"), command.get("user_id"))
            message = notice_message(Notice("Sorry, that did not work on my side. Please try again in a minute.",
                                            ok=False))
        await send(respond, message)
