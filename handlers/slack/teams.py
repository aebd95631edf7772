"""The team card's "Ask for a team raise" button and its form: parse, ack, call bot/teams/requests.py."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.services import Services
from bot.teams import requests
from bot.views.approvals import AMOUNT_BLOCK, REASON_BLOCK
from bot.views.team_forms import TEAM_RAISE_ACTION, TEAM_RAISE_MODAL


def _value(state: dict[str, Any], block_id: str) -> Any:
    return ((state.get(block_id) or {}).get(block_id) or {}).get("value")


def register(app: AsyncApp, services: Services) -> None:
    async def run(coro) -> None:
        await services.background.after_ack(coro, name="team-raise")

    @app.action(TEAM_RAISE_ACTION)
    async def team_raise_open(ack, body):
        await ack()
        team = str((body.get("actions") or [{}])[0].get("value") or "")
        await run(requests.team_raise_clicked(services, body["user"]["id"], team, body["trigger_id"]))

    @app.view(TEAM_RAISE_MODAL)
    async def team_raise_submitted(ack, body, view):
        team = str(view.get("private_metadata") or "")
        state = view["state"]["values"]
        amount, reason = _value(state, AMOUNT_BLOCK), _value(state, REASON_BLOCK)
        errors = await requests.team_raise_form_errors(services, team, amount, reason)
        if errors:
            await ack(response_action="errors", errors=errors)
            return
        await ack()
        await run(requests.team_raise_submitted(services, body["user"]["id"], team, amount, reason))
