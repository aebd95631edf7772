"""Slack listeners: thin adapters from Bolt payloads to bot/ calls and bot/views renderings.

Each module here has `register(app, services)`; add new modules to LISTENER_MODULES.
"""

from __future__ import annotations

import importlib

from slack_bolt.async_app import AsyncApp

from bot.services import Services

LISTENER_MODULES = ["handlers.slack.commands", "handlers.slack.events", "handlers.slack.actions",
                    "handlers.slack.modals"]


def register(app: AsyncApp, services: Services) -> None:
    """Attach every Slack listener to the Bolt app."""
    for name in LISTENER_MODULES:
        importlib.import_module(name).register(app, services)
