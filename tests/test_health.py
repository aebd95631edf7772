"""GET /healthz (SPEC 4) and how the served bot answers when its database is gone."""

from __future__ import annotations

import time

import pytest

from tests.conftest import API_TOKEN, WEBHOOK_TOKEN, event

UNREACHABLE = [
    "postgresql+asyncpg://postgres@127.0.0.1:1/none",  # nothing listens on port 1
    "sqlite+aiosqlite:////nonexistent-dir/tokenbot/tokenbot.db",  # cannot be opened
]
# LiteLLM's legacy v1 logger shape (every value a string), as in shared/examples/litellm
LITELLM_V1 = [{
    "id": "chatcmpl-health-1", "call_type": "acompletion", "startTime": "2026-11-20 14:03:11.482911",
    "endTime": "2026-11-20 14:03:12.901004", "model": "gpt-4o-mini", "user": "",
    "usage": "{'completion_tokens': 212, 'prompt_tokens': 1830, 'total_tokens': 2042}",
    "metadata": "{'user_api_key_user_id': 'U0ALICE', 'user_api_key_alias': 'ml-team-key'}",
    "cost": "0.0004017",
}]


async def test_healthz_is_ok_when_the_database_answers(bot):
    status, body = await bot.get("/healthz")
    assert (status, body) == (200, {"status": "ok"})


@pytest.mark.parametrize("path", ["/nope", "/api/v1/limits/", "/api/v2/limits/U0ALICE", "/webhooks/usage/extra"])
async def test_unknown_route_is_404(bot, path):
    status, body = await bot.get(path, headers={"Authorization": f"Bearer {API_TOKEN}"})
    assert status == 404
    assert isinstance(body, dict) and "error" in body


async def test_wrong_method_is_405_json(bot):
    async with bot.http.post(bot.url + "/healthz") as resp:
        assert resp.status == 405
        assert "error" in await resp.json()


@pytest.mark.parametrize("url", UNREACHABLE)
async def test_healthz_is_503_json_when_the_database_does_not_answer(make_bot, url):
    bot = await make_bot(database_url=url)
    started = time.monotonic()
    status, body = await bot.get("/healthz")
    assert status == 503
    assert isinstance(body, dict) and body.get("status") != "ok"
    assert time.monotonic() - started < 5  # a load balancer's probe must not hang


@pytest.mark.parametrize("url", UNREACHABLE)
async def test_webhook_answers_503_json_and_the_process_keeps_serving(make_bot, url):
    bot = await make_bot(database_url=url)
    for payload in ([event(1)], [event(2, user="key_live_abc")], [event(3, user="someone@acme.com")]):
        status, body = await bot.post_usage(payload)
        assert status == 503, body
        assert isinstance(body, dict) and set(body) == {"error"}
        assert "Traceback" not in body["error"]
    status, body = await bot.post_usage(LITELLM_V1, bearer=WEBHOOK_TOKEN, path="/webhooks/litellm")
    assert status == 503 and set(body) == {"error"}, body
    status, body = await bot.get("/api/v1/limits/U0ALICE", headers={"Authorization": f"Bearer {API_TOKEN}"})
    assert status == 503 and isinstance(body, dict) and "error" in body
    # still serving
    status, body = await bot.get("/healthz")
    assert status == 503 and isinstance(body, dict)
    assert (await bot.get("/nope"))[0] == 404


async def test_an_unreachable_database_does_not_affect_another_bot(make_bot, bot):
    down = await make_bot(database_url=UNREACHABLE[0])
    assert (await down.get("/healthz"))[0] == 503
    assert await bot.get("/healthz") == (200, {"status": "ok"})
    status, body = await bot.post_usage([event(1)])
    assert (status, body["accepted"]) == (200, 1)
