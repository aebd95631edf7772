"""Budget alerts (SPEC 6): threshold DMs and the monthly forecast alert, checked as usage arrives.

After every stored batch the ingestor calls `AlertChecker.after_ingest`, which starts the
check as a background task (held in `bot.background`) so the webhook's answer never waits
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
from sqlalchemy import func, select

from bot.approvals import month_label, resolve_approvers
from bot.background import background
from bot.budgets import budget_statuses, forecast
from bot.clock import month_key
from bot.identities import is_slack_user_id
from bot.people import display_names
from bot.services import Services
from bot.usage import IngestResult
from bot.views import alerts as views
from storage.models import AlertSent, BudgetRequest, UsageDaily
from storage.usage import dialect_insert

log = logging.getLogger(__name__)

CHUNK = 500
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
    """The after-ingest hook; `pending` lets tests and shutdown wait for running checks."""

    def __init__(self, services: Services) -> None:
        self.services = services

    async def after_ingest(self, result: IngestResult) -> None:
        if self.services.slack is None:
            return
        month = month_key(self.services.clock.today())
        users = {user for user, m in result.touched if m == month and is_slack_user_id(user)}
        if users:
            background(self.services).spawn(check_users(self.services, users), name="budget-alerts")


def install(services: Services) -> AlertChecker:
    checker = AlertChecker(services)
    services.ingestor.after_ingest.append(checker.after_ingest)
    return checker


def _chunks(items: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


async def check_users(services: Services, users: Iterable[str]) -> list[SentAlert]:
    """Claim and send the alerts due for these people this month."""
    settings, clock = services.settings, services.clock
    today = clock.today()
    month = month_key(today)
    people = sorted(set(users))
    trailing: dict[str, Decimal] = {}
    pending: dict[str, int] = {}
    sent: set[tuple[str, str, str]] = set()
    async with services.db.session() as session:
        statuses = await budget_statuses(session, settings, people, today)
        for chunk in _chunks(people):
            trailing.update((await session.execute(
                select(UsageDaily.user_key, func.sum(UsageDaily.cost_usd))
                .where(UsageDaily.user_key.in_(chunk), UsageDaily.day > today - timedelta(days=7),
                       UsageDaily.day <= today)
                .group_by(UsageDaily.user_key))).all())
            pending.update((await session.execute(
                select(BudgetRequest.requester, BudgetRequest.id)
                .where(BudgetRequest.status == "pending", BudgetRequest.requester.in_(chunk)))).all())
            sent.update((r.user_key, r.kind, r.threshold) for r in await session.scalars(
                select(AlertSent).where(AlertSent.month == month, AlertSent.user_key.in_(chunk))))

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
        if (user, "forecast", "") not in sent and status.spent_usd < status.limit_usd:
            outlook = forecast(status, trailing.get(user) or ZERO, today)
            if outlook.runs_out_on is not None:
                forecasts[user] = outlook
                claims.append({"user_key": user, "kind": "forecast", "month": month, "threshold": "",
                               "sent_at": now})
    if not claims:
        return []

    async with services.db.write() as session:
        stmt = dialect_insert(session, AlertSent.__table__).on_conflict_do_nothing()
        won = {(r[0], r[1], r[2]) for r in await session.execute(
            stmt.returning(AlertSent.user_key, AlertSent.kind, AlertSent.threshold), claims)}

    names = await display_names(services, people)
    first_full = next((t for t in settings.alert_thresholds if t >= 1), None)
    out: list[SentAlert] = []
    for user in people:
        status = statuses[user]
        crossed = [t for t in settings.alert_thresholds if (user, "threshold", threshold_key(t)) in won]
        outlook = forecasts.get(user) or forecast(status, trailing.get(user) or ZERO, today)
        common = dict(user=user, name=names.get(user, user), spent_usd=status.spent_usd, limit_usd=status.limit_usd,
                      month_label=month_label(month), resets_on=status.resets_on, pace_per_day=outlook.pace_per_day,
                      projected_usd=outlook.projected_month_end, pending_request=pending.get(user))
        if crossed:
            view = views.BudgetAlertView(kind="threshold", threshold=max(crossed), **common)
            if await _dm(services, user, views.alert_fallback(view), views.alert_blocks(view)):
                out.append(SentAlert(user, "threshold", max(crossed), user))
            if first_full is not None and first_full in crossed:
                for approver in (await resolve_approvers(services, user)).users:
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
