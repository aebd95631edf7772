"""The test harness every test reuses.

- The database: SQLite by default; PostgreSQL when TOKENBOT_TEST_DATABASE_URL is a
  postgresql URL (.ci/run runs the suite both ways). Migrations run once per session;
  each test starts from empty tables.
- `fake_slack`: a strict fake Slack Web API on a real port (tests/fakes/slack_api.py).
- `bot`: the real aiohttp application served on a free port, talking to that fake Slack
  and the real database; helpers sign requests exactly as Slack and webhook senders do.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import orjson
import pytest
import pytest_asyncio
from aiohttp import web
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bot.app import build_web_app
from bot.clock import Clock
from bot.config import Settings
from bot.services import Services
from bot.wiring import build_services
from storage.db import upgrade
from storage.models import Base
from tests.fakes.slack_api import FakeSlack
from tests.support.signing import (
    slack_signed_headers,
    slash_command_body,
    standard_webhook_headers,
)

WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"tokenbot-test-webhook-secret-32b").decode()
WEBHOOK_TOKEN = "test-bearer-token-for-litellm"
API_TOKEN = "test-api-token"
SIGNING_SECRET = "test-slack-signing-secret"
BOT_TOKEN = "xoxb-test-token"

TEST_DATABASE_URL = os.environ.get("TOKENBOT_TEST_DATABASE_URL", "sqlite")
IS_POSTGRES = TEST_DATABASE_URL.startswith("postgresql")


def pytest_report_header(config) -> str:
    return f"tokenbot test database: {'PostgreSQL ' + TEST_DATABASE_URL if IS_POSTGRES else 'SQLite'}"


@pytest.fixture(scope="session")
def _migrated_template(tmp_path_factory) -> str:
    """Migrate once per session: a template SQLite file, or the PostgreSQL test database."""
    if IS_POSTGRES:
        async def reset() -> None:
            engine = create_async_engine(TEST_DATABASE_URL)
            async with engine.begin() as conn:
                await conn.execute(text("DROP SCHEMA public CASCADE"))
                await conn.execute(text("CREATE SCHEMA public"))
            await engine.dispose()

        asyncio.run(reset())
        upgrade(TEST_DATABASE_URL)
        return TEST_DATABASE_URL
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return str(path)


@pytest.fixture
def database_url(_migrated_template, tmp_path) -> str:
    if IS_POSTGRES:
        async def truncate() -> None:
            engine = create_async_engine(TEST_DATABASE_URL)
            names = ", ".join(t.name for t in Base.metadata.sorted_tables)
            async with engine.begin() as conn:
                await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
            await engine.dispose()

        asyncio.run(truncate())
        return TEST_DATABASE_URL
    path = tmp_path / "tokenbot.db"
    shutil.copyfile(_migrated_template, path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
def settings(database_url) -> Settings:
    return Settings(
        slack_bot_token=BOT_TOKEN,
        slack_signing_secret=SIGNING_SECRET,
        database_url=database_url,
        usage_webhook_secret=WEBHOOK_SECRET,
        usage_webhook_token=WEBHOOK_TOKEN,
        api_token=API_TOKEN,
        timezone=ZoneInfo("America/New_York"),
    )


@pytest_asyncio.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        yield fake


@dataclass
class BotUnderTest:
    """The served bot plus helpers that talk to it the way real senders do."""

    url: str
    services: Services
    http: aiohttp.ClientSession
    fake_slack: FakeSlack | None

    @property
    def settings(self) -> Settings:
        return self.services.settings

    async def post_usage(
        self,
        payload: Any,
        *,
        path: str = "/webhooks/usage",
        sign: bool = True,
        bearer: str | None = None,
        content_type: str = "application/json",
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        body = raw if raw is not None else orjson.dumps(payload, default=str)
        sent = {"Content-Type": content_type}
        if bearer is not None:
            sent["Authorization"] = f"Bearer {bearer}"
        elif sign:
            from tests.conftest import WEBHOOK_SECRET

            sent.update(standard_webhook_headers(body, self.settings.usage_webhook_secret or WEBHOOK_SECRET))
            sent["Content-Type"] = content_type
        sent.update(headers or {})
        async with self.http.post(self.url + path, data=body, headers=sent) as resp:
            answer = resp.status, await _json_or_text(resp)
        # rollups trail the events by up to a second (storage/fold.py): fold now, so what a test
        # reads next reflects what it sent
        if answer[0] == 200:
            await self.services.identities.settle_links()  # links made meanwhile are applied in the background
            await self.services.ingestor.writer.settle()
        return answer

    async def get(self, path: str, *, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        async with self.http.get(self.url + path, headers=headers or {}) as resp:
            return resp.status, await _json_or_text(resp)

    async def slack_post(self, body: bytes, *, timestamp: int | None = None,
                         headers: dict[str, str] | None = None) -> tuple[int, Any]:
        sent = slack_signed_headers(body, self.settings.slack_signing_secret, timestamp=timestamp)
        sent.update(headers or {})
        async with self.http.post(self.url + "/slack/events", data=body, headers=sent) as resp:
            return resp.status, await _json_or_text(resp)

    async def command(self, text: str = "me", *, user_id: str = "U0REQUESTER", **fields) -> tuple[int, Any]:
        response_url = self.fake_slack.response_url(f"cmd-{user_id}") if self.fake_slack else None
        body = slash_command_body(text=text, user_id=user_id, response_url=response_url, **fields)
        return await self.slack_post(body)

    async def sql(self, query: str, **params) -> list[tuple]:
        async with self.services.db.session() as session:
            return [tuple(r) for r in (await session.execute(text(query), params)).all()]


async def _json_or_text(resp: aiohttp.ClientResponse) -> Any:
    body = await resp.read()
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode(errors="replace")


async def serve_bot(
    settings: Settings, fake: FakeSlack | None, *, clock: Clock | None = None
) -> tuple[web.AppRunner, BotUnderTest]:
    if fake is not None:
        settings = replace(settings, slack_api_url=fake.api_url)
    services = build_services(settings, clock=clock)
    app = build_web_app(services)
    runner = web.AppRunner(app, access_log=None, lingering_time=0.5, auto_decompress=False)  # as `tokenbot serve`
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    http = aiohttp.ClientSession()
    return runner, BotUnderTest(f"http://127.0.0.1:{port}", services, http, fake)


@pytest_asyncio.fixture
async def make_bot(settings, fake_slack) -> AsyncIterator[Callable[..., Any]]:
    """Start (more) bots with adjusted settings: `await make_bot(usage_webhook_token=None)`."""
    started: list[tuple[web.AppRunner, BotUnderTest]] = []

    async def start(*, clock: Clock | None = None, **overrides) -> BotUnderTest:
        runner, bot = await serve_bot(replace(settings, **overrides), fake_slack, clock=clock)
        started.append((runner, bot))
        return bot

    yield start
    for runner, bot in reversed(started):
        await bot.http.close()
        await runner.cleanup()


@pytest_asyncio.fixture
async def bot(make_bot) -> BotUnderTest:
    return await make_bot()


def event(n: int | str = 1, **fields) -> dict[str, Any]:
    """A valid native usage event; override any field."""
    base = {
        "id": f"evt-{n}",
        "timestamp": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "user": "U0ALICE",
        "model": "gpt-4o",
        "input_tokens": 1000,
        "output_tokens": 500,
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
