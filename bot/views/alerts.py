"""Budget alerts on screen: the person's DM (threshold or forecast, with the
"Request more budget" button) and the approver's note at 100%. Block Kit and text."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from bot.views.approvals import REQUEST_ACTION
from bot.views.blocks import Block, actions, bar, button, context, mention, section
from bot.views.format import money, percent


@dataclass(frozen=True)
class BudgetAlertView:
    user: str
    name: str
    kind: str  # "threshold" | "forecast"
    threshold: Decimal | None  # the highest threshold just crossed (threshold alerts)
    spent_usd: Decimal
    limit_usd: Decimal
    month_label: str  # "November 2026"
    resets_on: date
    pace_per_day: Decimal
    projected_usd: Decimal
    runs_out_on: date | None = None
    pending_request: int | None = None  # an open request: no button, say so instead

    @property
    def share(self) -> Decimal:
        return self.spent_usd / self.limit_usd if self.limit_usd > 0 else Decimal(1)

    @property
    def remaining_usd(self) -> Decimal:
        return max(self.limit_usd - self.spent_usd, Decimal(0))


def _day(day: date) -> str:
    return f"{day:%a %b} {day.day}"


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _headline(view: BudgetAlertView) -> str:
    if view.kind == "forecast":
        day = view.runs_out_on
        return (f"At this pace your {money(view.limit_usd)} budget runs out on the {_ordinal(day.day)} "
                f"({_day(day)})") if day else "Your budget may run out before the month ends"
    if view.threshold is not None and view.threshold >= 1:
        return f"You have used {percent(view.share)} of your {money(view.limit_usd)} budget for {view.month_label}"
    return (f"You have passed {percent(view.threshold or view.share)} of your {money(view.limit_usd)} budget "
            f"for {view.month_label}")


def _detail(view: BudgetAlertView) -> str:
    line = f"{money(view.spent_usd)} spent, {money(view.remaining_usd)} left; it resets on {_day(view.resets_on)}."
    if view.kind == "forecast":
        return (f"You are spending about {money(view.pace_per_day)} a day (last 7 days). {line} "
                "Ask for more now, while there is still time.")
    if view.pace_per_day > 0:
        line += f" At this pace the month ends near {money(view.projected_usd)}."
    return line


def alert_fallback(view: BudgetAlertView) -> str:
    return _headline(view)


def alert_blocks(view: BudgetAlertView) -> list[Block]:
    icon = ":chart_with_upwards_trend:" if view.kind == "forecast" else (
        ":rotating_light:" if view.share >= 1 else ":warning:")
    blocks: list[Block] = [
        section(f"{icon} *{_headline(view)}*\n`{bar(float(min(view.share, Decimal(1))))}` {percent(view.share)}\n"
                f"{_detail(view)}"),
    ]
    if view.pending_request is not None:
        blocks.append(context(f"Your request #{view.pending_request} is waiting for a decision."))
    else:
        blocks.append(actions(button("Request more budget", REQUEST_ACTION, value=view.user, style="primary"),
                              block_id="alert_actions"))
    return blocks


def alert_text(view: BudgetAlertView) -> str:
    lines = [_headline(view), f"  {bar(float(min(view.share, Decimal(1))))} {percent(view.share)}",
             f"  {_detail(view)}"]
    if view.pending_request is not None:
        lines.append(f"  Your request #{view.pending_request} is waiting for a decision.")
    else:
        lines.append("  [Request more budget]")
    return "\n".join(lines)


def approver_alert_fallback(view: BudgetAlertView) -> str:
    return f"{view.name} has used {percent(view.share)} of their {view.month_label} budget"


def approver_alert_blocks(view: BudgetAlertView) -> list[Block]:
    return [
        section(f":rotating_light: {mention(view.user)} has used *{percent(view.share)}* of their "
                f"{money(view.limit_usd)} budget for {view.month_label} ({money(view.spent_usd)} spent)."),
        context("You approve their budget requests. If they ask for more, the request comes here with "
                "Approve and Deny buttons."),
    ]


def approver_alert_text(view: BudgetAlertView) -> str:
    return (f"{view.name} has used {percent(view.share)} of their {money(view.limit_usd)} budget for "
            f"{view.month_label} ({money(view.spent_usd)} spent). Their requests come to you.")
