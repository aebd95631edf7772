"""Channel digests: what a digest says, and posting it exactly once.

Subscriptions are the `[[digests]]` of the config plus the rows of `digest_subscriptions`
(`/tokens admin digest`). A stored row wins over a config entry for the same channel and
period: the admin command is the later, explicit act.

When: a "day" digest posted on local day D covers D-1; a "week" digest is posted on
Mondays and covers the previous Monday to Sunday. Its moment is the subscription's local
time in the organisation's zone (`clock.at_local`); a time that does not exist that day
(DST gap, e.g. 02:30 on the spring-forward Sunday) falls one hour later on the wall clock,
and an ambiguous time (fall back) means its first occurrence. Each subscription has a cron
job for punctuality, and a sweep (every 5 minutes and once at start-up) posts whatever is
due today and not posted yet: digests missed while the bot was down, skipped by a DST gap,
or added with `/tokens admin digest` since the process started (the sweep also adds their
cron jobs). Same day only: yesterday's missed digest is never posted today.

Exactly once: `digest_runs` (channel, period, period_start) is the key. A run is claimed
by INSERT (a conflict means someone else has it), built, posted, then marked `posted`
with the message ts, each step a conditional UPDATE on our claim token. A claim holds a
lease: a process that dies between claim and post leaves a claim another process (or the
restarted one) takes over once the lease has run out. The remaining window, which no
database can close without Slack taking part, is a process that dies after Slack accepted
the message and before the `posted` mark commits: that digest is posted again when the
lease expires. The post itself is bounded by POST_TIMEOUT, well inside the lease, so a slow
holder never overlaps with a taker-over. Each message carries Slack message metadata naming
its run, for a future check of the channel history before a takeover.

Failures: a transient error (5xx, 429 after the client's own retries, `ratelimited`,
timeouts, connection errors, or anything unexpected) keeps the claim with a later lease
(backoff 2, 4, 8, 16 minutes) and is logged; the sweep retries it; after MAX_ATTEMPTS the
run is marked failed and admins are told. A permanent error (not_in_channel,
channel_not_found, is_archived) marks the run failed at once. The transition to `failed`
is the once-only guard for the admin DMs. (Issue 4 listed "channel archived" among the
retried failures; the team's decision treats `is_archived` as permanent, since retrying
cannot help until a person acts.)

The chart (bot/charts.py) goes into the digest's thread after the text is marked posted;
a chart that fails is logged and the digest stands without it.

Everything is read from the rollups (usage_daily, usage_daily_model, usage_monthly),
never from raw events.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import aiohttp
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from slack_sdk.errors import SlackApiError, SlackRequestError
from sqlalchemy import and_, or_, select, update

from bot.budgets import budget_statuses
from bot.charts import OTHERS, ChartSeries, DailyChart, render_png
from bot.clock import month_key, month_last_day
from bot.config import ConfigError, DigestConfig, Settings, parse_hhmm
from bot.identities import is_slack_user_id
from bot.people import display_names, fetch_person
from bot.scheduler import _SCHEDULER_KEY, JOB_FACTORIES, JobSpec, _guarded
from bot.services import Services, build_services
from bot.views.digest import (
    AnomalyRow,
    BudgetRow,
    DigestView,
    LeaderRow,
    ModelRow,
    UnlinkedRow,
    UnpricedRow,
    digest_blocks,
    digest_text,
    fallback_text,
    period_title,
)
from storage import queries
from storage.models import DigestRun, DigestSubscription
from storage.usage import dialect_insert

log = logging.getLogger(__name__)

ZERO = Decimal(0)
ANOMALY_FACTOR = Decimal(3)  # a day above 3x the person's trailing median...
ANOMALY_MIN_USD = Decimal(5)  # ...and at least $5, so pennies never alarm anyone
ANOMALY_HISTORY_DAYS = 14  # calendar days before the day; days without usage count as $0
BUDGET_WATCH_SHARE = Decimal("0.8")
MODELS_SHOWN = 5
CHART_DAYS = 30
CHART_SERIES = 5  # people or models stacked by name; the rest is "others"
NAME_LIMIT = 15  # per-person rows we look names up for, beyond the leaderboard

LEASE = timedelta(minutes=10)  # a claim's holder may take this long before others take over
POST_TIMEOUT = 240.0  # seconds for chat.postMessage incl. the client's retries; well inside LEASE
MAX_ATTEMPTS = 5
SWEEP_EVERY = timedelta(minutes=5)
PERMANENT_ERRORS = frozenset({"not_in_channel", "channel_not_found", "is_archived"})

RUNS = DigestRun.__table__


# -- subscriptions and periods ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Subscription:
    channel: str
    at: time  # local time in the organisation's zone
    period: str = "day"  # "day" | "week"
    top: int = 10
    leaderboard: str | None = None  # privacy override; None: settings.leaderboard
    source: str = "config"  # "config" | "admin" | "cli" | "demo"

    @property
    def job_id(self) -> str:
        return f"digest:{self.channel}:{self.period}"

    @property
    def job_name(self) -> str:
        return f"{self.job_id}@{self.at:%H:%M}"

    def privacy(self, settings: Settings) -> str:
        return self.leaderboard or settings.leaderboard

    @classmethod
    def from_config(cls, entry: DigestConfig) -> Subscription:
        return cls(entry.channel, entry.time, entry.period, entry.top, entry.leaderboard, "config")


async def load_subscriptions(services: Services) -> list[Subscription]:
    """Config `[[digests]]` plus stored rows (a stored row replaces the config entry of its channel+period)."""
    subs = {(d.channel, d.period): Subscription.from_config(d) for d in services.settings.digests}
    async with services.db.session() as session:
        rows = list(await session.scalars(select(DigestSubscription).order_by(DigestSubscription.id)))
    for row in rows:
        try:
            at = parse_hhmm(row.local_time, key=f"digest_subscriptions[{row.id}].local_time")
        except ConfigError as exc:
            log.warning("ignoring a stored digest: %s", exc)
            continue
        if row.period not in ("day", "week"):
            log.warning("ignoring stored digest %s: unknown period %r", row.id, row.period)
            continue
        subs[(row.channel, row.period)] = Subscription(
            row.channel, at, row.period, max(1, min(row.top or 10, 50)), row.leaderboard, "admin"
        )
    return sorted(subs.values(), key=lambda s: (s.channel, s.period))


def covered_by_post(period: str, post_day: date) -> tuple[date, date] | None:
    """The days a digest posted on local `post_day` covers; None when it is not posted that day."""
    if period == "day":
        day = post_day - timedelta(days=1)
        return day, day
    if post_day.weekday() != 0:  # weekly digests are posted on Mondays
        return None
    return post_day - timedelta(days=7), post_day - timedelta(days=1)


def period_containing(period: str, day: date) -> tuple[date, date]:
    """`tokenbot digest --date D`: that day, or the Monday-Sunday week around it."""
    if period == "day":
        return day, day
    monday = day - timedelta(days=day.weekday())
    return monday, monday + timedelta(days=6)


def latest_complete(period: str, today: date) -> tuple[date, date]:
    """What `tokenbot digest` without --date covers: yesterday, or the last complete week."""
    if period == "day":
        return period_containing("day", today - timedelta(days=1))
    this_monday = today - timedelta(days=today.weekday())
    return period_containing("week", this_monday - timedelta(days=7))


def due_now(services: Services, sub: Subscription) -> tuple[date, date] | None:
    """(first, last) covered when the subscription's moment today has passed; else None."""
    clock = services.clock
    today = clock.today()
    covered = covered_by_post(sub.period, today)
    if covered is None or clock.now() < clock.at_local(today, sub.at):
        return None
    return covered


# -- building the view model from rollups ----------------------------------------------------------------
async def build_digest(services: Services, sub: Subscription, first: date, last: date) -> DigestView:
    settings = services.settings
    privacy = sub.privacy(settings)
    span = (last - first).days + 1
    prev_first, prev_last = first - timedelta(days=span), first - timedelta(days=1)
    if sub.period == "week":
        baseline_days, baseline_label = 28, "4-week average"
    else:
        baseline_days, baseline_label = 7, "7-day average"
    month = month_key(last)
    month_last = month_last_day(last)

    async with services.db.session() as session:
        ranked = await queries.leaderboard_days(session, first, last)  # everyone, by cost, tokens, key
        # one pass over the daily rollup serves the previous period, the baseline and the month-end pace
        series = dict(await queries.daily_series(session, first - timedelta(days=baseline_days), last))
        top_rows = ranked[: sub.top] if privacy != "off" else []
        before = (
            await queries.costs_by_user(session, prev_first, prev_last, [r.key for r in top_rows]) if top_rows else {}
        )
        models = await queries.models_days(session, first, last, limit=MODELS_SHOWN)
        unpriced = await queries.unpriced_models(session, first, last)
        month_spend = await queries.month_costs_through(session, month, last, month_last)
        limits = {
            key: status.limit_usd
            for key, status in (await budget_statuses(
                session, settings, [k for k in month_spend if is_slack_user_id(k)], last
            )).items()
        }  # unlinked ids have no budget
        candidates = await queries.daily_costs(session, first, last, min_cost=ANOMALY_MIN_USD)
        history = (
            await queries.daily_costs(
                session, first - timedelta(days=ANOMALY_HISTORY_DAYS), last - timedelta(days=1),
                user_keys={key for key, _, _ in candidates},
            )
            if candidates else []
        )

    # budgets: the people (Slack ids) who spent this month, their limits and who is past 80%
    over = sorted(
        (
            BudgetRow(key, None, month_spend[key], limit)
            for key, limit in limits.items()
            if month_spend[key] >= limit * BUDGET_WATCH_SHARE
        ),
        key=lambda r: (-r.share, -r.spent_usd, r.user_key),
    )
    anomalies = find_anomalies(candidates, history)
    if sub.period == "week":  # the worst day per person
        worst: dict[str, AnomalyRow] = {}
        for row in anomalies:
            worst.setdefault(row.user_key, row)
        anomalies = list(worst.values())

    names: dict[str, str | None] = {}
    if privacy == "names":
        wanted = [r.key for r in top_rows] + [r.user_key for r in over[:NAME_LIMIT]]
        wanted += [a.user_key for a in anomalies[:NAME_LIMIT]]
        names = await resolve_names(services, wanted)

    def cost_between(start: date, end: date) -> Decimal:
        return sum((t.cost_usd for d, t in series.items() if start <= d <= end), ZERO)

    month_to_date = sum(month_spend.values(), ZERO)
    days_left = (month_last - last).days
    projected = month_to_date + cost_between(last - timedelta(days=6), last) / 7 * days_left
    hide = privacy != "names"
    return DigestView(
        channel=sub.channel,
        period=sub.period,
        first=first,
        last=last,
        timezone=settings.timezone.key,
        as_of=services.clock.local_now(),
        privacy=privacy,
        top=sub.top,
        cost_usd=sum((r.totals.cost_usd for r in ranked), ZERO),
        tokens=sum(r.totals.tokens for r in ranked),
        events=sum(r.totals.events for r in ranked),
        people=len(ranked),
        previous_cost_usd=cost_between(prev_first, prev_last),
        baseline_cost_usd=cost_between(first - timedelta(days=baseline_days), prev_last) * span / baseline_days,
        baseline_label=baseline_label,
        leaderboard=tuple(
            LeaderRow(
                rank=rank,
                user_key=None if hide else r.key,
                name=None if hide else names.get(r.key),
                is_person=is_slack_user_id(r.key),
                cost_usd=r.totals.cost_usd,
                tokens=r.totals.tokens,
                previous_cost_usd=before.get(r.key, ZERO),
            )
            for rank, r in enumerate(top_rows, start=1)
        ),
        models=tuple(ModelRow(m, t.cost_usd, t.tokens, t.events) for m, t in models),
        month=month,
        month_to_date_usd=month_to_date,
        projected_usd=projected,
        budgets_usd=sum(limits.values(), ZERO),
        budget_people=len(limits),
        over_budget=tuple(replace(r, name=names.get(r.user_key)) for r in over),
        anomalies=tuple(replace(a, name=names.get(a.user_key)) for a in anomalies),
        unlinked=tuple(
            UnlinkedRow(r.key, r.totals.cost_usd, r.totals.tokens) for r in ranked if not is_slack_user_id(r.key)
        ),
        unpriced=tuple(UnpricedRow(m, events, count) for m, events, count in unpriced),
    )


def find_anomalies(
    candidates: list[tuple[str, date, Decimal]], history: list[tuple[str, date, Decimal]]
) -> list[AnomalyRow]:
    """Days at or above ANOMALY_MIN_USD and above ANOMALY_FACTOR x the person's median of the
    ANOMALY_HISTORY_DAYS calendar days before (days without usage count as $0), largest first."""
    by_person: dict[str, dict[date, Decimal]] = {}
    for key, day, cost in history:
        by_person.setdefault(key, {})[day] = cost
    for key, day, cost in candidates:  # a week's earlier days are history for its later days
        by_person.setdefault(key, {})[day] = cost
    found = []
    for key, day, cost in candidates:
        if cost < ANOMALY_MIN_USD:
            continue
        days = by_person.get(key, {})
        window = [days.get(day - timedelta(days=back), ZERO) for back in range(1, ANOMALY_HISTORY_DAYS + 1)]
        median = statistics.median(window)
        if cost > ANOMALY_FACTOR * median:
            found.append(AnomalyRow(key, None, day, cost, median, is_slack_user_id(key)))
    found.sort(key=lambda a: (-a.cost_usd, a.user_key, a.day))
    return found


async def resolve_names(services: Services, keys: list[str]) -> dict[str, str | None]:
    """Display names for Slack ids: the people cache, then users.info (cached) for unknown ones."""
    people = sorted({k for k in keys if is_slack_user_id(k)})
    if not people:
        return {}
    known = await display_names(services, people)
    names: dict[str, str | None] = {k: (v if v and v != k else None) for k, v in known.items()}
    if services.slack is not None:
        for key in [k for k, v in names.items() if v is None]:
            try:
                person = await fetch_person(services, key)
            except Exception:  # a name is nice to have; the digest goes out without it
                log.debug("users.info failed for %s", key, exc_info=True)
                continue
            if person is not None and person.display_name:
                names[key] = person.display_name
    return names


async def build_chart(services: Services, sub: Subscription, last: date) -> DailyChart:
    """Daily cost for the CHART_DAYS days ending `last`, stacked by the top people (privacy
    "names") or else by the top models, so a chart never shows what the text hides."""
    first = last - timedelta(days=CHART_DAYS - 1)
    days = tuple(first + timedelta(days=i) for i in range(CHART_DAYS))
    index = {d: i for i, d in enumerate(days)}
    totals = [ZERO] * CHART_DAYS
    named: dict[str, list[Decimal]] = {}
    async with services.db.session() as session:
        if sub.privacy(services.settings) == "names":
            by = "person"
            top = await queries.leaderboard_days(session, first, last, limit=CHART_SERIES)
            for day, t in await queries.daily_series(session, first, last):
                totals[index[day]] = t.cost_usd
            order = [r.key for r in top]
            named = {k: [ZERO] * CHART_DAYS for k in order}
            for key, day, cost in await queries.daily_costs(session, first, last, user_keys=order):
                named[key][index[day]] = cost
        else:
            by = "model"
            per_model: dict[str, list[Decimal]] = {}
            for day, model, cost in await queries.daily_costs_by_model(session, first, last):
                per_model.setdefault(model, [ZERO] * CHART_DAYS)[index[day]] += cost
                totals[index[day]] += cost
            order = sorted(per_model, key=lambda m: (-sum(per_model[m], ZERO), m))[:CHART_SERIES]
            named = {m: per_model[m] for m in order}
    labels = await resolve_names(services, order) if by == "person" else {}
    series = [ChartSeries(labels.get(k) or k, tuple(named[k])) for k in order]
    rest = tuple(t - sum((named[k][i] for k in order), ZERO) for i, t in enumerate(totals))
    if any(v > 0 for v in rest):
        series.append(ChartSeries(OTHERS, rest))
    title = f"Daily AI cost by {by}, {days[0]:%-d %b} – {days[-1]:%-d %b %Y}"
    return DailyChart(title, days, tuple(series))


# -- once-only delivery -----------------------------------------------------------------------------------
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


def _key(channel: str, period: str, period_start: date):
    return and_(RUNS.c.channel == channel, RUNS.c.period == period, RUNS.c.period_start == period_start)


async def run_state(services: Services, channel: str, period: str, period_start: date) -> DigestRun | None:
    async with services.db.session() as session:
        return await session.get(DigestRun, (channel, period, period_start))


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
    async with services.db.write() as session:
        stmt = (
            dialect_insert(session, RUNS)
            .values(channel=channel, period=period, period_start=period_start, status="claimed",
                    claimed_by=token, claimed_at=now, lease_until=now + LEASE, attempts=1)
            .on_conflict_do_nothing(index_elements=["channel", "period", "period_start"])
            .returning(RUNS.c.attempts)
        )
        if (await session.execute(stmt)).first() is not None:
            return token, 1
    takeable = and_(RUNS.c.status == "claimed", RUNS.c.lease_until < now)
    if retry_failed:
        takeable = or_(takeable, RUNS.c.status == "failed")
    async with services.db.write() as session:
        row = (
            await session.execute(
                update(RUNS)
                .where(_key(channel, period, period_start), takeable)
                .values(status="claimed", claimed_by=token, claimed_at=now, lease_until=now + LEASE,
                        attempts=RUNS.c.attempts + 1)
                .returning(RUNS.c.attempts)
            )
        ).first()
    return (token, row[0]) if row is not None else None


async def _update_mine(services: Services, channel: str, period: str, period_start: date, token: str,
                       **values: Any) -> bool:
    async with services.db.write() as session:
        result = await session.execute(
            update(RUNS)
            .where(_key(channel, period, period_start), RUNS.c.claimed_by == token, RUNS.c.status == "claimed")
            .values(**values)
        )
        return result.rowcount == 1


def backoff(attempt: int) -> timedelta:
    """Wait before attempt `attempt + 1`: 2, 4, 8, 16 minutes (the sweep runs every 5)."""
    return timedelta(minutes=min(2**attempt, 30))


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
    if not await _update_mine(services, *key, token, lease_until=now + LEASE):
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
        await post_chart(services, sub, view, ts)
    return outcome("posted", ts=ts)


async def _mark_posted(services: Services, key: tuple[str, str, date], token: str, ts: str | None) -> None:
    """Record the post. The database is retried a few times: until this commits, a takeover after the
    lease would post the digest again (the one window left; see the module docstring)."""
    for attempt in range(1, 4):
        try:
            now = services.clock.now()
            if not await _update_mine(services, *key, token, status="posted", posted_at=now, message_ts=ts,
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
    await _update_mine(services, sub.channel, sub.period, first, token,
                       lease_until=services.clock.now() + wait, last_error=error)
    return outcome("retrying", error)


async def _give_up(services: Services, sub: Subscription, first: date, token: str, error: str, *,
                   report: bool) -> None:
    """Mark the run failed; the process whose conditional UPDATE does it tells the admins, once."""
    changed = await _update_mine(services, sub.channel, sub.period, first, token, status="failed",
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


async def report_to_admins(services: Services, sub: Subscription, first: date, error: str) -> None:
    code = error if error in ADVICE else None
    what = "weekly" if sub.period == "week" else "daily"
    text = (f":warning: The {what} AI spend digest for <#{sub.channel}> ({first:%a %-d %b}) could not be "
            f"posted: `{error}`. " + (ADVICE[code] if code else "Slack kept failing; the next digest will try "
                                      "again. Check the logs of `tokenbot serve`."))
    if not services.settings.admins:
        log.error("no admins configured to tell: %s", text)
    for admin in services.settings.admins:
        try:
            await services.slack.chat_postMessage(channel=admin, text=text)
        except Exception:
            log.exception("could not tell admin %s that the digest for %s failed", admin, sub.channel)


async def post_chart(services: Services, sub: Subscription, view: DigestView, ts: str | None) -> bool:
    """Upload the 30-day chart into the digest's thread; a failure is logged, never raised."""
    try:
        chart = await build_chart(services, sub, view.last)
        if chart.total <= 0:
            return False
        png = await asyncio.to_thread(render_png, chart)
        await services.slack.files_upload_v2(
            channel=sub.channel, thread_ts=ts, content=png, filename=f"ai-spend-{view.last.isoformat()}.png",
            title=chart.title, alt_txt=f"{chart.title}: stacked bars, one per day",
        )
        return True
    except Exception:
        log.warning("the chart for the %s digest in %s could not be posted; the text stands",
                    sub.period, sub.channel, exc_info=True)
        return False


# -- jobs ---------------------------------------------------------------------------------------------------
async def sweep(services: Services) -> list[Outcome]:
    """Post every digest due today and not posted yet; keep the cron jobs in step with the subscriptions."""
    subs = await load_subscriptions(services)
    sync_jobs(services, subs)
    outcomes = []
    for sub in subs:
        covered = due_now(services, sub)
        if covered is None:
            continue
        try:
            outcomes.append(await deliver(services, sub, *covered))
        except Exception:  # one digest's trouble must not hold up the others
            log.exception("digest %s for %s failed", sub.period, sub.channel)
    return outcomes


async def run_subscription(services: Services, channel: str, period: str) -> Outcome | None:
    """The cron job of one subscription (it re-reads the subscription: it may have changed)."""
    for sub in await load_subscriptions(services):
        if (sub.channel, sub.period) == (channel, period):
            covered = due_now(services, sub)
            return await deliver(services, sub, *covered) if covered else None
    return None


def cron_spec(sub: Subscription, settings: Settings) -> JobSpec:
    async def run(services: Services) -> None:
        await run_subscription(services, sub.channel, sub.period)

    trigger = CronTrigger(hour=sub.at.hour, minute=sub.at.minute,
                          day_of_week="mon" if sub.period == "week" else "*", timezone=settings.timezone)
    return JobSpec(sub.job_id, run, trigger)


def digest_jobs(services: Services) -> list[JobSpec]:
    """The job factory: the sweep (at start-up, then every 5 minutes) and a cron job per config digest.
    Stored subscriptions get their cron jobs from the first sweep (`sync_jobs`)."""
    tz = services.settings.timezone
    specs = [
        JobSpec("digests:startup-sweep", sweep, DateTrigger(run_date=datetime.now(UTC), timezone=tz)),
        JobSpec("digests:sweep", sweep, IntervalTrigger(seconds=SWEEP_EVERY.total_seconds(), timezone=tz)),
    ]
    specs += [cron_spec(Subscription.from_config(d), services.settings) for d in services.settings.digests]
    return specs


def sync_jobs(services: Services, subs: list[Subscription]) -> None:
    """Add, move and remove the per-subscription cron jobs of the running scheduler (if any)."""
    scheduler = getattr(services, _SCHEDULER_KEY, None)
    if scheduler is None:
        return
    wanted = {sub.job_id: sub for sub in subs}
    for job in scheduler.get_jobs():
        if job.id.startswith("digest:") and job.id not in wanted:
            job.remove()
    for sub in subs:
        job = scheduler.get_job(sub.job_id)
        if job is not None and job.name == sub.job_name:
            continue
        spec = cron_spec(sub, services.settings)
        scheduler.add_job(_guarded(spec, services), spec.trigger, id=spec.id, name=sub.job_name,
                          replace_existing=True, coalesce=True, max_instances=1, misfire_grace_time=3600)


JOB_FACTORIES.append(digest_jobs)


# -- the CLI and the demo ---------------------------------------------------------------------------------
async def digest_command(settings: Settings, *, channel: str | None = None, day: date | None = None,
                         dry_run: bool = False, out: Callable[[str], Any] = print,
                         services: Services | None = None) -> int:
    """`tokenbot digest [--channel C] [--date D] [--dry-run]`: the same path as the scheduler.

    `--date` is the day covered (for a weekly digest: the Monday-Sunday week around it);
    without it, yesterday or the last complete week. Without `--channel`, every subscription;
    a `--channel` with no subscription gets a daily digest with the defaults. Posting goes
    through the once-only claim (an already posted digest is not posted again; a failed one
    is tried again); `--dry-run` prints the text and the Block Kit JSON and needs no Slack.
    """
    import orjson

    if not dry_run and not settings.slack_bot_token:
        raise ConfigError("SLACK_BOT_TOKEN: required by `tokenbot digest` (or use --dry-run)")
    own = services is None
    services = services or build_services(settings, with_slack=not dry_run)
    try:
        subs = await load_subscriptions(services)
        if channel is not None:
            subs = [s for s in subs if s.channel == channel] or [Subscription(channel, time(9), source="cli")]
        if not subs:
            if not dry_run:
                raise ConfigError("digests: none configured; add [[digests]] to the config, use "
                                  "`/tokens admin digest`, or pass --channel C")
            subs = [Subscription("(preview)", time(9), source="cli")]
        failed = 0
        today = services.clock.today()
        for sub in subs:
            first, last = period_containing(sub.period, day) if day else latest_complete(sub.period, today)
            if dry_run:
                view = await build_digest(services, sub, first, last)
                payload = {"channel": sub.channel, "text": fallback_text(view), "blocks": digest_blocks(view)}
                out(digest_text(view))
                out(orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode())
                continue
            result = await deliver(services, sub, first, last, retry_failed=True)
            out(result.describe())
            failed += result.status in ("failed", "retrying")
        return 1 if failed else 0
    finally:
        if own:
            await services.close()


async def demo_digest_text(services: Services) -> str:
    """Yesterday's daily digest as text, for `tokenbot demo`."""
    first, last = latest_complete("day", services.clock.today())
    view = await build_digest(services, Subscription("C0DEMO", time(9), source="demo"), first, last)
    return f"--- the daily digest (#ai-spend, {period_title(view)}) ---\n{digest_text(view)}"
