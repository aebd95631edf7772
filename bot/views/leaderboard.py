"""`/tokens top`: the leaderboard by cost, tokens beside it, with the privacy setting applied.

Rows are two-column fields (who | cost · tokens), so the amounts line up in their own column
on a desktop and on a phone; ten fields a section, never one block per row. Ranks count
people only: spend under an unlinked id is listed without a rank. Names are display names
(not mentions, which Slack draws as loud links); with privacy "anonymous" every row but the
caller's has `name=None` and `user_key=None`, so nothing identifying reaches Slack.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from bot.views.blocks import FIELDS_PER_SECTION, Block, clip, context, escape, fields, header, mention, section
from bot.views.format import money, plural, tokens


@dataclass(frozen=True)
class LeaderRow:
    rank: int | None  # among people; None for an unlinked id
    user_key: str | None  # None when hidden (anonymous)
    name: str | None  # a display name; None when unknown or hidden
    is_person: bool  # a Slack user (not an unlinked id)
    is_caller: bool
    tokens: int
    cost_usd: Decimal
    output: str | None = None  # "3 PRs · 41 commits · $12/PR" (leaderboard.show_output, SPEC 10)

    def label(self, *, slack: bool) -> str:
        if self.user_key is None:
            who = "someone"
        elif not self.is_person:
            who = (escape(self.user_key) if slack else self.user_key) + (" _(unlinked id)_" if slack else
                                                                          " (unlinked id)")
        elif self.name:
            who = escape(self.name) if slack else self.name
        else:
            who = mention(self.user_key) if slack else self.user_key
        if self.is_caller:
            who = f"*{who} (you)*" if slack else f"{who} (you)"
        return who

    def place(self) -> str:
        return f"{self.rank}." if self.rank is not None else "·"


@dataclass(frozen=True)
class LeaderboardView:
    period: str  # "today" | "week" | "month"
    title: str  # "Top spenders, November so far"
    privacy: str  # "names" | "anonymous" | "off"
    rows: tuple[LeaderRow, ...]
    caller_row: LeaderRow | None  # the caller's row when outside the top rows
    people: int  # people with spend in the period
    total_cost: Decimal
    total_tokens: int
    unlinked: int = 0  # unlinked ids with spend in the period


def _amount(row: LeaderRow, *, unit: bool = True) -> str:
    text = f"{money(row.cost_usd)} · {tokens(row.tokens)}{' tokens' if unit else ''}"
    return f"{text}\n{row.output}" if row.output else text


def _totals(view: LeaderboardView) -> str:
    who = plural(view.people, "person", "people")
    if view.unlinked:
        who += f" and {plural(view.unlinked, 'unlinked id')}"
    return f"{who} · {money(view.total_cost)} · {tokens(view.total_tokens)} tokens in total"


def leaderboard_fallback(view: LeaderboardView) -> str:
    if view.privacy == "off":
        return "The leaderboard is turned off in this workspace."
    if not view.rows:
        return f"{view.title}: no spend yet."
    mine = view.caller_row or next((r for r in view.rows if r.is_caller), None)
    you = f"; you are #{mine.rank} with {money(mine.cost_usd)}" if mine is not None and mine.rank else ""
    return f"{view.title}: {money(view.total_cost)} by {plural(view.people, 'person', 'people')}{you}"


def leaderboard_blocks(view: LeaderboardView) -> list[Block]:
    if view.privacy == "off":
        return [section("The leaderboard is turned off in this workspace. "
                        "Your own rank is on your card: `/tokens me`.")]
    blocks: list[Block] = [header(view.title)]
    if not view.rows:
        blocks.append(section("No spend in this period yet."))
        return blocks
    cells = ["*Who*", "*Cost · tokens*"]
    cells += [text for row in view.rows for text in (f"{row.place()} {clip(row.label(slack=True), 200)}",
                                                     _amount(row, unit=False))]
    for start in range(0, len(cells), FIELDS_PER_SECTION):
        blocks.append(fields(cells[start:start + FIELDS_PER_SECTION]))
    if view.caller_row is not None:
        row = view.caller_row
        blocks.append(section(f"*You: #{row.rank}* of {plural(view.people, 'person', 'people')} · {_amount(row)}"))
    note = _totals(view)
    if view.privacy == "anonymous":
        note += " · names hidden (privacy setting)"
    blocks.append(context(note))
    return blocks


def leaderboard_text(view: LeaderboardView) -> str:
    if view.privacy == "off":
        return "The leaderboard is turned off in this workspace. Your own rank is on your card: /tokens me."
    lines = [view.title]
    if not view.rows:
        return "\n".join([*lines, "  No spend in this period yet."])

    def line(row: LeaderRow) -> str:
        return f"  {row.place():>3} {clip(row.label(slack=False), 30):<30} {money(row.cost_usd):>10}  " \
               f"{tokens(row.tokens):>6} tokens" + (f"  {row.output}" if row.output else "")

    lines += [line(r) for r in view.rows]
    if view.caller_row is not None:
        lines += ["      ⋮", line(view.caller_row)]
    lines.append(f"  {_totals(view)}" + (" · names hidden" if view.privacy == "anonymous" else ""))
    return "\n".join(lines)
