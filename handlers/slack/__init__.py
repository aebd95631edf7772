"""Slack listeners: thin adapters from Bolt payloads to bot/ calls and bot/views renderings.

Each module here has `register(app, services)`; `register` below lists them all.
"""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.services import Services
from handlers.slack import actions, breaker, commands, events, modals, teams


def register(app: AsyncApp, services: Services) -> None:
    """Attach every Slack listener to the Bolt app."""
    for listeners in (commands, events, actions, modals, breaker, teams):
        listeners.register(app, services)
