"""The process's long-lived objects, built once and handed to handlers and jobs."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from dataclasses import dataclass, field

from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

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
    instance_id: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    metrics: Metrics = field(default_factory=Metrics)

    async def close(self, *, grace_seconds: float = 5.0) -> None:
        """Let background work (alert DMs, message updates) finish briefly, then release everything."""
        from bot.background import background

        holder = background(self)
        try:
            await asyncio.wait_for(holder.drain(), grace_seconds)
        except TimeoutError:
            for task in list(holder.tasks):
                task.cancel()
            await asyncio.gather(*holder.tasks, return_exceptions=True)
            log.warning("stopped %d background tasks at shutdown", len(holder.tasks))
        await self.identities.close()
        await self.ingestor.writer.aclose()  # acknowledged batches are written and folded first
        await self.db.dispose()


def build_services(settings: Settings, *, clock: Clock | None = None, with_slack: bool = True) -> Services:
    clock = clock or Clock(settings.timezone)
    db = Database(settings.database_url)
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
    )
    if isinstance(slack, MeteredWebClient):
        slack.metrics = services.metrics
    services.ingestor.observers.append(services.metrics.observe_ingest)
    services.ingestor.writer.on_commit = services.metrics.observe_commit
    from bot.alerts import install as install_budget_alerts  # budget alerts after each stored batch

    install_budget_alerts(services)
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
