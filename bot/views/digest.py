"""Channel digests: the view model (built by bot/digests/builder.py from rollups) -> Block Kit and plain text.

The channel message answers first and fits a phone screen: a header naming the day or week, one
headline section (the total against the period before and the trailing average; the month so far
against the budgets), for a weekly digest the week's biggest movers, the top 5 as a table (one
table a message, amounts right-aligned), and one context line (models, who is near their budget,
unusual days, "as of"). The details (the rest of the top N, models, the budget and anomaly lists)
go in a reply in the digest's thread (`details_blocks`), with the chart; nothing is said twice.

Admin matters ("Data to check": unlinked ids, models without a price) are not posted to the
channel, where they would teach everyone admin commands: admins see them in their App Home
(bot/data_check.py). The plain text (the CLI's dry run, the demo) still lists them for the
operator running it.

Names in a channel digest are display names, not `<@mentions>`: a daily post must not ping ten
people every morning. Privacy (SPEC 3): "names" shows everyone; "anonymous" shows ranks and
amounts without names and only counts for the per-person lists; "off" leaves the leaderboard
and the movers out (totals, models and counts stay).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from bot.views.blocks import (
    Block,
    clip,
    context,
    escape,
    fit,
    header,
    long_text_sections,
    section,
    table,
)
from bot.views.format import (
    change,
    day,
    moment_text,
    money,
    percent,
    plural,
    slack_moment,
    tokens,
    weekday,
)
from bot.views.team_digest import TeamLine, teams_section_lines, teams_section_text

ZERO = Decimal(0)
LIST_LIMIT = 15  # rows shown in the budget, anomaly and unlinked lists before "and N more"
CHANNEL_TOP = 5  # leaderboard rows in the channel message; the rest of the top N go in the thread
MOVERS_SHOWN = 3


@dataclass(frozen=True)
class LeaderRow:
    rank: int
    user_key: str | None  # None when hidden (anonymous)
    name: str | None  # display name; None when unknown or hidden
    is_person: bool  # a Slack user, not an unlinked id
    cost_usd: Decimal
    tokens: int
    previous_cost_usd: Decimal  # the same person in the previous period
    output: str | None = None  # Claude Code output in the period (leaderboard.show_output, SPEC 10)


@dataclass(frozen=True)
class MoverRow:
    """A person whose spend moved most against the previous period (weekly digests)."""

    user_key: str
    name: str | None
    cost_usd: Decimal
    previous_cost_usd: Decimal

    @property
    def delta(self) -> Decimal:
        return self.cost_usd - self.previous_cost_usd


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
    movers: tuple[MoverRow, ...] = ()  # weekly digests, privacy "names": the biggest changes, largest first
    breaker_trips: tuple[str, ...] = ()  # the runaway breaker's trips in the period (bot/breaker/digest.py)
    teams: tuple[TeamLine, ...] = ()  # [teams]: each team's spend, change, share of budget (bot/teams/section.py)

    @property
    def quiet(self) -> bool:
        return self.events == 0

    @property
    def unlinked_cost_usd(self) -> Decimal:
        return sum((u.cost_usd for u in self.unlinked), ZERO)


# -- wording shared by both renderers ----------------------------------------------------------------
def period_title(view: DigestView) -> str:
    if view.period == "week":
        last = f"{view.last.day}" if view.last.month == view.first.month else day(view.last)
        return f"AI spend, week of {day(view.first)} – {last}"
    return f"AI spend, {weekday(view.first)}"


def previous_noun(view: DigestView) -> str:
    return "the week before" if view.period == "week" else f"{view.first - timedelta(days=1):%A}"


def _previous_short(view: DigestView) -> str:
    return "vs prev wk" if view.period == "week" else f"vs {view.first - timedelta(days=1):%a}"


def as_of_text(view: DigestView, *, slack: bool = False) -> str:
    return f"Data as of {slack_moment(view.as_of) if slack else moment_text(view.as_of)}"


def _who(user_key: str | None, name: str | None, is_person: bool, *, slack: bool) -> str:
    if user_key is None:
        return "someone"
    if not is_person:
        return (escape(user_key) if slack else user_key) + " (unlinked)"
    if name:
        return escape(name) if slack else name
    return user_key  # no mention in a channel: nobody is pinged by a digest


def _more(total: int, shown: int) -> list[str]:
    return [f"…and {total - shown} more"] if total > shown else []


def fallback_text(view: DigestView) -> str:
    """The notification text (top-level `text`)."""
    if view.quiet:
        return f"{period_title(view)}: a quiet one, no AI usage recorded."
    return (f"{period_title(view)}: {money(view.cost_usd)} across {tokens(view.tokens)} tokens "
            f"({change(view.cost_usd, view.previous_cost_usd)} on {previous_noun(view)})")


def _month_line(view: DigestView) -> str:
    month = f"{date.fromisoformat(view.month + '-01'):%B}" if view.month else "The month"
    line = f"{month} so far {money(view.month_to_date_usd)}, on pace for {money(view.projected_usd)}"
    if view.budgets_usd > 0:
        line += f" of {money(view.budgets_usd)} in budgets ({percent(view.projected_usd / view.budgets_usd)})"
    return line


def headline(view: DigestView, *, slack: bool) -> list[str]:
    """The answer: the total against the period before and the average, then who and the month."""
    total = f"*{money(view.cost_usd)}*" if slack else money(view.cost_usd)
    return [f"{total} on {tokens(view.tokens)} tokens · {change(view.cost_usd, view.previous_cost_usd)} on "
            f"{previous_noun(view)} · {change(view.cost_usd, view.baseline_cost_usd)} on the {view.baseline_label}",
            f"{plural(view.people, 'person', 'people')} · {_month_line(view)}"]


def _movers_line(view: DigestView, *, slack: bool) -> str | None:
    if view.privacy != "names" or not view.movers:
        return None
    parts = [f"{_who(m.user_key, m.name, True, slack=slack)} {'up' if m.delta > 0 else 'down'} {money(abs(m.delta))}"
             for m in view.movers]
    title = "*Biggest movers*" if slack else "Biggest movers"
    return f"{title}: " + " · ".join(parts)


def _leader_cells(row: LeaderRow, view: DigestView) -> list[str]:
    who = _who(row.user_key, row.name, row.is_person, slack=False) if view.privacy == "names" else "someone"
    return [f"{row.rank}. {clip(who, 60)}", money(row.cost_usd), tokens(row.tokens),
            change(row.cost_usd, row.previous_cost_usd)]


def _leader_table(rows: tuple[LeaderRow, ...], view: DigestView) -> Block:
    titles = ["Who", "Cost", "Tokens", _previous_short(view)]
    if any(r.output for r in rows):  # leaderboard.show_output: what the spend produced, beside it
        return table([[*titles, "Output"], *([*_leader_cells(r, view), r.output or ""] for r in rows)],
                     align=["left", "right", "right", "right", "left"], wrap=[True, False, False, False, True])
    return table([titles, *(_leader_cells(r, view) for r in rows)], align=["left", "right", "right", "right"],
                 wrap=[True, False, False, False])


def _summary(view: DigestView) -> str:
    """The context line: what the thread holds, in counts."""
    parts = []
    if view.models and view.cost_usd > 0:
        parts.append("Models: " + ", ".join(f"{escape(clip(m.model, 40))} {percent(m.cost_usd / view.cost_usd)}"
                                             for m in view.models[:3]))
    if view.over_budget:
        parts.append(f"{plural(len(view.over_budget), 'person', 'people')} past 80% of budget")
    if view.anomalies:
        parts.append(plural(len(view.anomalies), "unusual day"))
    if view.privacy == "anonymous":
        parts.append("names hidden (privacy setting)")
    return " · ".join(parts)


def _people_sections(view: DigestView, *, slack: bool) -> list[tuple[str, list[str]]]:
    """(title, lines) for the per-person lists, privacy applied."""
    out: list[tuple[str, list[str]]] = []
    hide = view.privacy != "names"
    if view.over_budget:
        title = f"Past 80% of their budget ({len(view.over_budget)})"
        if hide:
            lines = [f"{plural(len(view.over_budget), 'person is', 'people are')} past 80% of their monthly budget."]
        else:
            rows = view.over_budget[:LIST_LIMIT]
            lines = [f"• {_who(r.user_key, r.name, True, slack=slack)}: {money(r.spent_usd)} of "
                     f"{money(r.limit_usd)} ({percent(r.share)})" for r in rows]
            lines += _more(len(view.over_budget), len(rows))
        out.append((title, lines))
    if view.anomalies:
        title = f"Unusual days ({len(view.anomalies)})"
        if hide:
            top = view.anomalies[0]
            lines = [f"{plural(len(view.anomalies), 'day was', 'days were')} above 3× the person's usual "
                     f"(14-day median); the largest was {money(top.cost_usd)}."]
        else:
            rows = view.anomalies[:LIST_LIMIT]
            lines = []
            for r in rows:
                usual = f"usual {money(r.median_usd)}" if r.median_usd > 0 else "no spend in the 14 days before"
                when = f" on {r.day:%A}" if view.period == "week" else ""
                lines.append(f"• {_who(r.user_key, r.name, r.is_person, slack=slack)}: {money(r.cost_usd)}{when} "
                             f"({usual})")
            lines += _more(len(view.anomalies), len(rows))
        out.append((title, lines))
    return out


def data_to_check_lines(view: DigestView) -> list[str]:
    """For operators (the CLI, admins): unlinked ids and models without a price, with what to do."""
    lines = []
    if view.unlinked:
        lines.append(f"Unlinked ids carry {money(view.unlinked_cost_usd)}; link them with "
                     "/tokens admin link <id> @person:")
        rows = view.unlinked[:LIST_LIMIT]
        lines += [f"• {r.key}: {money(r.cost_usd)} · {tokens(r.tokens)} tokens" for r in rows]
        lines += _more(len(view.unlinked), len(rows))
    if view.unpriced:
        lines.append("Models without a price (counted as $0 until you add [pricing.models] and run tokenbot reprice):")
        rows = view.unpriced[:LIST_LIMIT]
        lines += [f"• {r.model}: {plural(r.events, 'call')} · {tokens(r.tokens)} tokens" for r in rows]
        lines += _more(len(view.unpriced), len(rows))
    return lines


# -- Block Kit -----------------------------------------------------------------------------------------
def digest_blocks(view: DigestView) -> list[Block]:
    """The channel message: header, headline, movers (weekly), the top 5 table, one context line."""
    blocks: list[Block] = [header(period_title(view))]
    if view.quiet:
        blocks.append(section(quiet_text(view)))
        blocks.append(context(as_of_text(view, slack=True)))
        return blocks
    blocks.append(section("\n".join(headline(view, slack=True))))
    if (movers := _movers_line(view, slack=True)) is not None:
        blocks.append(section(movers))
    if view.privacy != "off" and view.leaderboard:
        blocks.append(_leader_table(view.leaderboard[:CHANNEL_TOP], view))
    if view.breaker_trips:
        blocks.append(section(":rotating_light: *Runaway breaker*\n" + "\n".join(f"• {t}" for t in view.breaker_trips)))
    summary = " · ".join(part for part in (_summary(view), "details and chart in the thread") if part)
    blocks.append(context(summary[0].upper() + summary[1:], as_of_text(view, slack=True)))
    return fit(blocks)


def details_fallback(view: DigestView) -> str:
    return f"Details of the {'weekly' if view.period == 'week' else 'daily'} digest: models, budgets, unusual days"


def details_blocks(view: DigestView) -> list[Block]:
    """The thread reply: the rest of the top N, the models, and the per-person lists."""
    blocks: list[Block] = []
    rest = view.leaderboard[CHANNEL_TOP:] if view.privacy != "off" else ()
    if rest:
        blocks.append(section(f"*Top {len(view.leaderboard)}, continued*"))
        blocks.append(_leader_table(rest, view))
    if view.models:
        lines = ["*Models*"]
        for row in view.models:
            share = f" · {percent(row.cost_usd / view.cost_usd)}" if view.cost_usd > 0 else ""
            lines.append(f"• {escape(clip(row.model, 60))}: {money(row.cost_usd)} · {tokens(row.tokens)} tokens{share}")
        blocks += long_text_sections(lines)
    for title, lines in _people_sections(view, slack=True):
        blocks += long_text_sections([f"*{title}*", *lines])
    if view.teams:
        blocks += long_text_sections(teams_section_lines(view.teams))
    if not blocks:
        blocks.append(section("Nothing more to say about this one."))
    return fit(blocks)


def quiet_text(view: DigestView) -> str:
    """A quiet period gets a short, friendly line, not an empty digest."""
    when = "last week" if view.period == "week" else f"on {view.first:%A}"
    return (f"A quiet {'week' if view.period == 'week' else 'day'}: no AI usage was recorded {when}. "
            f"Enjoy the calm. {_month_line(view)}.")


# -- plain text (CLI dry runs, the demo) ----------------------------------------------------------------
def digest_text(view: DigestView) -> str:
    lines = [period_title(view), as_of_text(view), ""]
    if view.quiet:
        lines.append(quiet_text(view))
        return "\n".join(lines)
    lines += headline(view, slack=False)
    if (movers := _movers_line(view, slack=False)) is not None:
        lines.append(movers)
    if view.privacy != "off" and view.leaderboard:
        lines += ["", f"Top {len(view.leaderboard)} by cost" + (" (names hidden)" if view.privacy == "anonymous"
                                                                 else "")]
        for row in view.leaderboard:
            who = _who(row.user_key, row.name, row.is_person, slack=False) if view.privacy == "names" else "someone"
            lines.append(f"  {row.rank:>2}. {clip(who, 28):<28} {money(row.cost_usd):>10}  {tokens(row.tokens):>6} "
                         f"tokens  {change(row.cost_usd, row.previous_cost_usd)}"
                         + (f"  {row.output}" if row.output else ""))
    if view.models:
        lines += ["", "Top models"]
        for row in view.models:
            share = percent(row.cost_usd / view.cost_usd) if view.cost_usd > 0 else "–"
            lines.append(f"  {clip(row.model, 28):<28} {money(row.cost_usd):>10}  {tokens(row.tokens):>6} tokens  "
                         f"{share:>4}")
    for title, body in _people_sections(view, slack=False):
        lines += ["", title] + [f"  {line}" for line in body]
    if view.breaker_trips:
        lines += ["", "Runaway breaker"] + [f"  {t}" for t in view.breaker_trips]
    lines += teams_section_text(view.teams)
    if check := data_to_check_lines(view):
        lines += ["", "Data to check (admins; not posted to the channel)"] + [f"  {line}" for line in check]
    lines += [f"({note})" for note in view.notes]
    return "\n".join(lines)
