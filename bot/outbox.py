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

When LIMITS_WEBHOOK_URL is unset nothing is enqueued (decision: there is nobody to tell;
events for decisions taken while it was unset are not sent later).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from standardwebhooks import Webhook

from bot.background import background
from bot.clock import utcnow
from bot.scheduler import JOB_FACTORIES, JobSpec
from bot.services import Services
from storage.models import OutboxMessage

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=60)
FIRST_RETRY = timedelta(seconds=15)
MAX_RETRY = timedelta(hours=1)
TIMEOUT_SECONDS = 10
BATCH = 50


def backoff(attempts: int) -> timedelta:
    """Delay before the next try after `attempts` failed ones: 15 s doubling, capped at 1 h."""
    return min(FIRST_RETRY * (2 ** max(attempts - 1, 0)), MAX_RETRY)


def enqueue(session: AsyncSession, *, msg_id: str, kind: str, payload: dict[str, Any], now: datetime) -> None:
    """Add a delivery to the caller's transaction (it commits or rolls back with the decision)."""
    session.add(OutboxMessage(msg_id=msg_id, kind=kind, payload=payload, created_at=now, next_attempt_at=now,
                              attempts=0))


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
        result = await session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.id == row_id,
                OutboxMessage.delivered_at.is_(None),
                OutboxMessage.next_attempt_at <= now,
                or_(OutboxMessage.locked_until.is_(None), OutboxMessage.locked_until < now),
            )
            .values(locked_until=now + LEASE)
            .execution_options(synchronize_session=False)
        )
        return result.rowcount == 1


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
                rows = list(await session.scalars(
                    select(OutboxMessage)
                    .where(
                        OutboxMessage.delivered_at.is_(None),
                        OutboxMessage.next_attempt_at <= now,
                        or_(OutboxMessage.locked_until.is_(None), OutboxMessage.locked_until < now),
                    )
                    .order_by(OutboxMessage.id)
                    .limit(BATCH)
                ))
            if not rows:
                return delivered
            progressed = False
            for message in rows:
                if not await _claim(services, message.id, now):
                    continue  # another process has it
                progressed = True
                error = await _post(services, http, message)
                done_at = services.clock.now()
                values: dict[str, Any] = {"attempts": OutboxMessage.attempts + 1, "locked_until": None}
                if error is None:
                    values.update(delivered_at=done_at, last_error=None)
                    delivered += 1
                else:
                    values.update(next_attempt_at=done_at + backoff(message.attempts + 1), last_error=error)
                    log.warning("limit.changed %s not accepted (attempt %d): %s", message.msg_id,
                                message.attempts + 1, error)
                async with services.db.write() as session:
                    await session.execute(
                        update(OutboxMessage)
                        .where(and_(OutboxMessage.id == message.id, OutboxMessage.delivered_at.is_(None)))
                        .values(**values)
                        .execution_options(synchronize_session=False)
                    )
            if not progressed or len(rows) < BATCH:
                return delivered


def kick(services: Services) -> None:
    """Try delivery now, in the background (after a decision)."""
    if services.settings.limits_webhook_url:
        background(services).spawn(deliver_due(services), name="outbox-kick")


def _jobs(services: Services) -> list[JobSpec]:
    if not services.settings.limits_webhook_url:
        return []
    return [JobSpec("outbox-deliver", deliver_due, IntervalTrigger(seconds=30))]


JOB_FACTORIES.append(_jobs)
