"""Teams in digests: the teams section of the organisation's digest, and a team's own daily digest.

Section lines: each team's spend in the period with its change on the period before, and its
month so far as a share of its budget; spend in no team is its own line, so the lines add up
to the digest's total. A team's digest (its `channel`): the day's spend and change, the month
so far against the budget with the pace, and its members ranked by month so far (the
leaderboard's privacy applies).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from bot.views.blocks import Block, context, fields, header, section
from bot.views.format import change, money, percent, plural, weekday
from bot.views.team_card import MemberLine

NO_TEAM = "(no team)"


@dataclass(frozen=True)
class TeamLine:
    team: str  # "" = no team
    cost_usd: Decimal
    previous_usd: Decimal
    month_usd: Decimal
    budget_usd: Decimal | None

    def text(self) -> str:
        name = f"*{self.team}*" if self.team else NO_TEAM
        line = f"{name}: {money(self.cost_usd)} ({change(self.cost_usd, self.previous_usd)})"
        if self.budget_usd:
            line += f" · {percent(self.month_usd / self.budget_usd)} of its {money(self.budget_usd)} month budget"
        return line


def teams_section_lines(lines: tuple[TeamLine, ...]) -> list[str]:
    if not lines:
        return []
    return ["*Teams*", *(f"• {line.text()}" for line in lines)]


def teams_section_text(lines: tuple[TeamLine, ...]) -> list[str]:
    """The digest's plain-text teams section: a blank line, the title, the rows indented (none: [])."""
    if not lines:
        return []
    title, *rows = (line.replace("*", "") for line in teams_section_lines(lines))
    return ["", title, *(f"  {row}" for row in rows)]


@dataclass(frozen=True)
class TeamDigestView:
    team: str
    day: date
    cost_usd: Decimal
    previous_usd: Decimal
    calls: int
    month_label: str
    month_usd: Decimal
    budget_usd: Decimal | None
    projected_usd: Decimal
    members: tuple[MemberLine, ...]
    members_hidden: bool


def team_digest_fallback(view: TeamDigestView) -> str:
    return f"Team {view.team}: {money(view.cost_usd)} of AI spend on {weekday(view.day)}"


def team_digest_blocks(view: TeamDigestView) -> list[Block]:
    day_line = (f"*{money(view.cost_usd)}* on {weekday(view.day)} ({change(view.cost_usd, view.previous_usd)} "
                f"on the day before) · {plural(view.calls, 'call')}")
    if view.budget_usd:
        month = (f"{view.month_label} so far: {money(view.month_usd)} of {money(view.budget_usd)} "
                 f"({percent(view.month_usd / view.budget_usd)}) · on pace for about {money(view.projected_usd)}")
    else:
        month = f"{view.month_label} so far: {money(view.month_usd)} · on pace for about {money(view.projected_usd)}"
    blocks: list[Block] = [header(f"Team {view.team}: AI spend, {weekday(view.day)}"), section(f"{day_line}\n{month}")]
    if view.members_hidden:
        blocks.append(context("Members are not ranked: the leaderboard is off."))
    elif view.members:
        pairs = []
        for m in view.members[:5]:
            pairs += [f"{m.rank}. {m.label()}", money(m.cost_usd)]
        blocks.append(section("*Members, month so far*"))
        blocks.append(fields(pairs))
    blocks.append(context(f"`/tokens team {view.team}` for the whole card"))
    return blocks
