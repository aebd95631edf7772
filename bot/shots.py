"""`tokenbot demo --shots DIR`: every Slack surface of tokenbot as the JSON Slack would get.

After the demo has filled its database, this writes one file per surface (a `chat.postMessage`
argument dict, a `response_url` body for ephemeral answers, or a view), the digest chart as
PNG, `names.json` (Slack ids -> demo names) and `texts.txt` (each surface's notification text),
so anyone can look at them with `slack_preview.py DIR/*.json --out PNGDIR --phone --names
DIR/names.json`. Every surface is built by the same builder and view functions the bot uses;
nothing here is a copy of their wording.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from bot import card_builder, home_builder
from bot.approvals import messaging, service
from bot.approvals.builder import audit_history, request_view
from bot.breaker.shots import breaker_shots
from bot.budgets import budget_statuses, forecast, trailing_spend
from bot.card_builder import limits_enforced
from bot.charts import render_png
from bot.clock import month_key, month_label, month_last_day
from bot.commands import link_identity, set_budget
from bot.config import SLACK_USER_ID
from bot.digests.builder import build_chart, build_digest
from bot.digests.delivery import report_to_admins_text
from bot.digests.periods import Subscription, latest_complete
from bot.people import display_names, remember_people
from bot.providers.demo import provider_shots
from bot.services import Services
from bot.teams.shots import team_shots
from bot.views import alerts as alert_views
from bot.views import approvals as approval_views
from bot.views.answers import render
from bot.views.approval_forms import DecisionContext, amount_modal, deny_modal, request_modal
from bot.views.approval_notices import RequesterNotice, notice_blocks, notice_fallback
from bot.views.audit import audit_blocks, audit_fallback
from bot.views.digest import details_blocks, details_fallback, digest_blocks, fallback_text
from bot.views.help import HelpView
from bot.views.home import home_view
from storage import queries

DIGEST_CHANNEL = "C0DEMODIGEST"
NEWCOMER = ("U0DEMONEW", "Nia Newcomer")


@dataclass
class Shots:
    """The surfaces, gathered in memory and written at the end (`save`): name -> payload, text, PNG bytes."""

    out: Path
    payloads: dict[str, Any] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)  # notification text; empty for views
    images: dict[str, bytes] = field(default_factory=dict)

    def write(self, name: str, payload: Any, text: str = "") -> None:
        self.payloads[name] = payload
        self.texts[name] = text

    def save(self, names: dict[str, str]) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        for name, payload in self.payloads.items():
            (self.out / f"{name}.json").write_text(json.dumps(payload, indent=2, ensure_ascii=False, default=str))
        for name, png in self.images.items():
            (self.out / name).write_bytes(png)
        (self.out / "names.json").write_text(json.dumps(names, indent=2, ensure_ascii=False))
        (self.out / "texts.txt").write_text("".join(f"{n}: {t}\n" for n, t in self.texts.items()))

    def message(self, name: str, channel: str, text: str, blocks: list[dict], **extra: Any) -> None:
        self.write(name, {"channel": channel, "text": text, "blocks": blocks, **extra}, text)

    def ephemeral(self, name: str, answer: Any) -> None:
        message = render(answer)
        self.write(name, {"response_type": "ephemeral", "text": message.text, "blocks": message.blocks},
                   message.text)


async def write_shots(services: Services, out: Path, people: list[tuple[str, str]]) -> Shots:
    """Every surface into `out` (created); `people` are the demo's (Slack id, name) pairs."""
    shots = Shots(out)
    await remember_people(services, [NEWCOMER])

    settings = services.settings
    today = services.clock.today()
    reserved = {*settings.default_approvers, *settings.admins, *settings.approvers.values()}
    async with services.db.session() as session:
        ranked = await queries.leaderboard_month(session, month_key(today))
        spenders = [r.key for r in ranked if SLACK_USER_ID.match(r.key)]
        statuses = await budget_statuses(session, settings, spenders, today)
    heaviest = spenders[0]
    candidates = [k for k in spenders if k not in reserved]
    over = max(candidates, key=lambda k: statuses[k].used_share)
    if statuses[over].used_share < 1:  # someone past their budget: an admin lowers one to below their spend
        over = candidates[6]
        await set_budget(services, settings.admins[0], over, (statuses[over].spent_usd * Decimal("0.9")).quantize(
            Decimal(1)))

    # /tokens: the card (normal, over budget, no usage), the leaderboard, the budget, help
    shots.ephemeral("card", await card_builder.build_card(services, heaviest))
    shots.ephemeral("card-over-budget", await card_builder.build_card(services, over))
    shots.ephemeral("card-no-usage", await card_builder.build_card(services, NEWCOMER[0]))
    shots.ephemeral("leaderboard", await card_builder.build_leaderboard(services, spenders[len(spenders) // 2]))
    shots.ephemeral("budget", await card_builder.build_budget(services, over, viewer=over))
    shots.ephemeral("help", HelpView())
    shots.ephemeral("help-unknown-word", HelpView(unknown="stats"))

    await _digests(services, shots, today)
    await _alerts(services, shots, heaviest)
    await _approvals(services, shots, candidates)
    await team_shots(services, shots)  # SPEC 13: team card, team digest, teams section, a team request
    shots.write("home-first-run", home_view(await home_builder.build_home(services, NEWCOMER[0])))

    # admin notices: answers to admin commands, the DM when a digest cannot be posted, their App Home
    admin = settings.admins[0]
    shots.write("home-admin", home_view(await home_builder.build_home(services, admin)))
    shots.ephemeral("admin-set-budget", await set_budget(services, admin, candidates[-1], Decimal(200)))
    shots.ephemeral("admin-link", await link_identity(services, admin, "key_ci_<nightly>&co", candidates[-1]))
    text = report_to_admins_text(Subscription(DIGEST_CHANNEL, time(9)), today, "not_in_channel")
    shots.message("admin-digest-failed", admin, text, [])
    lines = await audit_history(services)
    audit_names = await display_names(services, {x for line in lines for x in (line.actor, line.subject) if x})
    shots.write("audit", {"response_type": "ephemeral", "text": audit_fallback(None, lines),
                          "blocks": audit_blocks(None, lines, audit_names)}, audit_fallback(None, lines))

    await provider_shots(services, shots)  # SPEC 10: Claude Code on the card, reconciliation (bot/providers/demo.py)
    await breaker_shots(services, shots, candidates[0], settings.default_approvers[0])  # SPEC 11, 12

    names = dict(people) | {NEWCOMER[0]: NEWCOMER[1], DIGEST_CHANNEL: "ai-spend"}
    await asyncio.to_thread(shots.save, names)
    return shots


async def _digests(services: Services, shots: Shots, today) -> None:
    for period in ("day", "week"):
        sub = Subscription(DIGEST_CHANNEL, time(9), period=period, source="demo")
        first, last = latest_complete(period, today)
        view = await build_digest(services, sub, first, last)
        name = "digest-daily" if period == "day" else "digest-weekly"
        shots.message(name, DIGEST_CHANNEL, fallback_text(view), digest_blocks(view))
        shots.message(f"{name}-thread", DIGEST_CHANNEL, details_fallback(view), details_blocks(view),
                      thread_ts="1700000000.000200")
        chart = await build_chart(services, sub, view.last)
        shots.images[f"chart-{'daily' if period == 'day' else 'weekly'}.png"] = await asyncio.to_thread(
            render_png, chart)


async def _alerts(services: Services, shots: Shots, user: str) -> None:
    """The threshold alert at 99% (one batch from 75% past 80% and 90%) and at 108%, the forecast alert,
    and the approver's note: the person's real pace, with the spend set where each alert fires."""
    today = services.clock.today()
    async with services.db.session() as session:
        status = (await budget_statuses(session, services.settings, [user], today))[user]
        week = await trailing_spend(session, user, today)
    names = await display_names(services, [user])
    outlook = forecast(status, week, today)
    common = dict(user=user, name=names[user], limit_usd=status.limit_usd, month_label=month_label(status.period),
                  resets_on=status.resets_on, pace_per_day=outlook.pace_per_day, month_end=month_last_day(today),
                  enforced=limits_enforced(services.settings))
    for share, threshold, name in ((Decimal("0.99"), Decimal("0.8"), "alert-99"),
                                   (Decimal("1.08"), Decimal("1.0"), "alert-108")):
        spent = (status.limit_usd * share).quantize(Decimal("0.01"))
        view = alert_views.BudgetAlertView(kind="threshold", threshold=threshold, spent_usd=spent,
                                           projected_usd=spent + outlook.pace_per_day * 10, **common)
        shots.message(name, user, alert_views.alert_fallback(view), alert_views.alert_blocks(view))
        if name == "alert-108":
            shots.message("alert-approver", "U0APPROVER", alert_views.approver_alert_fallback(view),
                          alert_views.approver_alert_blocks(view))
    spent = (status.limit_usd * Decimal("0.6")).quantize(Decimal("0.01"))
    runs_out = min(today + timedelta(days=2), month_last_day(today))  # forecasts only fire within the month
    view = alert_views.BudgetAlertView(kind="forecast", threshold=None, spent_usd=spent,
                                       projected_usd=spent * 2, runs_out_on=runs_out, **common)
    shots.message("alert-forecast", user, alert_views.alert_fallback(view), alert_views.alert_blocks(view))


async def _approvals(services: Services, shots: Shots, candidates: list[str]) -> None:
    """One request per outcome, each through the real service: the approver's DM before and after,
    the reminder, the requester's DMs, the modals, and the approver's App Home while two wait."""
    approver = services.settings.default_approvers[0]
    asks = {"approved": ("75", "load test for the launch"), "denied": ("300", "fine-tune <v2> & evals"),
            "expired": ("40", None), "pending": ("120", "agents benchmark for the Q4 review")}
    ids: dict[str, int] = {}
    for (outcome, (amount, reason)), requester in zip(asks.items(), candidates[1:], strict=False):
        created = await service.create_request(services, requester, amount, reason, "month", via="demo")
        ids[outcome] = created.request_id
    pending = await request_view(services, ids["approved"])
    approver = pending.approvers[0]  # with [teams], a member's approver is their team's lead (SPEC 13)
    shots.message("approval-pending", approver, approval_views.approval_fallback(pending),
                  approval_views.approval_blocks(pending))
    shots.message("approval-reminder", approver, approval_views.reminder_text(pending, 24, slack=False),
                  approval_views.reminder_blocks(pending, 24), thread_ts="1700000000.000100")
    notice = RequesterNotice("submitted", pending)
    shots.message("requester-submitted", pending.requester, notice_fallback(notice), notice_blocks(notice))
    ctx = DecisionContext(pending.id, pending.requester, approval_views.plain_amount(pending.amount_usd),
                          pending.scope)
    shots.write("modal-request", request_modal(services.settings.max_request_usd))
    shots.write("modal-approve-amount", amount_modal(ctx))
    shots.write("modal-deny", deny_modal(ctx))

    decided = await service.decide(services, ids["approved"], approver, approve=True)
    shown = await messaging.after_decision(services, ids["approved"], decided=decided)
    _decided_shots(shots, "approved", approver, shown)
    approver = (await request_view(services, ids["denied"])).approvers[0]
    decided = await service.decide(services, ids["denied"], approver, approve=False,
                                   note="Let's review the eval plan first")
    _decided_shots(shots, "denied", approver, await messaging.after_decision(services, ids["denied"],
                                                                             decided=decided))
    shots.write("home-approver", home_view(await home_builder.build_home(services, approver)))  # two still wait
    await service.expire(services, ids["expired"], services.clock.now())
    _decided_shots(shots, "expired", approver, await messaging.after_decision(services, ids["expired"]))


def _decided_shots(shots: Shots, outcome: str, approver: str, shown: messaging.Announcement) -> None:
    view = shown.approver_view
    shots.message(f"approval-{outcome}", approver, approval_views.approval_fallback(view),
                  approval_views.approval_blocks(view))
    shots.message(f"requester-{outcome}", view.requester, notice_fallback(shown.notice), notice_blocks(shown.notice),
                  thread_ts="1700000000.000300", reply_broadcast=True)

