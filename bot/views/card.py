"""The personal spend card (`/tokens me`, the App Home) and the budget answer (`/tokens budget`).

View models are plain dataclasses filled by bot/card_builder.py; this module only turns them into
Block Kit (through bot/views/blocks.py) and into plain text (the demo). Amounts are exact Decimals
in the models and rounded for people only here (bot/views/format.py).

The card answers first: the first line says what is spent, what is left of the budget (or how
much over, and whether calls are refused), the pace and the reset day. The periods follow as
fields, the token breakdown and top models in small context text. Someone with no usage gets
one line saying how usage arrives, not rows of zeros. No text bars: the used share is said in
words, which a screen reader reads once instead of twenty "dark shade"s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from bot.budgets import BudgetStatus
from bot.views.approvals import REQUEST_ACTION
from bot.views.blocks import Block, actions, button, context, escape, fields, header, mention, section
from bot.views.format import change, day, moment_text, money, percent, plural, slack_moment, tokens
from storage.measures import Measures

WATCH_SHARE = Decimal("0.8")  # from here on "Request more budget" is the card's primary button


@dataclass(kw_only=True)
class PeriodFigures(Measures):
    """A window's totals on the card (Measures are summed in place, so this is not frozen either)."""

    label: str  # "Today", "Last 7 days", "This month"
    first: date
    last: date


@dataclass(frozen=True, kw_only=True)
class BudgetFigures(BudgetStatus):
    """Where the person stands (bot.budgets.BudgetStatus) and where the month is heading."""

    burn_rate_usd: Decimal  # per day, trailing 7 local days
    projected_usd: Decimal  # month-to-date + burn rate * days left
    runs_out_on: date | None  # first day the projection passes the limit, if within the month
    month_end: date
    month_label: str = ""  # "November"
    enforced: bool | str = False  # where over means refused (card_builder.limits_enforced), or just True

    @property
    def over_usd(self) -> Decimal:
        return max(self.spent_usd - self.limit_usd, Decimal(0))


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
    created_at: datetime  # in the organisation's zone
    approvers: tuple[str, ...]
    approver_names: tuple[str, ...] = ()  # for the text twin


@dataclass(frozen=True)
class OutputFigures:
    """Claude Code this month (SPEC 10): what the tokens produced, and its estimated cost."""

    sessions: int = 0
    lines_added: int = 0
    lines_removed: int = 0
    commits: int = 0
    pull_requests: int = 0
    estimated_cost_usd: Decimal = Decimal(0)

    def line(self) -> str:
        parts = [f"{self.sessions:,} sessions", f"{self.commits:,} commits", f"{self.pull_requests:,} PRs",
                 f"+{self.lines_added:,}/−{self.lines_removed:,} lines"]
        if self.pull_requests:
            parts.append(f"{money(self.estimated_cost_usd / self.pull_requests)} per PR")
        return " · ".join(parts)


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
    rank: int | None  # this month, by cost, among the people (not unlinked ids) with spend
    ranked: int  # people with spend this month
    top_models: tuple[ModelLine, ...]
    previous_week_usd: Decimal  # the 7 days before `week`
    pending: PendingView | None
    linked_ids: tuple[str, ...] = field(default=())
    output: OutputFigures | None = None  # Claude Code this month, where the Anthropic source pulls it

    @property
    def periods(self) -> tuple[PeriodFigures, ...]:
        return (self.today, self.week, self.month)

    @property
    def no_usage(self) -> bool:
        """Nothing this month and nothing in the last 7 days: the first-run card."""
        return self.month.events == 0 and self.week.events == 0


@dataclass(frozen=True)
class BudgetView:
    user_id: str
    name: str | None
    is_self: bool
    budget: BudgetFigures
    pending: PendingView | None
    approvers: tuple[str, ...]
    approver_names: tuple[str, ...] = ()


# -- shared phrases ------------------------------------------------------------------------------

def standing_line(b: BudgetFigures, *, is_self: bool = True, with_month: bool = True) -> str:
    """The answer: spent and left (or how much over) of the limit, with the share. mrkdwn-free."""
    whose = "your" if is_self else "their"
    month = f" {b.month_label}" if b.month_label and with_month else ""
    if b.spent_usd > b.limit_usd:
        return (f"{money(b.spent_usd)} spent: {money(b.over_usd)} over {whose} {money(b.limit_usd)}{month} budget "
                f"({percent(b.used_share)})")
    if b.remaining_usd == 0:
        return f"{money(b.spent_usd)} spent: all of {whose} {money(b.limit_usd)}{month} budget"
    return (f"{money(b.spent_usd)} spent, {money(b.remaining_usd)} left of {whose} {money(b.limit_usd)}{month} "
            f"budget ({percent(b.used_share)})")


def outlook_line(b: BudgetFigures, *, is_self: bool = True) -> str:
    """Pace and reset day; over budget, whether calls are refused."""
    resets = f"resets {day(b.resets_on)}"
    if b.spent_usd >= b.limit_usd:
        if b.enforced:
            whose = "your" if is_self else "their"
            where = b.enforced if isinstance(b.enforced, str) else "Gateways that check tokenbot refuse"
            return (f"{where} {whose} calls until the budget resets on "
                    f"{day(b.resets_on)} or an approver raises it.")
        return f"tokenbot does not block calls; the budget {resets}."
    if b.burn_rate_usd == 0:
        return f"No spend in the last 7 days · {resets}"
    if b.runs_out_on is not None:
        return f"At {money(b.burn_rate_usd)}/day it runs out on {day(b.runs_out_on)} · {resets}"
    return f"On pace for about {money(b.projected_usd)} by {day(b.month_end)} · {resets}"


def raises_line(b: BudgetFigures) -> str | None:
    if not b.raises_usd:
        return None
    return f"{money(b.limit_usd)} = {money(b.standing_usd)} standing + {money(b.raises_usd)} raised for this month"


def _period_value(p: PeriodFigures) -> str:
    return f"{money(p.cost_usd)} · {tokens(p.tokens)} tokens"


def breakdown_line(p: PeriodFigures) -> str:
    """29.9M tokens this month: 25.3M input (5.73M cached), 4.59M output (127K reasoning)."""
    detail = f"{tokens(p.input_tokens)} input"
    if p.cached_input_tokens:
        detail += f" ({tokens(p.cached_input_tokens)} cached)"
    detail += f", {tokens(p.output_tokens)} output"
    if p.reasoning_tokens:
        detail += f" ({tokens(p.reasoning_tokens)} reasoning)"
    return f"{tokens(p.tokens)} tokens {p.label.lower()}: {detail}"


def _models_line(view: CardView, *, slack: bool) -> str | None:
    if not view.top_models:
        return None
    return "Top models: " + ", ".join(f"{escape(m.model) if slack else m.model} {money(m.cost_usd)}"
                                      for m in view.top_models)


def _top_model(view: CardView) -> str:
    if not view.top_models:
        return "none yet"
    top = view.top_models[0]
    return f"{escape(top.model)} · {money(top.cost_usd)}"


def _rank_text(view: CardView) -> str:
    if view.rank is None:
        return "not ranked: no spend yet"
    return f"#{view.rank} of {plural(view.ranked, 'person', 'people')}"


def pending_line(p: PendingView, *, slack: bool) -> str:
    scope = "this month only" if p.scope == "month" else "from now on"
    names = p.approvers if slack else (p.approver_names or p.approvers)
    who = " or ".join(mention(a) if slack else a for a in names) or "an approver"
    since = slack_moment(p.created_at) if slack else moment_text(p.created_at)
    return f"Your request for {money(p.amount_usd)} more ({scope}) is waiting for {who}, asked {since}."


def card_fallback(view: CardView) -> str:
    """The notification text: the answer, as the first line says it."""
    if view.no_usage:
        return f"No AI usage from you yet this month; your budget is {money(view.budget.limit_usd)}."
    return standing_line(view.budget)[0].upper() + standing_line(view.budget)[1:]


def _no_usage_text(view: CardView) -> str:
    return ("No AI usage from you yet. Your calls show up here once they go through a gateway that reports to "
            "tokenbot, under your Slack account, your email or a key an admin linked to you.")


# -- Block Kit -----------------------------------------------------------------------------------

def card_blocks(view: CardView, *, title: str = "Your AI spend", with_button: bool = True,
                quiet_button: bool = False) -> list[Block]:
    """`quiet_button`: never primary (the App Home, where a decision waiting above is the primary action)."""
    b = view.budget
    month = f" in {b.month_label}" if b.month_label else ""
    blocks: list[Block] = [header(f"{title}{month}")]
    if view.no_usage:
        blocks.append(section(_no_usage_text(view)))
        blocks.append(context(f"Your budget: {money(b.limit_usd)} a month · resets {day(b.resets_on)} · "
                              "`/tokens help` for everything else"))
        return blocks
    over = b.spent_usd > b.limit_usd
    icon = ":no_entry: " if over else ""
    blocks.append(section(f"{icon}*{standing_line(b, with_month=not month)}*\n{outlook_line(b)}"))
    week_change = change(view.week.cost_usd, view.previous_week_usd)
    blocks.append(fields([
        f"*Today*\n{_period_value(view.today)}",
        f"*Last 7 days*\n{_period_value(view.week)}\n{week_change} week on week",
        f"*Rank this month*\n{_rank_text(view)}",
        f"*Top model*\n{_top_model(view)}",
    ]))
    notes = [breakdown_line(view.month)]
    if len(view.top_models) > 1:
        notes.append("then " + ", ".join(f"{escape(m.model)} {money(m.cost_usd)}" for m in view.top_models[1:]))
    if (raised := raises_line(b)) is not None:
        notes.append(raised)
    if view.linked_ids:
        notes.append("includes spend sent as " + ", ".join(f"`{escape(i)}`" for i in view.linked_ids[:5]))
    blocks.append(context(" · ".join(notes)))
    if view.output is not None:
        blocks.append(section(f"*Claude Code this month*\n{view.output.line()}"))
        blocks.append(context(f"Anthropic's estimate for these sessions: {money(view.output.estimated_cost_usd)}; "
                              "your spend above counts the calls themselves, from usage"))
    if view.pending is not None:
        blocks.append(section(f":hourglass_flowing_sand: {pending_line(view.pending, slack=True)}"))
    elif with_button:
        urgent = not quiet_button and (over or b.used_share >= WATCH_SHARE or b.runs_out_on is not None)
        blocks.append(actions(
            button("Request more budget", REQUEST_ACTION, value=view.user_id, style="primary" if urgent else None),
            block_id="card_actions",
        ))
    if view.as_of is not None:
        blocks.append(context(f"As of {slack_moment(view.as_of)} · US dollars"))
    return blocks


def card_text(view: CardView, *, title: str = "Your AI spend") -> str:
    b = view.budget
    who = f" — {view.name}" if view.name else ""
    when = f" (as of {moment_text(view.as_of)})" if view.as_of else ""
    lines = [f"{title}{who}{when}"]
    if view.no_usage:
        return "\n".join([*lines, _no_usage_text(view), f"Your budget: {money(b.limit_usd)} a month."])
    lines += [standing_line(b)[0].upper() + standing_line(b)[1:], outlook_line(b)]
    for p in view.periods:
        lines.append(f"  {p.label:<12} {_period_value(p)}")
    lines.append(f"  Last 7 days {change(view.week.cost_usd, view.previous_week_usd)} week on week; "
                 f"rank this month {_rank_text(view)}")
    lines.append(f"  {breakdown_line(view.month)}")
    if (models := _models_line(view, slack=False)) is not None:
        lines.append(f"  {models}")
    if (raised := raises_line(b)) is not None:
        lines.append(f"  {raised}")
    if view.output is not None:
        lines.append(f"  Claude Code this month: {view.output.line()}")
    if view.pending is not None:
        lines.append(pending_line(view.pending, slack=False))
    else:
        lines.append("[ Request more budget ]")
    return "\n".join(lines)


def budget_fallback(view: BudgetView) -> str:
    line = standing_line(view.budget, is_self=view.is_self)
    if view.is_self:
        return line[0].upper() + line[1:]
    return f"{view.name or view.user_id}: {line}"


def budget_blocks(view: BudgetView) -> list[Block]:
    b = view.budget
    title = "Your budget" if view.is_self else f"{view.name}'s budget" if view.name else "Their budget"
    blocks: list[Block] = [header(title)]
    who = "" if view.is_self else f"{mention(view.user_id)}: "
    over = b.spent_usd > b.limit_usd
    blocks.append(section(f"{':no_entry: ' if over else ''}{who}*{standing_line(b, is_self=view.is_self)}*\n"
                          f"{outlook_line(b, is_self=view.is_self)}"))
    notes = [n for n in (raises_line(b),) if n]
    if view.approvers:
        notes.append("Approver: " + ", ".join(mention(a) for a in view.approvers))
    if notes:
        blocks.append(context(" · ".join(notes)))
    if view.pending is not None:
        line = pending_line(view.pending, slack=True)
        if not view.is_self:
            line = line.replace("Your request", "Their request", 1)
        blocks.append(section(f":hourglass_flowing_sand: {line}"))
    elif view.is_self:
        urgent = over or b.used_share >= WATCH_SHARE or b.runs_out_on is not None
        blocks.append(actions(
            button("Request more budget", REQUEST_ACTION, value=view.user_id, style="primary" if urgent else None),
            block_id="budget_actions",
        ))
    return blocks


def budget_text(view: BudgetView) -> str:
    b = view.budget
    title = "Your budget" if view.is_self else f"Budget of {view.name or view.user_id}"
    lines = [title, f"  {standing_line(b, is_self=view.is_self)}", f"  {outlook_line(b, is_self=view.is_self)}"]
    if (raised := raises_line(b)) is not None:
        lines.append(f"  {raised}")
    if view.pending is not None:
        lines.append(f"  {pending_line(view.pending, slack=False)}")
    if view.approvers:
        lines.append("  Approver: " + ", ".join(view.approver_names or view.approvers))
    return "\n".join(lines)
