"""The first valid decision wins, exactly once (SPEC 7.3, 9): double clicks, several approvers,
Slack retries and several `tokenbot serve` processes sharing one database."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bot.approvals import flows, service
from tests.conftest import BOT_TOKEN, SIGNING_SECRET
from tests.support.approvals import approval_messages, buttons, click_payload, dms, serve_receiver
from tests.support.signing import block_action_body, slack_signed_headers

ALICE, BOB, FIN, ADMIN = "U0ALICE", "U0BOB", "U0FIN", "U0ADMIN"
SECRET = "whsec_dGhlLWxpbWl0cy13ZWJob29rLXNlY3JldC10by1zaWdu"
CONFIG = """
timezone = "America/New_York"
admins = ["U0ADMIN"]
[approvals]
default_approvers = ["U0FIN"]
[approvals.approver]
"U0ALICE" = "U0BOB"
"""


@pytest.fixture
async def receiver():
    async with serve_receiver() as rec:
        yield rec


def clicks(fake, message: dict) -> list[bytes]:
    """Ten clicks on Approve (Bob six times, the admin four times, each with its own response_url),
    and the first one delivered twice more (Slack retrying it)."""
    approve = buttons(message["blocks"])["approve_request"]
    bodies = []
    for n, user in enumerate([BOB] * 6 + [ADMIN] * 4):
        payload = click_payload(user, approve, channel="D" + BOB, message=message,
                                response_url=fake.response_url(f"click-{n}"))
        bodies.append(block_action_body(payload))
    return [*bodies, bodies[0], bodies[0]]


async def post(http: aiohttp.ClientSession, url: str, body: bytes) -> int:
    async with http.post(url + "/slack/events", data=body, headers=slack_signed_headers(body, SIGNING_SECRET)) as r:
        return r.status


async def check_decided_once(bot, fake, receiver) -> None:
    assert await bot.sql("SELECT status, decided_by IS NOT NULL FROM budget_requests") == [("approved", True)]
    assert await bot.sql("SELECT COUNT(*) FROM budget_raises") == [(1,)]
    assert await bot.sql("SELECT COUNT(*) FROM audit_log WHERE action = 'request.approved'") == [(1,)]
    assert await bot.sql("SELECT COUNT(*) FROM outbox") == [(1,)]
    assert len(fake.calls_to("chat.update")) == 1
    assert len([m for m in dms(fake, ALICE) if "Approved: $50 more" in str(m["blocks"])]) == 1
    told = [c.args["text"] for c in fake.responses]
    assert len(told) == 11 and all("already approved by" in t for t in told)  # everybody but the winner
    assert len(receiver.accepted) == 1 and receiver.accepted[0]["data"]["limit_usd"] == "250"


async def test_ten_concurrent_approvals_and_retries_raise_the_limit_once(make_bot, fake_slack, receiver):
    bot = await make_bot(approvers={ALICE: BOB}, admins=(ADMIN,), default_monthly_usd=200,
                         limits_webhook_url=receiver.url, limits_webhook_secret=SECRET)
    await flows.submit_request(bot.services, ALICE, "50", "evals")
    [message] = approval_messages(fake_slack, BOB)
    statuses = await asyncio.gather(*(post(bot.http, bot.url, body) for body in clicks(fake_slack, message)))
    assert statuses == [200] * 12
    await bot.services.background.drain()
    await check_decided_once(bot, fake_slack, receiver)


async def test_concurrent_requests_leave_one_pending(make_bot, fake_slack):
    bot = await make_bot(approvers={ALICE: BOB})
    other = await make_bot(approvers={ALICE: BOB})
    results = await asyncio.gather(*(service.create_request(b.services, ALICE, "10", None)
                                     for b in (bot, other, bot, other, bot)))
    assert sorted(r.outcome for r in results) == ["created"] + ["pending_exists"] * 4
    assert await bot.sql("SELECT COUNT(*) FROM budget_requests WHERE status = 'pending'") == [(1,)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tail(path: Path) -> str:
    return path.read_text(errors="replace")[-2000:]


@pytest.fixture
async def second_process(database_url, fake_slack, receiver, tmp_path) -> AsyncIterator[str]:
    """A real `tokenbot serve` on the same database and fake Slack; yields its base URL."""
    config = tmp_path / "tokenbot.toml"
    config.write_text(CONFIG)
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "TOKENBOT_", "LIMITS_", "USAGE_"))},
        "DATABASE_URL": database_url, "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake_slack.api_url, "HOST": "127.0.0.1", "PORT": str(port),
        "TOKENBOT_CONFIG": str(config), "LIMITS_WEBHOOK_URL": receiver.url, "LIMITS_WEBHOOK_SECRET": SECRET,
    }
    log = (tmp_path / "serve.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "serve", cwd=tmp_path, env=env, stdout=log, stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(300):  # wait for it to answer (process start-up, not a schedule)
                try:
                    async with http.get(url + "/healthz") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                if process.returncode is not None:
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("tokenbot serve did not start")
        if process.returncode is not None:
            raise AssertionError("tokenbot serve exited: " + tail(tmp_path / "serve.log"))
        yield url
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()
        log.close()


async def test_two_server_processes_decide_once(make_bot, fake_slack, receiver, second_process):
    """Ten clicks split between this process's bot and a separate `tokenbot serve` process."""
    from tests.support.approvals import TZ  # the same organisation time zone as CONFIG

    bot = await make_bot(approvers={ALICE: BOB}, admins=(ADMIN,), default_approvers=(FIN,), timezone=TZ,
                         default_monthly_usd=200, limits_webhook_url=receiver.url, limits_webhook_secret=SECRET)
    await flows.submit_request(bot.services, ALICE, "50", "evals")
    [message] = approval_messages(fake_slack, BOB)
    bodies = clicks(fake_slack, message)
    statuses = await asyncio.gather(*(post(bot.http, second_process if i % 2 else bot.url, body)
                                      for i, body in enumerate(bodies)))
    assert statuses == [200] * len(bodies)
    # the other process works after its ack: wait for what it tells Slack and the receiver
    await fake_slack.wait_for("response_url", 11, timeout=15)
    await fake_slack.wait_for("chat.update", 1, timeout=15)
    for _ in range(200):
        if receiver.accepted and len([m for m in dms(fake_slack, ALICE) if "was approved" in str(m["blocks"])]):
            break
        await asyncio.sleep(0.05)
    await bot.services.background.drain()
    await check_decided_once(bot, fake_slack, receiver)
