"""Operational metrics (SPEC 4, 14), served by GET /metrics in the Prometheus text format.

One registry per process (per `Services`), so tests that run several bots in one Python
process keep their figures apart. Every counter SPEC 4 lists is defined here; the ones whose
subsystem does not exist yet (provider pulls, enforcers, the breaker) are defined for their
modules to increment:
- `events` (source, outcome: accepted | duplicate | rejected | skipped)  <- bot.usage observers
- `request_seconds` (method, route, status)                              <- bot.app middleware
- `ingest_batch_events` (source)                                          <- bot.usage observers
- `source_poll_lag_seconds` / `source_poll_errors` (source)              <- provider pulls
- `outbox_backlog` / `outbox_oldest_age_seconds`                         <- read at scrape time
- `enforcer_push_failures` (enforcer)                                     <- enforcers
- `breaker_trips`                                                         <- the breaker
- `slack_api_errors` (method, error)                                      <- `MeteredWebClient`
and, for the ledger: commit groups, rollup folds, fold failures and the fold's lag.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import func, select

from storage import enforce_repo
from storage.models import OutboxMessage

PREFIX = "tokenbot"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 5, 10, 50, 100, 500, 1000, 2000, 5000, 10_000, 20_000)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.events = Counter(f"{PREFIX}_events", "Usage events by source and outcome",
                              ["source", "outcome"], registry=r)
        self.request_seconds = Histogram(f"{PREFIX}_request_seconds", "HTTP request latency",
                                         ["method", "route", "status"], buckets=LATENCY_BUCKETS, registry=r)
        self.ingest_batch_events = Histogram(f"{PREFIX}_ingest_batch_events", "Events per ingest request",
                                             ["source"], buckets=BATCH_BUCKETS, registry=r)
        self.commit_group_events = Histogram(f"{PREFIX}_ledger_commit_group_events",
                                             "Events per ledger commit (requests share one)",
                                             buckets=BATCH_BUCKETS, registry=r)
        self.source_poll_lag_seconds = Gauge(f"{PREFIX}_source_poll_lag_seconds",
                                             "How far a provider source's data trails now", ["source"], registry=r)
        self.source_poll_errors = Counter(f"{PREFIX}_source_poll_errors", "Failed provider polls",
                                          ["source"], registry=r)
        self.outbox_backlog = Gauge(f"{PREFIX}_outbox_backlog", "Outbox messages not yet delivered", registry=r)
        self.outbox_oldest_age_seconds = Gauge(f"{PREFIX}_outbox_oldest_age_seconds",
                                               "Age of the oldest undelivered outbox message", registry=r)
        self.enforcer_push_failures = Counter(f"{PREFIX}_enforcer_push_failures",
                                              "Limit pushes an enforcer refused or missed", ["enforcer"], registry=r)
        self.enforcer_pushes = Counter(f"{PREFIX}_enforcer_pushes", "Limit pushes an enforcer took",
                                       ["enforcer"], registry=r)
        self.enforce_backlog = Gauge(f"{PREFIX}_enforce_backlog", "Subjects waiting for an enforcer push",
                                     registry=r)
        self.breaker_trips = Counter(f"{PREFIX}_breaker_trips", "Runaway breaker trips", registry=r)
        self.slack_api_errors = Counter(f"{PREFIX}_slack_api_errors", "Slack Web API calls that failed",
                                        ["method", "error"], registry=r)
        self.rollup_folds = Counter(f"{PREFIX}_rollup_folds", "Rollup fold passes", registry=r)
        self.rollup_fold_failures = Counter(f"{PREFIX}_rollup_fold_failures",
                                            "Rollup folds that failed (retried)", registry=r)

    # -- wiring ---------------------------------------------------------------------------------
    def observe_ingest(self, source: str, result: Any) -> None:
        """An ingest observer (bot.usage.UsageIngestor.observers)."""
        events = self.events
        if result.accepted:
            events.labels(source, "accepted").inc(result.accepted)
        if result.duplicates:
            events.labels(source, "duplicate").inc(result.duplicates)
        if result.rejected:
            events.labels(source, "rejected").inc(len(result.rejected))
        skipped = getattr(result, "skipped", 0)
        skipped = len(skipped) if isinstance(skipped, list) else skipped
        if skipped:
            events.labels(source, "skipped").inc(skipped)
        size = result.accepted + result.duplicates + len(result.rejected) + (skipped or 0)
        self.ingest_batch_events.labels(source).observe(size)

    def observe_commit(self, events: int, requests: int) -> None:
        self.commit_group_events.observe(events)

    async def render(self, services: Any) -> tuple[bytes, str]:
        """The exposition text, with the gauges read from the database now."""
        async with services.db.session() as session:
            count, oldest = (await session.execute(
                select(func.count(), func.min(OutboxMessage.created_at)).where(OutboxMessage.delivered_at.is_(None))
            )).one()
        self.outbox_backlog.set(count or 0)
        age = (services.clock.now() - oldest).total_seconds() if oldest is not None else 0.0
        self.outbox_oldest_age_seconds.set(max(age, 0.0))
        async with services.db.session() as session:
            self.enforce_backlog.set((await enforce_repo.backlog(session))[0])
        writer = services.ingestor.writer
        self._sync_counter(self.rollup_folds, writer.folds)
        self._sync_counter(self.rollup_fold_failures, writer.fold_failures)
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    @staticmethod
    def _sync_counter(counter: Counter, total: int) -> None:
        # the writer keeps plain integers (storage must not import bot): move the counter up to them
        seen = counter._value.get()
        if total > seen:
            counter.inc(total - seen)


class MeteredWebClient(AsyncWebClient):
    """Slack's Web API client, counting every failed call by method and error."""

    metrics: Metrics | None = None

    async def api_call(self, api_method: str, **kwargs):
        try:
            return await super().api_call(api_method, **kwargs)
        except SlackApiError as exc:
            if self.metrics is not None:
                error = exc.response.get("error") if exc.response is not None else None
                self.metrics.slack_api_errors.labels(api_method, str(error or "unknown")).inc()
            raise
        except Exception as exc:  # network failures after the retries
            if self.metrics is not None:
                self.metrics.slack_api_errors.labels(api_method, type(exc).__name__).inc()
            raise
