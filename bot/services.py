"""The process's long-lived objects, built once and handed to handlers and jobs.

`Services` declares everything a process holds: settings, clock, database, Slack client,
the ingest path, the approver finder, the process metrics, the one owner of background work, the scheduler
once started, and the lists the composition root (bot/wiring.py) fills: the `/tokens`
words and the App Home sections. `create_services` builds the objects only; a working
process is built by `bot.wiring.build_services`, which also fills those lists and
installs the ingest hooks.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.approvers import ApproverFinder
from bot.background import Background
from bot.clock import Clock
from bot.config import Settings
from bot.identities import IdentityResolver
from bot.metrics import MeteredWebClient, Metrics
from bot.pricing import Pricer
from bot.usage import UsageIngestor
from storage.db import Database

log = logging.getLogger(__name__)


def slack_client(settings: Settings) -> AsyncWebClient:
    """Slack's Web API client: base URL from SLACK_API_URL, retrying 429s and 5xx."""
    return MeteredWebClient(
        token=settings.slack_bot_token,
        base_url=settings.slack_api_url,
        timeout=10,
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(max_retry_count=2),
            AsyncRateLimitErrorRetryHandler(max_retry_count=3),
            AsyncServerErrorRetryHandler(max_retry_count=2),
        ],
    )


@dataclass
class Services:
    settings: Settings
    clock: Clock
    db: Database
    pricer: Pricer
    identities: IdentityResolver
    ingestor: UsageIngestor
    slack: AsyncWebClient | None
    approvers: ApproverFinder
    instance_id: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    metrics: Metrics = field(default_factory=Metrics)
    background: Background = field(default_factory=Background)
    scheduler: AsyncIOScheduler | None = None  # set while `tokenbot serve` runs its jobs
    # word ("request", "admin audit") -> async function of a bot.commands.Invocation
    tokens_words: dict[str, Callable[[Any], Awaitable[Any]]] = field(default_factory=dict)
    # async (services, user_id) -> Block Kit blocks, shown under the card in the App Home
    home_sections: list[Callable[[Services, str], Awaitable[list[dict[str, Any]]]]] = field(default_factory=list)
    # async (services) -> lines for `tokenbot sources status` beside the sources (enforcers add theirs)
    status_lines: list[Callable[[Services], Awaitable[list[str]]]] = field(default_factory=list)
    teams: Any = None  # bot.teams.assign.TeamDirectory, set by bot/wiring.py

    async def close(self, *, grace_seconds: float = 5.0) -> None:
        """Let background work (alert DMs, message updates, listeners) finish briefly, then release
        everything the process holds: the email lookups, the ingest writer, the database."""
        await self.background.stop(grace_seconds)
        await self.identities.close()
        await self.ingestor.writer.aclose()  # acknowledged batches are written and folded first
        await self.db.dispose()


def create_services(settings: Settings, *, clock: Clock | None = None, with_slack: bool = True) -> Services:
    """The objects alone; `bot.wiring.build_services` makes them a working process."""
    clock = clock or Clock(settings.timezone)
    db = Database(settings.database_url, statement_timeout=settings.statement_timeout_seconds)
    slack = slack_client(settings) if with_slack and settings.slack_bot_token else None
    lookup = _email_lookup(slack) if slack is not None else None
    identities = IdentityResolver(db, settings, clock, lookup)
    pricer = Pricer(settings.model_prices)
    services = Services(
        settings=settings,
        clock=clock,
        db=db,
        pricer=pricer,
        identities=identities,
        ingestor=UsageIngestor(db, pricer, identities, clock, fold_interval=settings.fold_interval_seconds),
        slack=slack,
        approvers=ApproverFinder(settings, db, slack),
    )
    # the process's own figures (GET /metrics): Slack errors, ingest outcomes, ledger commits
    if isinstance(slack, MeteredWebClient):
        slack.metrics = services.metrics
    services.ingestor.observers.append(services.metrics.observe_ingest)
    services.ingestor.writer.on_commit = services.metrics.observe_commit
    return services


def _email_lookup(client: AsyncWebClient):
    async def lookup(email: str) -> str | None:
        try:
            response = await client.users_lookupByEmail(email=email)
        except SlackApiError as exc:
            if exc.response.get("error") == "users_not_found":
                return None
            raise
        return response["user"]["id"]

    return lookup
