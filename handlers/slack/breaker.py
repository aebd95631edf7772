"""Buttons of the runaway breaker's DM: ack, then `bot.breaker.flows.press`; a refusal or a press
that came second is answered privately (ephemeral, the message itself is left alone)."""

from __future__ import annotations

import logging

from slack_bolt.async_app import AsyncApp

from bot.breaker import flows
from bot.services import Services
from bot.views.breaker import IGNORE_ACTION, PAUSE_ACTION, RESUME_ACTION

log = logging.getLogger(__name__)


def register(app: AsyncApp, services: Services) -> None:
    async def handle(body, respond, action: str) -> None:
        raw = (body.get("actions") or [{}])[0].get("value") or ""
        if not raw.isdigit():
            return
        result = await flows.press(services, int(raw), body["user"]["id"], action)
        if result.message:
            try:
                await respond(text=result.message, response_type="ephemeral", replace_original=False)
            except Exception:
                log.warning("could not answer a breaker press privately")

    for action_id, action in ((PAUSE_ACTION, "pause"), (RESUME_ACTION, "resume"), (IGNORE_ACTION, "ignore")):
        def listener(action=action):
            async def on_click(ack, body, respond):
                await ack()
                await services.background.after_ack(handle(body, respond, action), name=f"breaker-{action}")
            return on_click

        app.action(action_id)(listener())
