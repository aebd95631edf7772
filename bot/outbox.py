"""Durable outgoing deliveries: `limit.changed` events to LIMITS_WEBHOOK_URL (SPEC 7.4).

A row is written by `enqueue` inside the transaction that changes the limit, so an
event exists if and only if the decision committed. Delivery happens later, from any
process:

- a row is taken with a lease: a conditional UPDATE of `locked_until` that only one
  process can win, so two processes never post the same row at the same time; a
  process that dies mid-delivery loses its lease after `LEASE` and another takes over;
- the body is signed with Standard Webhooks (`webhook-id` = the row's `msg_id`, stable
  across retries so receivers can de-duplicate; `webhook-timestamp` is the wall clock,
  which is what receivers check their 5-minute tolerance against);
- a 2xx answer sets `delivered_at`; anything else (another status, a timeout, a refused
  connection) schedules the next attempt with exponential backoff (15 s, 30 s, 1 min, …,
  at most 1 h apart) and keeps retrying until accepted, across restarts;
- a decision kicks delivery at once (`kick`); the scheduler job retries every 30 s.

The lease and the backoff are storage/leases.py's (shared with digest runs); the
`limit.changed` body is built here, for approvals and `/tokens admin set-budget` alike.

When LIMITS_WEBHOOK_URL is unset nothing is enqueued (decision: there is nobody to tell;
events for decisions taken while it was unset are not sent later).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import aiohttp
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.ext.asyncio import AsyncSession
from standardwebhooks import Webhook

from bot.clock import utcnow
from bot.scheduler import JobSpec
from bot.services import Services
from bot.views.format import json_money, json_scope
from storage import outbox_repo
from storage.models import OutboxMessage

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=60)
TIMEOUT_SECONDS = 10
BATCH = 50


def backoff(attempts: int) -> timedelta:
    """Delay before the next try after `attempts` failed ones: 15 s doubling, capped at 1 h."""
    return outbox_repo.ROWS.backoff(attempts)


def limit_changed_payload(*, user: str, period: str, limit: Decimal, previous: Decimal, scope: str,
                          request_id: int | None, decided_by: str, now: datetime) -> dict[str, Any]:
    """The `limit.changed` event; `request_id` is None when an admin set the budget directly."""
    return {
        "type": "limit.changed",
        "timestamp": now.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "data": {
            "user": user,
            "period": period,
            "limit_usd": json_money(limit),
            "previous_limit_usd": json_money(previous),
            "scope": json_scope(scope),
            "request_id": request_id,
            "decided_by": decided_by,
        },
    }


def enqueue(session: AsyncSession, *, msg_id: str, kind: str, payload: dict[str, Any], now: datetime) -> None:
    """Add a delivery to the caller's transaction (it commits or rolls back with the decision)."""
    outbox_repo.enqueue(session, msg_id=msg_id, kind=kind, payload=payload, now=now)


def body_of(message: OutboxMessage | dict[str, Any]) -> bytes:
    payload = message.payload if isinstance(message, OutboxMessage) else message
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


def signed_headers(secret: str, msg_id: str, body: bytes, moment: datetime | None = None) -> dict[str, str]:
    moment = (moment or utcnow()).astimezone(UTC)
    signature = Webhook(secret).sign(msg_id=msg_id, timestamp=moment, data=body.decode())
    return {
        "Content-Type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": signature,
        "User-Agent": "tokenbot",
    }


async def _claim(services: Services, row_id: int, now: datetime) -> bool:
    async with services.db.write() as session:
        return await outbox_repo.take(session, row_id, now, LEASE)


async def _post(services: Services, http: aiohttp.ClientSession, message: OutboxMessage) -> str | None:
    """POST one event; None when accepted, else the reason it was not."""
    settings = services.settings
    body = body_of(message)
    headers = signed_headers(settings.limits_webhook_secret or "", message.msg_id, body)
    try:
        async with http.post(settings.limits_webhook_url, data=body, headers=headers) as response:
            if 200 <= response.status < 300:
                return None
            text = (await response.text())[:200]
            return f"HTTP {response.status}: {text}"
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        return f"{type(exc).__name__}: {exc}"[:300]


async def deliver_due(services: Services) -> int:
    """Deliver every due row this process can lease; returns how many were accepted."""
    settings = services.settings
    if not settings.limits_webhook_url or not settings.limits_webhook_secret:
        return 0
    delivered = 0
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_SECONDS)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        while True:
            now = services.clock.now()
            async with services.db.session() as session:
                rows = await outbox_repo.due(session, now, BATCH)
            if not rows:
                return delivered
            progressed = False
            for message in rows:
                if not await _claim(services, message.id, now):
                    continue  # another process has it
                progressed = True
                error = await _post(services, http, message)
                if error is None:
                    delivered += 1
                else:
                    log.warning("limit.changed %s not accepted (attempt %d): %s", message.msg_id,
                                message.attempts + 1, error)
                async with services.db.write() as session:
                    await outbox_repo.settle(session, message.id, now=services.clock.now(),
                                             attempts=message.attempts + 1, error=error)
            if not progressed or len(rows) < BATCH:
                return delivered


def kick(services: Services) -> None:
    """Try delivery now, in the background (after a decision)."""
    if services.settings.limits_webhook_url:
        services.background.spawn(deliver_due(services), name="outbox-kick")


def outbox_jobs(services: Services) -> list[JobSpec]:
    """Retry deliveries every 30 s (only when there is somewhere to deliver to)."""
    if not services.settings.limits_webhook_url:
        return []
    return [JobSpec("outbox-deliver", deliver_due, IntervalTrigger(seconds=30))]
