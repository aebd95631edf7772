"""Events API: app_home_opened publishes the caller's App Home (bot/home_builder.py).

Bolt acknowledges events before the listener runs. Retries of the same delivery
(X-Slack-Retry-Num) carry the same event_id and are dropped by `on_home_opened`'s
database claim, whichever process they reach. Listener tasks are held by
`services.background` until they finish (asyncio keeps only weak references;
SLACK_NOTES.md), so tests and shutdown wait for them with everything else.
"""

from __future__ import annotations

import logging

from slack_bolt.async_app import AsyncApp

from bot.home_builder import on_home_opened
from bot.services import Services

log = logging.getLogger(__name__)

def register(app: AsyncApp, services: Services) -> None:
    @app.event("app_home_opened")
    async def home_opened(event, body):
        services.background.hold_current_task()
        if event.get("tab", "home") != "home":
            return  # the Messages tab: nothing to publish
        user_id = event.get("user")
        if not user_id:
            return
        shown = (event.get("view") or {}).get("private_metadata")
        try:
            await on_home_opened(services, user_id, body.get("event_id"), shown)
        except Exception:
            log.exception("App Home for %s failed", user_id)
