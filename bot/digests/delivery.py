"""Posting a digest exactly once: claim the run, build, post, mark posted, then the chart.

See the package docstring for the guarantees and the one window left. The claim is a
leased row (storage/leases.py, shared with the outbox): first come by INSERT, later a
claim whose lease ran out is taken over with a conditional UPDATE.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackRequestError

from bot.charts import render_png
from bot.digests.builder import build_chart, build_digest
from bot.digests.periods import Subscription
from bot.people import tell_admins
from bot.services import Services
from bot.views.digest import DigestView, details_blocks, details_fallback, digest_blocks, fallback_text
from bot.views.format import weekday
from storage import digests_repo
from storage.models import DigestRun

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=10)  # a claim's holder may take this long before others take over
POST_TIMEOUT = 240.0  # seconds for chat.postMessage incl. the client's retries; well inside LEASE
MAX_ATTEMPTS = 5
PERMANENT_ERRORS = frozenset({"not_in_channel", "channel_not_found", "is_archived"})

@dataclass(frozen=True)
class Outcome:
    channel: str
    period: str
    period_start: date
    status: str  # "posted" | "already-posted" | "busy" | "retrying" | "failed"
    detail: str = ""
    message_ts: str | None = None

    def describe(self) -> str:
        what = f"{self.period} digest for {self.channel} ({self.period_start})"
        return {
            "posted": f"posted the {what}: ts {self.message_ts}",
            "already-posted": f"the {what} was already posted",
            "busy": f"the {what} is being posted by another process",
            "retrying": f"could not post the {what} ({self.detail}); it will be retried",
            "failed": f"could not post the {what}: {self.detail}",
        }[self.status]


async def run_state(services: Services, channel: str, period: str, period_start: date) -> DigestRun | None:
    async with services.db.session() as session:
        return await digests_repo.get_run(session, (channel, period, period_start))


async def claim(
    services: Services, channel: str, period: str, period_start: date, *, retry_failed: bool = False
) -> tuple[str, int] | None:
    """Take the run: (claim token, attempt number), or None when someone else has it or it is done.

    First come by INSERT; later, a claim whose lease ran out (its holder died, or a transient
    failure's backoff is over) is taken over by a conditional UPDATE. `retry_failed` (the CLI)
    also takes a failed run.
    """
    now = services.clock.now()
    token = f"{services.instance_id[:80]}/{uuid.uuid4().hex[:12]}"
    key = (channel, period, period_start)
    async with services.db.write() as session:
        if await digests_repo.insert_claim(session, key, token, now, LEASE):
            return token, 1
    async with services.db.write() as session:
        attempt = await digests_repo.take_over(session, key, token, now, LEASE, retry_failed=retry_failed)
    return (token, attempt) if attempt is not None else None


async def update_mine(services: Services, channel: str, period: str, period_start: date, token: str,
                      **values: Any) -> bool:
    async with services.db.write() as session:
        return await digests_repo.update_held(session, (channel, period, period_start), token, **values)


def backoff(attempt: int) -> timedelta:
    """Wait before attempt `attempt + 1`: 2, 4, 8, 16 minutes (the sweep runs every 5)."""
    return digests_repo.RUNS.backoff(attempt)


async def deliver(
    services: Services, sub: Subscription, first: date, last: date, *, retry_failed: bool = False
) -> Outcome:
    """Claim, build, post, mark posted, then add the chart in the thread. Safe to call any number
    of times from any number of processes: the run is posted once."""
    key = (sub.channel, sub.period, first)

    def outcome(status: str, detail: str = "", ts: str | None = None) -> Outcome:
        return Outcome(sub.channel, sub.period, first, status, detail, ts)

    if services.slack is None:  # nothing claimed: a process without a token must not block the real one
        return outcome("failed", "SLACK_BOT_TOKEN is not set")
    existing = await run_state(services, *key)
    if existing is not None:
        if existing.status == "posted":
            return outcome("already-posted", ts=existing.message_ts)
        if existing.status == "failed" and not retry_failed:
            return outcome("failed", existing.last_error or "")
        if existing.status == "claimed" and existing.lease_until > services.clock.now():
            return outcome("busy")
    claimed = await claim(services, *key, retry_failed=retry_failed)
    if claimed is None:
        latest = await run_state(services, *key)
        status = latest.status if latest is not None else "claimed"
        if status == "posted":
            return outcome("already-posted", ts=latest.message_ts)
        if status == "failed":
            return outcome("failed", latest.last_error or "")
        return outcome("busy")
    token, attempt = claimed

    try:
        view = await build_digest(services, sub, first, last)
        text, blocks = fallback_text(view), digest_blocks(view)
    except Exception as exc:  # the database or a bug: treat like a transient failure, with backoff
        log.exception("building the %s digest for %s failed", sub.period, sub.channel)
        return await _transient(services, sub, first, token, attempt, f"build failed: {exc!r}"[:500], outcome)

    now = services.clock.now()
    if not await update_mine(services, *key, token, lease_until=now + LEASE):
        return outcome("busy")  # our lease ran out while building and another process has it
    try:
        async with asyncio.timeout(POST_TIMEOUT):
            response = await services.slack.chat_postMessage(
                channel=sub.channel, text=text, blocks=blocks, unfurl_links=False, unfurl_media=False,
                metadata={"event_type": "tokenbot_digest", "event_payload": {
                    "channel": sub.channel, "period": sub.period, "period_start": first.isoformat()}},
            )
    except SlackApiError as exc:
        error = str(exc.response.get("error") or f"HTTP {exc.response.status_code}")
        if error in PERMANENT_ERRORS:
            await _give_up(services, sub, first, token, error, report=True)
            return outcome("failed", error)
        return await _transient(services, sub, first, token, attempt, error, outcome)
    except (TimeoutError, aiohttp.ClientError, SlackRequestError, OSError) as exc:
        return await _transient(services, sub, first, token, attempt, f"{type(exc).__name__}: {exc}"[:500], outcome)

    ts = response.get("ts")
    await _mark_posted(services, key, token, ts)
    log.info("posted the %s digest for %s (%s), ts %s", sub.period, sub.channel, first, ts)
    if not view.quiet:
        await post_details(services, sub, view, ts)
        await post_chart(services, sub, view, ts)
    return outcome("posted", ts=ts)


async def _mark_posted(services: Services, key: tuple[str, str, date], token: str, ts: str | None) -> None:
    """Record the post. The database is retried a few times: until this commits, a takeover after the
    lease would post the digest again (the one window left; see the module docstring)."""
    for attempt in range(1, 4):
        try:
            now = services.clock.now()
            if not await update_mine(services, *key, token, status="posted", posted_at=now, message_ts=ts,
                                      lease_until=now, last_error=None):
                log.error("digest %s %s %s was posted (ts %s) but its claim was lost before marking it", *key, ts)
            return
        except Exception:
            if attempt == 3:
                raise
            log.warning("marking digest %s %s %s posted failed; retrying", *key, exc_info=True)
            await asyncio.sleep(attempt)


async def _transient(services: Services, sub: Subscription, first: date, token: str, attempt: int, error: str,
                     outcome: Callable[..., Outcome]) -> Outcome:
    if attempt >= MAX_ATTEMPTS:
        detail = f"gave up after {attempt} attempts; last error: {error}"
        log.error("digest %s %s %s: %s", sub.channel, sub.period, first, detail)
        await _give_up(services, sub, first, token, detail, report=True)
        return outcome("failed", detail)
    wait = backoff(attempt)
    log.warning("digest %s %s %s: attempt %d of %d failed (%s); retrying in %s",
                sub.channel, sub.period, first, attempt, MAX_ATTEMPTS, error, wait)
    await update_mine(services, sub.channel, sub.period, first, token,
                       lease_until=services.clock.now() + wait, last_error=error)
    return outcome("retrying", error)


async def _give_up(services: Services, sub: Subscription, first: date, token: str, error: str, *,
                   report: bool) -> None:
    """Mark the run failed; the process whose conditional UPDATE does it tells the admins, once."""
    changed = await update_mine(services, sub.channel, sub.period, first, token, status="failed",
                                 last_error=error, lease_until=services.clock.now())
    if changed and report:
        await report_to_admins(services, sub, first, error)


ADVICE = {
    "not_in_channel": "Invite the bot to the channel (`/invite @tokenbot`); the next digest will post.",
    "channel_not_found": "The channel is gone or private and the bot is not in it: invite the bot, or move "
                         "the digest with `/tokens admin digest #channel HH:MM`.",
    "is_archived": "The channel is archived: unarchive it, or move the digest with "
                   "`/tokens admin digest #channel HH:MM`.",
}


def report_to_admins_text(sub: Subscription, first: date, error: str) -> str:
    code = error if error in ADVICE else None
    what = "weekly" if sub.period == "week" else "daily"
    return (f":warning: The {what} AI spend digest for <#{sub.channel}> ({weekday(first)}) could not be "
            f"posted: `{error}`. " + (ADVICE[code] if code else "Slack kept failing; the next digest will try "
                                      "again. Check the logs of `tokenbot serve`."))


async def report_to_admins(services: Services, sub: Subscription, first: date, error: str) -> None:
    await tell_admins(services, report_to_admins_text(sub, first, error), about=f"the digest for {sub.channel}")


async def post_details(services: Services, sub: Subscription, view: DigestView, ts: str | None) -> bool:
    """The digest's details (the rest of the top N, models, budgets, unusual days) as a reply in its
    thread, one click away from the short channel message; a failure is logged, never raised."""
    try:
        await services.slack.chat_postMessage(channel=sub.channel, thread_ts=ts, text=details_fallback(view),
                                              blocks=details_blocks(view), unfurl_links=False, unfurl_media=False)
        return True
    except Exception:
        log.warning("the details of the %s digest in %s could not be posted; the digest stands",
                    sub.period, sub.channel, exc_info=True)
        return False


async def post_chart(services: Services, sub: Subscription, view: DigestView, ts: str | None) -> bool:
    """Upload the chart (30 days, or 12 weeks for a weekly digest) into the digest's thread, its alt
    text saying the takeaway; a failure is logged, never raised."""
    try:
        chart = await build_chart(services, sub, view.last)
        if chart.total <= 0:
            return False
        png = await asyncio.to_thread(render_png, chart)
        await services.slack.files_upload_v2(
            channel=sub.channel, thread_ts=ts, content=png, filename=f"ai-spend-{view.last.isoformat()}.png",
            title=chart.title, alt_txt=chart.alt_text(),
        )
        return True
    except Exception:
        log.warning("the chart for the %s digest in %s could not be posted; the text stands",
                    sub.period, sub.channel, exc_info=True)
        return False
