"""Budget alerts (SPEC 6): threshold DMs and the monthly forecast alert, checked as usage arrives.

After every stored batch the ingestor calls `AlertChecker.after_ingest` (installed by the
composition root, bot/wiring.py), which starts the check as a background task (held by
`Services.background`) so the webhook's answer never waits
for it. The check is batch-efficient: one query per table for all people the batch
touched (spend, standing budgets, raises, alerts already sent, trailing 7-day spend,
pending requests), then one INSERT for all claims.

Once only, whatever the number of processes: an alert is sent only by the transaction
whose `INSERT INTO alerts_sent … ON CONFLICT DO NOTHING RETURNING` returned its row
(primary key user, kind, month, threshold). A DM that Slack refuses after the claim is
not retried (at most once: a repeated alert is worse than a lost one).

Decisions:
- Only the current month (organisation's zone) alerts; backfilled events for past months
  and spend under ids not linked to a Slack user never do.
- When one batch crosses several thresholds at once, one DM names the highest; the
  lower ones are claimed too, so they never arrive late.
- "At 100% their approver hears too": when the first threshold at or above 1.0 is crossed.
- Forecast: when the trailing-7-day pace would spend the rest of the budget before the
  month ends and the budget is not yet used up; once a month.
- The button is left out when the person already has a pending request (the DM says so).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from slack_sdk.errors import SlackApiError

from bot.budgets import BudgetStatus, budget_statuses, forecast
from bot.card_builder import limits_enforced
from bot.clock import month_key, month_label, month_last_day
from bot.enforce import push as enforce_push
from bot.identities import is_slack_user_id
from bot.people import display_names
from bot.services import Services
from bot.usage import IngestResult
from bot.views import alerts as views
from storage import alerts_repo, approvals_repo, queries

log = logging.getLogger(__name__)

FORECAST_EVERY = 3600.0  # seconds between pace checks of one person (per process)
INFINITY = Decimal("Infinity")
QUIET_SECONDS = 60.0  # how long a check's spend and limit stand in for a new one (per process)
ZERO = Decimal(0)


def threshold_key(threshold: Decimal) -> str:
    return format(threshold.normalize(), "f")


@dataclass(frozen=True)
class SentAlert:
    user: str
    kind: str  # threshold | forecast | approver
    threshold: Decimal | None
    to: str


class AlertChecker:
    """The after-ingest hook.

    Checks are coalesced: people touched while a check runs wait in `_dirty` and are
    checked together in the next round, so under heavy ingest one check covers many
    batches instead of one check per batch competing with the writer.

    Most batches move nobody across a threshold. After a check, each person's spend and
    the next threshold above it (in USD) are remembered for `QUIET_SECONDS`; while spend
    plus what this process has added since stays below it, no query runs at all. Spend added by
    other processes, or a limit lowered elsewhere, is seen at the next full check, at
    most `QUIET_SECONDS` later.
    """

    def __init__(self, services: Services) -> None:
        self.services = services
        self._dirty: set[str] = set()
        self._running = False
        self._forecast_checked: dict[str, float] = {}  # user -> when (clock seconds) their pace was last checked
        # user -> (month, spend at the last check + spend added here since, next threshold in USD, checked at)
        self._quiet: dict[str, tuple[str, Decimal, Decimal, float]] = {}

    async def after_ingest(self, result: IngestResult) -> None:
        if self.services.slack is None:
            return
        now = self.services.clock.now().timestamp()
        month = month_key(self.services.clock.today())
        users = set()
        for (user, spent_month), added in result.touched.items():
            if spent_month != month or not is_slack_user_id(user):
                continue
            known = self._quiet.get(user)
            if known is not None and known[0] == month and now - known[3] < QUIET_SECONDS:
                spent = known[1] + added
                self._quiet[user] = (month, spent, known[2], known[3])
                due_forecast = now - self._forecast_checked.get(user, -FORECAST_EVERY) >= FORECAST_EVERY
                if spent < known[2] and not due_forecast:
                    continue
            users.add(user)
        if not users:
            return
        self._dirty |= users
        if not self._running:
            self._running = True
            self.services.background.spawn(self._rounds(), name="budget-alerts")

    async def _rounds(self) -> None:
        try:
            while self._dirty:
                users, self._dirty = self._dirty, set()
                # the forecast's trailing days read the rollups: wait for the next fold (at its pace)
                writer = self.services.ingestor.writer
                await writer.wait_folded(within=2 * writer.fold_interval + 1.0)
                now = self.services.clock.now().timestamp()
                due = {u for u in users if now - self._forecast_checked.get(u, -FORECAST_EVERY) >= FORECAST_EVERY}
                self._forecast_checked.update(dict.fromkeys(due, now))
                statuses: dict[str, BudgetStatus] = {}
                await check_users(self.services, users, forecast_for=due, statuses_out=statuses)
                thresholds = self.services.settings.alert_thresholds
                for user, status in statuses.items():
                    bars = [t * status.limit_usd for t in thresholds if t * status.limit_usd > status.spent_usd]
                    self._quiet[user] = (status.period, status.spent_usd, min(bars, default=INFINITY), now)
        finally:
            self._running = False


async def check_users(
    services: Services, users: Iterable[str], *, forecast_for: set[str] | None = None,
    statuses_out: dict[str, BudgetStatus] | None = None,
) -> list[SentAlert]:
    """Claim and send the alerts due for these people this month.

    `forecast_for` limits the forecast check to some of them (the after-ingest hook checks
    each person's pace at most once an hour; thresholds are checked every time).
    """
    settings, clock = services.settings, services.clock
    today = clock.today()
    month = month_key(today)
    people = sorted(set(users))
    trailing: dict[str, Decimal] = {}
    pending: dict[str, int] = {}
    sent: set[tuple[str, str, str]] = set()
    lowest = min(settings.alert_thresholds)
    async with services.db.session() as session:
        statuses = await budget_statuses(session, settings, people, today)
        if statuses_out is not None:
            statuses_out.update(statuses)
        # only people near a threshold, or due a forecast check, need the rest
        people = [u for u in people if statuses[u].used_share >= lowest or forecast_for is None or u in forecast_for]
        if people:
            trailing = await queries.costs_by_user(session, today - timedelta(days=6), today, people)
            pending = await approvals_repo.pending_ids_of(session, people)
            sent = await alerts_repo.sent_in_month(session, month, people)

    claims: list[dict] = []
    forecasts = {}
    now = clock.now()
    for user in people:
        status = statuses[user]
        for threshold in settings.alert_thresholds:
            key = threshold_key(threshold)
            if status.used_share >= threshold and (user, "threshold", key) not in sent:
                claims.append({"user_key": user, "kind": "threshold", "month": month, "threshold": key,
                               "sent_at": now})
        due = forecast_for is None or user in forecast_for
        if due and (user, "forecast", "") not in sent and status.spent_usd < status.limit_usd:
            outlook = forecast(status, trailing.get(user) or ZERO, today)
            if outlook.runs_out_on is not None:
                forecasts[user] = outlook
                claims.append({"user_key": user, "kind": "forecast", "month": month, "threshold": "",
                               "sent_at": now})
    if not claims:
        return []

    async with services.db.write() as session:
        won = await alerts_repo.claim(session, claims)
        full = {c["user_key"] for c in claims if c["kind"] == "threshold" and Decimal(c["threshold"]) >= 1
                and (c["user_key"], "threshold", c["threshold"]) in won}
        for user in sorted(full):  # SPEC 11: at 100% the enforcers hear at once that nothing is left
            await enforce_push.mark_person(services, session, user)
    if full:
        enforce_push.kick(services)

    names = await display_names(services, people)
    first_full = next((t for t in settings.alert_thresholds if t >= 1), None)
    out: list[SentAlert] = []
    for user in people:
        status = statuses[user]
        crossed = [t for t in settings.alert_thresholds if (user, "threshold", threshold_key(t)) in won]
        outlook = forecasts.get(user) or forecast(status, trailing.get(user) or ZERO, today)
        common = dict(user=user, name=names.get(user, user), spent_usd=status.spent_usd, limit_usd=status.limit_usd,
                      month_label=month_label(month), resets_on=status.resets_on, pace_per_day=outlook.pace_per_day,
                      projected_usd=outlook.projected_month_end, pending_request=pending.get(user),
                      month_end=month_last_day(today), enforced=limits_enforced(settings))
        if crossed:
            view = views.BudgetAlertView(kind="threshold", threshold=max(crossed), **common)
            if await _dm(services, user, views.alert_fallback(view), views.alert_blocks(view)):
                out.append(SentAlert(user, "threshold", max(crossed), user))
            if first_full is not None and first_full in crossed:
                for approver in (await services.approvers.resolve(user)).users:
                    if await _dm(services, approver, views.approver_alert_fallback(view),
                                 views.approver_alert_blocks(view)):
                        out.append(SentAlert(user, "approver", first_full, approver))
        if (user, "forecast", "") in won:
            view = views.BudgetAlertView(kind="forecast", threshold=None, runs_out_on=outlook.runs_out_on, **common)
            if await _dm(services, user, views.alert_fallback(view), views.alert_blocks(view)):
                out.append(SentAlert(user, "forecast", None, user))
    return out


async def _dm(services: Services, user: str, text: str, blocks: list[dict]) -> bool:
    try:
        await services.slack.chat_postMessage(channel=user, text=text, blocks=blocks)
    except SlackApiError as exc:
        log.warning("budget alert DM to %s failed: %s", user, exc.response.get("error"))
        return False
    return True
