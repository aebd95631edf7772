"""The personal spend card (`/tokens me`, the App Home) and the budget answer (`/tokens budget`).

View models are plain dataclasses filled by bot/card_builder.py; this module only turns them into
Block Kit (through bot/views/blocks.py) and into plain text (the demo, notification
fallbacks). Amounts are exact Decimals in the models and rounded for people only here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from bot.budgets import BudgetStatus
from bot.views.approvals import REQUEST_ACTION
from bot.views.blocks import (
    Block,
    actions,
    bar,
    button,
    context,
    escape,
    fields,
    header,
    mention,
    section,
    sparkline,
)
from bot.views.format import money, percent, tokens
from storage.measures import Measures


@dataclass(kw_only=True)
class PeriodFigures(Measures):
    """A window's totals on the card (Measures are summed in place, so this is not frozen either)."""

    label: str  # "Today", "Last 7 days", "Month to date"
    first: date
    last: date


@dataclass(frozen=True, kw_only=True)
class BudgetFigures(BudgetStatus):
    """Where the person stands (bot.budgets.BudgetStatus) and where the month is heading."""

    burn_rate_usd: Decimal  # per day, trailing 7 local days
    projected_usd: Decimal  # month-to-date + burn rate * days left
    runs_out_on: date | None  # first day the projection passes the limit, if within the month
    month_end: date


@dataclass(frozen=True)
class ModelLine:
    model: str
    tokens: int
    cost_usd: Decimal


@dataclass(frozen=True)
class PendingView:
    id: int
    amount_usd: Decimal
    scope: str  # "month" | "standing"
    reason: str | None
    created_on: date
    approvers: tuple[str, ...]


@dataclass(frozen=True)
class CardView:
    user_id: str
    name: str | None
    as_of: datetime | None  # local time; None in fingerprints
    timezone: str
    today: PeriodFigures
    week: PeriodFigures
    month: PeriodFigures
    budget: BudgetFigures
    rank: int | None  # this month, by cost, among everyone with spend
    ranked: int
    top_models: tuple[ModelLine, ...]
    trend: tuple[tuple[date, Decimal], ...]  # the last 14 local days, oldest first
    pending: PendingView | None
    linked_ids: tuple[str, ...] = field(default=())

    @property
    def periods(self) -> tuple[PeriodFigures, ...]:
        return (self.today, self.week, self.month)


@dataclass(frozen=True)
class BudgetView:
    user_id: str
    name: str | None
    is_self: bool
    budget: BudgetFigures
    pending: PendingView | None
    approvers: tuple[str, ...]


# -- shared phrases ------------------------------------------------------------------------------

def day_label(day: date) -> str:
    return f"{day:%a} {day.day} {day:%b}"


def _period_line(p: PeriodFigures) -> str:
    detail = f"input {tokens(p.input_tokens)}"
    if p.cached_input_tokens:
        detail += f" (cached {tokens(p.cached_input_tokens)})"
    detail += f", output {tokens(p.output_tokens)}"
    if p.reasoning_tokens:
        detail += f" (reasoning {tokens(p.reasoning_tokens)})"
    return f"{money(p.cost_usd)} · {tokens(p.tokens)} tokens ({detail})"


def _budget_line(b: BudgetFigures) -> str:
    line = f"{money(b.limit_usd)} this month"
    if b.raises_usd:
        line += f" ({money(b.standing_usd)} + {money(b.raises_usd)} raised for this month)"
    return line


def _usage_line(b: BudgetFigures) -> str:
    left = "nothing left" if b.remaining_usd == 0 else f"{money(b.remaining_usd)} left"
    return f"{percent(b.used_share)} used · {money(b.spent_usd)} spent · {left} · resets {day_label(b.resets_on)}"


def _pace_line(b: BudgetFigures) -> str:
    if b.burn_rate_usd == 0:
        line = f"No spend in the last 7 days: about {money(b.projected_usd)} by {day_label(b.month_end)}"
    else:
        line = (f"{money(b.burn_rate_usd)}/day over the last 7 days → about {money(b.projected_usd)} "
                f"by {day_label(b.month_end)}")
    if b.spent_usd >= b.limit_usd:
        return line + "; the budget is used up."
    if b.burn_rate_usd == 0:
        return line + "."
    if b.runs_out_on is not None:
        return line + f"; at this pace the budget runs out on {day_label(b.runs_out_on)}."
    return line + "; within budget at this pace."


def _pending_line(p: PendingView, *, slack: bool) -> str:
    scope = "for this month" if p.scope == "month" else "from now on"
    who = ", ".join(mention(a) if slack else a for a in p.approvers) or "an approver"
    line = f"{money(p.amount_usd)} more {scope}, asked {day_label(p.created_on)}, waiting for {who}"
    if p.reason:
        line += f": “{escape(p.reason) if slack else p.reason}”"
    return line


def _rank_line(view: CardView) -> str:
    if view.rank is None:
        return "not ranked yet: no spend this month"
    return f"#{view.rank} of {view.ranked}"


def _trend_line(view: CardView) -> str:
    values = [float(v) for _, v in view.trend]
    spark = sparkline(values)
    if not view.trend:
        return spark
    peak_day, peak = max(view.trend, key=lambda item: (item[1], item[0]))
    if peak == 0:
        return f"{spark}  no spend"
    return f"{spark}  peak {money(peak)} on {day_label(peak_day)}"


def card_fallback(view: CardView) -> str:
    """The notification text of a card message."""
    b = view.budget
    return (f"Your AI spend: {money(view.month.cost_usd)} this month of {money(b.limit_usd)} "
            f"({percent(b.used_share)}), {money(view.today.cost_usd)} today")


# -- Block Kit -----------------------------------------------------------------------------------

def card_blocks(view: CardView, *, title: str = "Your AI spend", with_button: bool = True) -> list[Block]:
    b = view.budget
    blocks: list[Block] = [header(title)]
    blocks.append(section("\n".join(f"*{p.label}*  {_period_line(p)}" for p in view.periods)))
    blocks.append(section(
        f"*Budget*  {_budget_line(b)}\n`{bar(float(min(b.used_share, Decimal(1))))}`  {_usage_line(b)}\n"
        f"*Pace*  {_pace_line(b)}"
    ))
    models = "\n".join(f"{escape(m.model)}  {money(m.cost_usd)} · {tokens(m.tokens)}" for m in view.top_models)
    blocks.append(fields([
        f"*Rank this month*\n{_rank_line(view)}",
        f"*Top models this month*\n{models or 'none yet'}",
    ]))
    blocks.append(section(f"*Last 14 days*  `{_trend_line(view)}`"))
    if view.pending is not None:
        blocks.append(section(f":hourglass_flowing_sand: *Pending request*  {_pending_line(view.pending, slack=True)}"))
    elif with_button:
        blocks.append(actions(
            button("Request more budget", REQUEST_ACTION, value=view.user_id, style="primary"),
            block_id="card_actions",
        ))
    notes = []
    if view.as_of is not None:
        notes.append(f"As of {view.as_of:%H:%M} {view.timezone} · US dollars")
    if view.linked_ids:
        notes.append("Includes spend sent as " + ", ".join(f"`{escape(i)}`" for i in view.linked_ids[:5]))
    if notes:
        blocks.append(context(*notes))
    return blocks


def card_text(view: CardView, *, title: str = "Your AI spend") -> str:
    b = view.budget
    who = f" — {view.name}" if view.name else ""
    when = f" (as of {day_label(view.as_of.date())} {view.as_of:%H:%M} {view.timezone})" if view.as_of else ""
    lines = [f"{title}{who}{when}"]
    for p in view.periods:
        lines.append(f"  {p.label:<14} {_period_line(p)}")
    lines.append(f"Budget: {_budget_line(b)}")
    lines.append(f"  [{bar(float(min(b.used_share, Decimal(1))))}] {_usage_line(b)}")
    lines.append(f"Pace: {_pace_line(b)}")
    lines.append(f"Rank this month: {_rank_line(view)}")
    if view.top_models:
        lines.append("Top models this month: " + ", ".join(
            f"{m.model} {money(m.cost_usd)} ({tokens(m.tokens)} tokens)" for m in view.top_models))
    lines.append(f"Last 14 days: {_trend_line(view)}")
    if view.pending is not None:
        lines.append(f"Pending request: {_pending_line(view.pending, slack=False)}")
    else:
        lines.append("[ Request more budget ]")
    return "\n".join(lines)


def budget_fallback(view: BudgetView) -> str:
    b = view.budget
    whose = "Your" if view.is_self else f"{view.name or view.user_id}'s"
    return f"{whose} budget: {money(b.spent_usd)} of {money(b.limit_usd)} used this month"


def budget_blocks(view: BudgetView) -> list[Block]:
    b = view.budget
    title = "Your budget" if view.is_self else "Budget"
    who = "" if view.is_self else f"{mention(view.user_id)}\n"
    blocks: list[Block] = [header(title)]
    blocks.append(section(
        f"{who}*Limit*  {_budget_line(b)}\n`{bar(float(min(b.used_share, Decimal(1))))}`  {_usage_line(b)}\n"
        f"*Pace*  {_pace_line(b)}"
    ))
    if view.pending is not None:
        blocks.append(section(f":hourglass_flowing_sand: *Pending request*  {_pending_line(view.pending, slack=True)}"))
    if view.approvers:
        blocks.append(context("Approver: " + ", ".join(mention(a) for a in view.approvers)))
    if view.is_self and view.pending is None:
        blocks.append(actions(
            button("Request more budget", REQUEST_ACTION, value=view.user_id, style="primary"),
            block_id="budget_actions",
        ))
    return blocks


def budget_text(view: BudgetView) -> str:
    b = view.budget
    title = "Your budget" if view.is_self else f"Budget of {view.name or view.user_id}"
    lines = [title, f"  Limit: {_budget_line(b)}",
             f"  [{bar(float(min(b.used_share, Decimal(1))))}] {_usage_line(b)}", f"  Pace: {_pace_line(b)}"]
    if view.pending is not None:
        lines.append(f"  Pending request: {_pending_line(view.pending, slack=False)}")
    if view.approvers:
        lines.append("  Approver: " + ", ".join(view.approvers))
    return "\n".join(lines)
