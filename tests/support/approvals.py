"""Helpers for the approval-flow tests: Slack interactivity payloads built from what the fake
Slack really holds (the posted message's buttons, the opened modal), signed by `bot.slack_post`."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from tests.support.signing import block_action_body, new_trigger_id, view_submission_body

TZ = ZoneInfo("America/New_York")
TEAM = {"id": "T0TEAM", "domain": "acme"}


def local(year: int, month: int, day: int, hour: int = 12, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=TZ).astimezone(UTC)


def usage(n: int | str, user: str, cost: str | Decimal, when: datetime, **fields) -> dict[str, Any]:
    event = {"id": f"u-{n}", "timestamp": when.isoformat(), "user": user, "model": "gpt-4o",
             "input_tokens": 1000, "output_tokens": 100, "cost_usd": str(cost)}
    event.update(fields)
    return event


def buttons(blocks: list[dict] | None) -> dict[str, dict]:
    """action_id -> button element, over every actions block and accessory."""
    found = {}
    for block in blocks or []:
        for element in block.get("elements", []) if block.get("type") == "actions" else []:
            found[element["action_id"]] = {**element, "block_id": block.get("block_id", "b")}
        accessory = block.get("accessory")
        if accessory and accessory.get("type") == "button":
            found[accessory["action_id"]] = {**accessory, "block_id": block.get("block_id", "b")}
    return found


def click_payload(user: str, button: dict, *, channel: str | None = None, message: dict | None = None,
                  response_url: str | None = None, container: str = "message",
                  trigger_id: str | None = None) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": TEAM["id"]},
        "api_app_id": "A0APP",
        "token": "deprecated-verification-token",
        "team": TEAM,
        "trigger_id": trigger_id or new_trigger_id(),
        "actions": [{
            "type": "button", "action_id": button["action_id"], "block_id": button.get("block_id", "b"),
            "text": button.get("text", {"type": "plain_text", "text": "button"}),
            "value": button.get("value"), "action_ts": f"{time.time():.6f}",
        }],
    }
    if container == "message":
        payload["container"] = {"type": "message", "message_ts": message["ts"] if message else "1.000001",
                                 "channel_id": channel, "is_ephemeral": message is None}
        payload["channel"] = {"id": channel, "name": "directmessage"}
        if message is not None:
            payload["message"] = message
        payload["response_url"] = response_url or f"https://hooks.slack.com/actions/T0TEAM/1/{uuid.uuid4().hex}"
    else:
        payload["container"] = {"type": "view", "view_id": "VHOME"}
        payload["view"] = {"id": "VHOME", "type": "home"}
    return payload


async def click(bot, user: str, button: dict, **kwargs) -> tuple[int, Any]:
    return await bot.slack_post(block_action_body(click_payload(user, button, **kwargs)))


def view_state(view: dict, values: dict[str, Any]) -> dict[str, Any]:
    """State for an opened modal: block_id -> {action_id: value}; radio values are option values."""
    state: dict[str, Any] = {}
    for block in view.get("blocks", []):
        if block.get("type") != "input":
            continue
        element = block["element"]
        block_id, action_id = block["block_id"], element["action_id"]
        given = values.get(block_id)
        if element["type"] == "radio_buttons":
            chosen = given if given is not None else (element.get("initial_option") or {}).get("value")
            option = next((o for o in element["options"] if o["value"] == chosen), None)
            state[block_id] = {action_id: {"type": "radio_buttons", "selected_option": option}}
        else:
            value = given if given is not None else element.get("initial_value")
            state[block_id] = {action_id: {"type": element["type"], "value": value}}
    return state


def submission_payload(user: str, view: dict, values: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "view_submission",
        "team": TEAM,
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": TEAM["id"]},
        "api_app_id": "A0APP",
        "token": "deprecated-verification-token",
        "trigger_id": new_trigger_id(),
        "view": {**view, "state": {"values": view_state(view, values)}},
        "response_urls": [],
        "is_enterprise_install": False,
    }


async def submit(bot, user: str, view: dict, values: dict[str, Any]) -> tuple[int, Any]:
    return await bot.slack_post(view_submission_body(submission_payload(user, view, values)))


def dms(fake, user: str) -> list[dict]:
    """Messages in the bot's DM with `user`, as they are now (after chat.update)."""
    return fake.messages_in("D" + user)


def approval_messages(fake, approver: str) -> list[dict]:
    """The approver's request DMs: the ones with the decision buttons, or the outcome that replaced them."""
    return [m for m in dms(fake, approver)
            if any(str(b.get("block_id", "")).startswith(("decide_", "outcome_")) for b in m.get("blocks") or [])]


def block_text(message: dict) -> str:
    return str(message.get("blocks")) + " " + str(message.get("text"))


class Receiver:
    """A gateway that enforces limits: records every limit.changed delivery; fails the first `fail`."""

    def __init__(self) -> None:
        self.fail = 0
        self.delay = 0.0
        self.received: list[tuple[dict[str, str], bytes, int]] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.delay:
            await asyncio.sleep(self.delay)
        status = 503 if len(self.received) < self.fail else 204
        self.received.append(({k.lower(): v for k, v in request.headers.items()}, body, status))
        return web.Response(status=status)

    @property
    def accepted(self) -> list[dict]:
        return [json.loads(body) for _, body, status in self.received if status < 300]


@asynccontextmanager
async def serve_receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/limits", rec.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    rec.url = f"http://127.0.0.1:{runner.addresses[0][1]}/limits"
    try:
        yield rec
    finally:
        await runner.cleanup()
