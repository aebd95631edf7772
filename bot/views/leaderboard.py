"""`/tokens top`: the leaderboard by cost, tokens beside it, with the privacy setting applied.

Rows are packed into as few sections as the 3000-char limit allows (never one block per
row). Names are already resolved by bot/card_builder.py: with privacy "anonymous" every row but
the caller's has `name=None` and `user_key=None`, so nothing identifying reaches Slack.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from bot.views.blocks import Block, context, escape, header, long_text_sections, mention, section
from bot.views.format import money, tokens


@dataclass(frozen=True)
class LeaderRow:
    rank: int
    user_key: str | None  # None when hidden (anonymous)
    name: str | None  # a display name for text; None when unknown or hidden
    is_person: bool  # a Slack user (not an unlinked id)
    is_caller: bool
    tokens: int
    cost_usd: Decimal

    def label(self, *, slack: bool) -> str:
        if self.user_key is None:
            return "someone"
        if self.is_person:
            who = mention(self.user_key) if slack else (self.name or self.user_key)
        else:
            who = (f"`{escape(self.user_key)}`" if slack else self.user_key) + " (unlinked)"
        return f"{who} (you)" if self.is_caller and not slack else who


@dataclass(frozen=True)
class LeaderboardView:
    period: str  # "today" | "week" | "month"
    title: str  # "Leaderboard: November 2026 to date"
    privacy: str  # "names" | "anonymous" | "off"
    rows: tuple[LeaderRow, ...]
    caller_row: LeaderRow | None  # the caller's row when outside the top rows
    people: int  # everyone with spend in the period
    total_cost: Decimal
    total_tokens: int


def _line(row: LeaderRow, *, slack: bool) -> str:
    if slack:
        name = row.label(slack=True)
        if row.is_caller:
            name = f"*{name}* ← you"
        return f"`{row.rank:>3}.` {name}  *{money(row.cost_usd)}* · {tokens(row.tokens)} tokens"
    return f"{row.rank:>4}. {row.label(slack=False):<28} {money(row.cost_usd):>11}  {tokens(row.tokens):>7} tokens"


def leaderboard_fallback(view: LeaderboardView) -> str:
    if view.privacy == "off":
        return "The leaderboard is turned off in this workspace."
    return f"{view.title}: {view.people} people, {money(view.total_cost)}"


def leaderboard_blocks(view: LeaderboardView) -> list[Block]:
    if view.privacy == "off":
        return [section("The leaderboard is turned off in this workspace. "
                        "Your own rank is on your card: `/tokens me`.")]
    blocks: list[Block] = [header(view.title)]
    if not view.rows:
        blocks.append(section("No spend in this period yet."))
        return blocks
    lines = [_line(r, slack=True) for r in view.rows]
    if view.caller_row is not None:
        lines += ["   ⋮", _line(view.caller_row, slack=True)]
    blocks += long_text_sections(lines)
    note = f"{view.people} people · {money(view.total_cost)} · {tokens(view.total_tokens)} tokens in total"
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
    lines += [_line(r, slack=False) for r in view.rows]
    if view.caller_row is not None:
        lines += ["     ⋮", _line(view.caller_row, slack=False)]
    lines.append(f"  {view.people} people · {money(view.total_cost)} · {tokens(view.total_tokens)} tokens in total"
                 + (" · names hidden" if view.privacy == "anonymous" else ""))
    return "\n".join(lines)
