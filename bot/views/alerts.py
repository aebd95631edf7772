"""Budget alerts on screen: the person's DM (threshold or forecast, with the "Request more budget"
button) and the approver's note at 100%. Block Kit and text.

An alert says where the person is now, not which threshold was crossed: a batch that jumps from
75% to 99% says "99% used: $6 left", and past the limit it says how much over, and whether calls
are refused. The notification text is that same first line.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from bot.views.approvals import REQUEST_ACTION
from bot.views.blocks import Block, actions, button, context, mention, section
from bot.views.format import day, money, percent


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
    month_end: date | None = None
    enforced: bool | str = False  # where over budget calls are refused (card_builder.limits_enforced)

    @property
    def share(self) -> Decimal:
        return self.spent_usd / self.limit_usd if self.limit_usd > 0 else Decimal(1)

    @property
    def remaining_usd(self) -> Decimal:
        return max(self.limit_usd - self.spent_usd, Decimal(0))

    @property
    def month(self) -> str:
        return self.month_label.split()[0] if self.month_label else ""


def _budget(view: BudgetAlertView, whose: str) -> str:
    return f"{whose} {money(view.limit_usd)} {view.month} budget".replace("  ", " ")


def _headline(view: BudgetAlertView, *, whose: str = "your", subject: str = "You") -> str:
    if view.kind == "forecast":
        if view.runs_out_on is None:
            return f"At this pace {_budget(view, whose)} may run out before the month ends"
        return f"At this pace {_budget(view, whose)} runs out on {day(view.runs_out_on)}"
    over = view.spent_usd - view.limit_usd
    verb = "are" if subject == "You" else "is"
    if over > 0:
        return f"{subject} {verb} {money(over)} over {_budget(view, whose)} ({percent(view.share)})"
    if over == 0:
        return f"{subject} {'have' if subject == 'You' else 'has'} used all of {_budget(view, whose)}"
    return (f"{subject} {'have' if subject == 'You' else 'has'} used {percent(view.share)} of {_budget(view, whose)}: "
            f"{money(view.remaining_usd)} left")


def _detail(view: BudgetAlertView) -> str:
    resets = f"resets {day(view.resets_on)}"
    if view.kind == "forecast":
        return (f"{money(view.spent_usd)} spent, {money(view.remaining_usd)} left · {money(view.pace_per_day)}/day "
                f"over the last 7 days · {resets}. Ask for more now, while there is still time.")
    if view.spent_usd >= view.limit_usd:
        if view.enforced:
            where = view.enforced if isinstance(view.enforced, str) else "Gateways that check tokenbot refuse"
            return (f"{money(view.spent_usd)} spent. {where} your calls until the budget "
                    f"{resets} or an approver raises it.")
        return f"{money(view.spent_usd)} spent. tokenbot does not block calls; the budget {resets}."
    line = f"{money(view.spent_usd)} spent"
    if view.pace_per_day > 0:
        by = f" by {day(view.month_end)}" if view.month_end else " by month end"
        line += f" · on pace for about {money(view.projected_usd)}{by}"
    return f"{line} · {resets}"


def alert_fallback(view: BudgetAlertView) -> str:
    return _headline(view)


def alert_blocks(view: BudgetAlertView) -> list[Block]:
    icon = ":chart_with_upwards_trend:" if view.kind == "forecast" else (
        ":no_entry:" if view.spent_usd > view.limit_usd else ":warning:")
    blocks: list[Block] = [section(f"{icon} *{_headline(view)}*\n{_detail(view)}")]
    if view.pending_request is not None:
        blocks.append(context("Your request for more budget is waiting for a decision."))
    else:
        blocks.append(actions(button("Request more budget", REQUEST_ACTION, value=view.user, style="primary"),
                              block_id="alert_actions"))
    return blocks


def alert_text(view: BudgetAlertView) -> str:
    lines = [_headline(view), f"  {_detail(view)}"]
    if view.pending_request is not None:
        lines.append("  Your request for more budget is waiting for a decision.")
    else:
        lines.append("  [Request more budget]")
    return "\n".join(lines)


def _known_name(view: BudgetAlertView) -> str:
    """Their display name, or a mention (Slack shows the name) when tokenbot does not know it."""
    return view.name if view.name and view.name != view.user else mention(view.user)


def approver_alert_fallback(view: BudgetAlertView) -> str:
    return _headline(view, whose="their", subject=_known_name(view))


def approver_alert_blocks(view: BudgetAlertView) -> list[Block]:
    return [
        section(f":rotating_light: *{_headline(view, whose='their', subject=mention(view.user))}*\n"
                f"{money(view.spent_usd)} spent this month; the budget resets {day(view.resets_on)}."),
        context("You approve their budget requests: if they ask for more, the request comes here with "
                "Approve and Deny."),
    ]


def approver_alert_text(view: BudgetAlertView) -> str:
    return (f"{_headline(view, whose='their', subject=view.name)}. {money(view.spent_usd)} spent this month. "
            "Their requests come to you.")
