"""/tokens: parse, authorise, call bot/, render with bot/views."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.services import Services


def register(app: AsyncApp, services: Services) -> None:
    @app.command("/tokens")
    async def tokens(ack, command):
        await ack(text="tokenbot is starting up: /tokens answers arrive in the next release.")
