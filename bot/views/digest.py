"""Channel digests: the view model (built by bot/digests/builder.py from rollups) -> Block Kit and plain text.

A digest is a handful of packed blocks whatever the size of the organisation: a header,
a context line with "data as of", one fields section with the totals, and one section per
topic whose lines are packed by `long_text_sections` (never one block per person). With
200 people, 50 models and long names it stays far inside Slack's limits (50 blocks,
3000 chars a section); `fit` guards the block count anyway.

Names in a channel digest are display names, not `<@mentions>`: a daily post must not
ping ten people every morning. A person whose name is unknown is shown as a mention.
Privacy (SPEC 3): "names" shows everyone; "anonymous" shows ranks and amounts without
names ("#1 — $123.45") and only counts for the per-person sections; "off" leaves the
leaderboard out (totals, models and counts stay).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from bot.views.blocks import (
    Block,
    clip,
    context,
    divider,
    escape,
    fields,
    fit,
    header,
    long_text_sections,
    mention,
    section,
)
from bot.views.format import money, percent, tokens

ZERO = Decimal(0)
LIST_LIMIT = 15  # rows shown in the budget, anomaly and unlinked lists before "and N more"


@dataclass(frozen=True)
class LeaderRow:
    rank: int
    user_key: str | None  # None when hidden (anonymous)
    name: str | None  # display name; None when unknown or hidden
    is_person: bool  # a Slack user, not an unlinked id
    cost_usd: Decimal
    tokens: int
    previous_cost_usd: Decimal  # the same person in the previous period


@dataclass(frozen=True)
class ModelRow:
    model: str
    cost_usd: Decimal
    tokens: int
    events: int


@dataclass(frozen=True)
class BudgetRow:
    user_key: str
    name: str | None
    spent_usd: Decimal
    limit_usd: Decimal

    @property
    def share(self) -> Decimal:
        return self.spent_usd / self.limit_usd if self.limit_usd > 0 else Decimal(1)


@dataclass(frozen=True)
class AnomalyRow:
    user_key: str
    name: str | None
    day: date
    cost_usd: Decimal
    median_usd: Decimal  # of the 14 calendar days before `day` (days without use count as $0)
    is_person: bool = True  # False for an unlinked id


@dataclass(frozen=True)
class UnlinkedRow:
    key: str
    cost_usd: Decimal
    tokens: int


@dataclass(frozen=True)
class UnpricedRow:
    model: str
    events: int
    tokens: int


@dataclass(frozen=True)
class DigestView:
    channel: str
    period: str  # "day" | "week"
    first: date
    last: date
    timezone: str
    as_of: datetime  # local time the rollups were read
    privacy: str  # "names" | "anonymous" | "off"
    top: int
    cost_usd: Decimal
    tokens: int
    events: int
    people: int  # people and unlinked ids with usage in the period
    previous_cost_usd: Decimal  # the previous period (day before / week before)
    baseline_cost_usd: Decimal  # trailing average for one period (7-day daily average / 4-week average)
    baseline_label: str  # "7-day average" | "4-week average"
    leaderboard: tuple[LeaderRow, ...] = ()
    models: tuple[ModelRow, ...] = ()
    month: str = ""  # "YYYY-MM" of `last`
    month_to_date_usd: Decimal = ZERO  # through `last`
    projected_usd: Decimal = ZERO
    budgets_usd: Decimal = ZERO  # the sum of the limits of the people who spent this month
    budget_people: int = 0
    over_budget: tuple[BudgetRow, ...] = ()  # past 80%, worst first
    anomalies: tuple[AnomalyRow, ...] = ()  # largest first
    unlinked: tuple[UnlinkedRow, ...] = ()
    unpriced: tuple[UnpricedRow, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def quiet(self) -> bool:
        return self.events == 0

    @property
    def unlinked_cost_usd(self) -> Decimal:
        return sum((u.cost_usd for u in self.unlinked), ZERO)


# -- wording shared by both renderers ----------------------------------------------------------------
def period_title(view: DigestView) -> str:
    if view.period == "week":
        span = f"{view.first:%a %-d %b} – {view.last:%a %-d %b %Y}"
        return f"AI spend — week of {span}"
    return f"AI spend — {view.first:%A %-d %B %Y}"


def previous_noun(view: DigestView) -> str:
    return "the week before" if view.period == "week" else f"{view.first - timedelta(days=1):%a}"


def change(current: Decimal, baseline: Decimal) -> str:
    """▲ 12% / ▼ 8% / ±0% against a baseline; "new" when there was nothing before."""
    if baseline <= 0:
        return "new" if current > 0 else "±0%"
    share = (current - baseline) / baseline
    if share >= 9:  # ten times or more: a factor reads better than "▲ 97314%"
        return f"▲ {(current / baseline).quantize(Decimal(1), rounding=ROUND_HALF_UP):,}×"
    rounded = (share * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    if rounded == 0:
        return "±0%"
    return f"{'▲' if rounded > 0 else '▼'} {abs(rounded)}%"


def as_of_text(view: DigestView) -> str:
    return f"Data as of {view.as_of:%a %-d %b, %H:%M %Z} ({view.timezone})"


def _who(user_key: str | None, name: str | None, is_person: bool, *, slack: bool) -> str:
    if user_key is None:
        return "someone"
    if not is_person:
        return (f"`{escape(user_key)}`" if slack else user_key) + " (unlinked)"
    if name:
        return escape(name) if slack else name
    return mention(user_key) if slack else user_key


def _more(total: int, shown: int) -> list[str]:
    return [f"…and {total - shown} more"] if total > shown else []


def fallback_text(view: DigestView) -> str:
    """The notification text (top-level `text`)."""
    if view.quiet:
        return f"{period_title(view)}: a quiet one, no AI usage recorded."
    return (f"{period_title(view)}: {money(view.cost_usd)} across {tokens(view.tokens)} tokens "
            f"({change(view.cost_usd, view.previous_cost_usd)} vs {previous_noun(view)})")


def _leader_line(row: LeaderRow, view: DigestView, *, slack: bool) -> str:
    trend = change(row.cost_usd, row.previous_cost_usd)
    if view.privacy == "anonymous":
        if slack:
            return f"`#{row.rank:<2}` — *{money(row.cost_usd)}* · {tokens(row.tokens)} tokens · {trend}"
        return f"  #{row.rank:<3} — {money(row.cost_usd):>11}  {tokens(row.tokens):>7} tokens  {trend}"
    who = _who(row.user_key, row.name, row.is_person, slack=slack)
    if slack:
        return f"`{row.rank:>2}.` {clip(who, 80)} — *{money(row.cost_usd)}* · {tokens(row.tokens)} tokens · {trend}"
    return f"  {row.rank:>2}. {clip(who, 28):<28} {money(row.cost_usd):>11}  {tokens(row.tokens):>7} tokens  {trend}"


def _model_line(row: ModelRow, view: DigestView, *, slack: bool) -> str:
    share = percent(row.cost_usd / view.cost_usd) if view.cost_usd > 0 else "–"
    if slack:
        return f"• `{escape(clip(row.model, 60))}` — *{money(row.cost_usd)}* · {tokens(row.tokens)} tokens · {share}"
    return f"  {clip(row.model, 28):<28} {money(row.cost_usd):>11}  {tokens(row.tokens):>7} tokens  {share:>4}"


def _month_line(view: DigestView) -> str:
    line = f"{money(view.month_to_date_usd)} month to date, {money(view.projected_usd)} projected by month end"
    if view.budgets_usd > 0:
        share = percent(view.projected_usd / view.budgets_usd)
        line += (f", against {money(view.budgets_usd)} of budgets for the {view.budget_people} "
                 f"{'person' if view.budget_people == 1 else 'people'} spending this month ({share})")
    return line


def _people_sections(view: DigestView, *, slack: bool) -> list[tuple[str, list[str]]]:
    """(title, lines) for the per-person and data-quality sections, privacy applied."""
    out: list[tuple[str, list[str]]] = []
    hide = view.privacy != "names"
    if view.over_budget:
        title = f"Past 80% of their budget ({len(view.over_budget)})"
        if hide:
            lines = [f"{len(view.over_budget)} {'person is' if len(view.over_budget) == 1 else 'people are'} "
                     "past 80% of their monthly budget."]
        else:
            rows = view.over_budget[:LIST_LIMIT]
            lines = [f"• {_who(r.user_key, r.name, True, slack=slack)} — {money(r.spent_usd)} of "
                     f"{money(r.limit_usd)} ({percent(r.share)})" for r in rows]
            lines += _more(len(view.over_budget), len(rows))
        out.append((title, lines))
    if view.anomalies:
        title = f"Unusual days ({len(view.anomalies)})"
        if hide:
            top = view.anomalies[0]
            lines = [f"{len(view.anomalies)} {'day was' if len(view.anomalies) == 1 else 'days were'} above "
                     f"3× the person's usual (14-day median); the largest was {money(top.cost_usd)}."]
        else:
            rows = view.anomalies[:LIST_LIMIT]
            lines = []
            for r in rows:
                usual = f"usual {money(r.median_usd)}" if r.median_usd > 0 else "no spend in the 14 days before"
                when = f" on {r.day:%a}" if view.period == "week" else ""
                lines.append(f"• {_who(r.user_key, r.name, r.is_person, slack=slack)} — {money(r.cost_usd)}{when} "
                             f"({usual})")
            lines += _more(len(view.anomalies), len(rows))
        out.append((title, lines))
    if view.unlinked or view.unpriced:
        lines = []
        if view.unlinked:
            count = len(view.unlinked)
            if hide:
                lines.append(f"{count} unlinked {'id carries' if count == 1 else 'ids carry'} "
                             f"{money(view.unlinked_cost_usd)}: link them with `/tokens admin link <id> @person`.")
            else:
                lines.append(f"Unlinked ids carry {money(view.unlinked_cost_usd)}; link them with "
                             "`/tokens admin link <id> @person`:")
                rows = view.unlinked[:LIST_LIMIT]
                lines += [f"• {_who(r.key, None, False, slack=slack)} — {money(r.cost_usd)} · "
                          f"{tokens(r.tokens)} tokens" for r in rows]
                lines += _more(count, len(rows))
        if view.unpriced:
            lines.append("Models without a price (counted as $0 until you add `[pricing.models]` and run "
                         "`tokenbot reprice`):")
            lines += [f"• {'`' + escape(r.model) + '`' if slack else r.model} — {r.events} "
                      f"{'call' if r.events == 1 else 'calls'} · {tokens(r.tokens)} tokens"
                      for r in view.unpriced[:LIST_LIMIT]]
            lines += _more(len(view.unpriced), min(len(view.unpriced), LIST_LIMIT))
        out.append(("Data to check", lines))
    return out


# -- Block Kit -----------------------------------------------------------------------------------------
def digest_blocks(view: DigestView) -> list[Block]:
    blocks: list[Block] = [header(period_title(view)), context(as_of_text(view))]
    if view.quiet:
        blocks.append(section(quiet_text(view)))
        return blocks
    baseline = f"{change(view.cost_usd, view.baseline_cost_usd)} vs {view.baseline_label}"
    blocks.append(fields([
        f"*Cost*\n{money(view.cost_usd)}  ({change(view.cost_usd, view.previous_cost_usd)} vs "
        f"{previous_noun(view)}, {baseline})",
        f"*Tokens*\n{tokens(view.tokens)} in {view.events:,} calls by {view.people} "
        f"{'person' if view.people == 1 else 'people'}",
        f"*Month to date ({view.month})*\n{money(view.month_to_date_usd)}",
        f"*Projected month end*\n{money(view.projected_usd)}"
        + (f" of {money(view.budgets_usd)} budgets" if view.budgets_usd > 0 else ""),
    ]))
    if view.privacy != "off" and view.leaderboard:
        title = f"*Top {len(view.leaderboard)} by cost*"
        if view.privacy == "anonymous":
            title += " _(names hidden)_"
        blocks += long_text_sections([title, *(_leader_line(r, view, slack=True) for r in view.leaderboard)])
    if view.models:
        blocks += long_text_sections(["*Top models*", *(_model_line(r, view, slack=True) for r in view.models)])
    for title, lines in _people_sections(view, slack=True):
        blocks += long_text_sections([f"*{title}*", *lines])
    blocks.append(divider())
    blocks.append(context(_month_line(view), *view.notes))
    return fit(blocks)


def quiet_text(view: DigestView) -> str:
    """A quiet period gets a short, friendly line, not an empty digest."""
    when = "last week" if view.period == "week" else f"on {view.first:%A}"
    return (f"A quiet {'week' if view.period == 'week' else 'day'}: no AI usage was recorded {when}. "
            f"Enjoy the calm. Month to date: {money(view.month_to_date_usd)}"
            + (f" of {money(view.budgets_usd)} budgets." if view.budgets_usd > 0 else "."))


# -- plain text (CLI dry runs, the demo) ----------------------------------------------------------------
def digest_text(view: DigestView) -> str:
    lines = [period_title(view), as_of_text(view), ""]
    if view.quiet:
        lines.append(quiet_text(view))
        return "\n".join(lines)
    lines.append(f"Cost {money(view.cost_usd)} ({change(view.cost_usd, view.previous_cost_usd)} vs "
                 f"{previous_noun(view)}, {change(view.cost_usd, view.baseline_cost_usd)} vs "
                 f"{view.baseline_label}) · {tokens(view.tokens)} tokens in {view.events:,} calls by "
                 f"{view.people} {'person' if view.people == 1 else 'people'}")
    lines.append(_month_line(view))
    if view.privacy != "off" and view.leaderboard:
        lines += ["", f"Top {len(view.leaderboard)} by cost" + (" (names hidden)" if view.privacy == "anonymous"
                                                                 else "")]
        lines += [_leader_line(r, view, slack=False) for r in view.leaderboard]
    if view.models:
        lines += ["", "Top models"] + [_model_line(r, view, slack=False) for r in view.models]
    for title, body in _people_sections(view, slack=False):
        lines += ["", title] + [f"  {line}" for line in body]
    lines += [f"({note})" for note in view.notes]
    return "\n".join(lines)
