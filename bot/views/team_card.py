"""The team card (`/tokens team [name]`), the admin's team list, and the teams lines of digests.

The card answers "how is the team doing against its budget": spent, budget and share, the
month-end pace, then members ranked (the leaderboard's privacy applies: "anonymous" names
only the caller, "off" lists no one), top models, the last months, and pending team raise
requests. No text bars: the share and pace are said in words (bot/views/blocks.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from bot.views.blocks import Block, actions, button, context, escape, fields, header, mention, section
from bot.views.format import money, percent, plural, slack_moment, tokens
from bot.views.team_forms import TEAM_RAISE_ACTION


@dataclass(frozen=True)
class MemberLine:
    rank: int
    name: str | None  # None: hidden (anonymous) or unknown
    user_key: str | None
    is_caller: bool
    cost_usd: Decimal
    tokens: int

    def label(self) -> str:
        who = escape(self.name) if self.name else (mention(self.user_key) if self.user_key else "someone")
        return f"*{who} (you)*" if self.is_caller else who


@dataclass(frozen=True)
class TeamPending:
    request_id: int
    amount_usd: Decimal
    created_at: datetime


@dataclass(frozen=True)
class TeamCardView:
    team: str
    month_label: str
    spent_usd: Decimal
    tokens: int
    calls: int
    budget_usd: Decimal | None
    projected_usd: Decimal
    lead: str | None  # a Slack user id
    member_count: int
    members: tuple[MemberLine, ...]
    members_hidden: bool  # leaderboard privacy "off"
    others_usd: Decimal  # spend charged to the team by its `team` field, by people not in it
    models: tuple[tuple[str, Decimal], ...]
    trend: tuple[tuple[str, Decimal], ...]  # ("Jun", cost), oldest first, this month last
    pending: tuple[TeamPending, ...]
    can_request: bool  # the caller leads the team

    @property
    def share(self) -> Decimal | None:
        return self.spent_usd / self.budget_usd if self.budget_usd else None


def standing_text(view: TeamCardView) -> str:
    if view.budget_usd is None:
        return f"{money(view.spent_usd)} spent in {view.month_label} · no team budget set"
    if view.spent_usd > view.budget_usd:
        return (f"{money(view.spent_usd)} spent: {money(view.spent_usd - view.budget_usd)} over the team's "
                f"{money(view.budget_usd)} budget ({percent(view.share)})")
    return (f"{money(view.spent_usd)} spent, {money(view.budget_usd - view.spent_usd)} left of the team's "
            f"{money(view.budget_usd)} {view.month_label} budget ({percent(view.share)})")


def pace_text(view: TeamCardView) -> str:
    if view.spent_usd <= 0:
        return "No spend this month yet"
    text = f"On pace for about {money(view.projected_usd)} by month end"
    if view.budget_usd is not None and view.projected_usd > view.budget_usd >= view.spent_usd:
        text += f", {money(view.projected_usd - view.budget_usd)} over budget"
    return text


def team_card_fallback(view: TeamCardView) -> str:
    return f"Team {view.team}: {standing_text(view)}"


def team_card_blocks(view: TeamCardView) -> list[Block]:
    lead = mention(view.lead) if view.lead else "no lead set (alerts go to the admins)"
    blocks: list[Block] = [
        header(f"Team {view.team}: AI spend"),
        section(f"*{standing_text(view)}*\n{pace_text(view)}"),
        context(f"Lead: {lead} · {plural(view.member_count, 'member')} · {tokens(view.tokens)} tokens · "
                f"{view.calls:,} calls"),
    ]
    if view.members_hidden:
        blocks.append(context("Members are not ranked: the leaderboard is off."))
    elif view.members:
        pairs = []
        for m in view.members[:5]:
            pairs += [f"{m.rank}. {m.label()}", f"{money(m.cost_usd)} · {tokens(m.tokens)}"]
        blocks.append(section("*Members this month*"))
        blocks.append(fields(pairs))
        if len(view.members) > 5:
            blocks.append(context(f"…and {plural(len(view.members) - 5, 'more member')}"))
    if view.others_usd:
        blocks.append(context(f"{money(view.others_usd)} charged to the team by its projects, spent by "
                              "people outside it"))
    if view.models:
        line = " · ".join(f"{escape(m)} {money(c)}" for m, c in view.models[:3])
        blocks.append(section(f"*Top models:* {line}"))
    if view.trend:
        blocks.append(context("Last months: " + " · ".join(f"{label} {money(c)}" for label, c in view.trend)))
    for p in view.pending:
        blocks.append(context(f":hourglass_flowing_sand: A team raise of {money(p.amount_usd)} asked "
                              f"{slack_moment(p.created_at)} is waiting for a decision"))
    if view.can_request and not view.pending:
        blocks.append(actions(button("Ask for a team raise", TEAM_RAISE_ACTION, value=view.team,
                                     label=f"Ask for more budget for team {view.team} this month")))
        blocks.append(context(f"or `/tokens request team {view.team} &lt;amount&gt; [reason]`"))
    return blocks


@dataclass(frozen=True)
class TeamAdminLine:
    team: str
    members: int
    lead: str | None
    channel: str | None
    budget_usd: Decimal | None
    usergroup: str | None
    synced_at: datetime | None
    error: str | None


def team_admin_fallback(lines: list[TeamAdminLine]) -> str:
    return f"{plural(len(lines), 'team')} configured"


def team_admin_blocks(lines: list[TeamAdminLine]) -> list[Block]:
    if not lines:
        return [section("No teams are configured. Add `[teams.<name>]` tables to the config file "
                        "(README, \"Teams\").")]
    blocks: list[Block] = [header(f"Teams ({len(lines)})")]
    for t in lines[:45]:
        budget = f"{money(t.budget_usd)} a month" if t.budget_usd is not None else "no budget"
        lead = f"lead {mention(t.lead)}" if t.lead else "_no lead_"
        channel = f"<#{t.channel}>" if t.channel else "no channel"
        if t.usergroup is None:
            sync = "members from config"
        elif t.error:
            sync = f":warning: user group `{t.usergroup}` failed: `{escape(t.error)}`"
        elif t.synced_at is not None:
            sync = f"user group `{t.usergroup}` synced {slack_moment(t.synced_at)}"
        else:
            sync = f"user group `{t.usergroup}` not synced yet"
        blocks.append(section(f"*{t.team}* · {plural(t.members, 'member')} · {lead} · {channel} · "
                              f"{budget}\n{sync}"))
    return blocks


def team_card_text(view: TeamCardView) -> str:
    """The card as plain text (the demo)."""
    lead = view.lead or "no lead"
    lines = [f"Team {view.team}: AI spend", standing_text(view), pace_text(view),
             f"Lead: {lead} · {plural(view.member_count, 'member')} · {tokens(view.tokens)} tokens · "
             f"{view.calls:,} calls"]
    if view.members_hidden:
        lines.append("Members are not ranked: the leaderboard is off.")
    elif view.members:
        lines.append("Members this month:")
        lines += [f"  {m.rank:>2}. {(m.name or m.user_key or 'someone'):<24} {money(m.cost_usd):>10}"
                  for m in view.members[:5]]
    if view.models:
        lines.append("Top models: " + " · ".join(f"{m} {money(c)}" for m, c in view.models))
    if view.trend:
        lines.append("Last months: " + " · ".join(f"{label} {money(c)}" for label, c in view.trend))
    lines += [f"A team raise of {money(p.amount_usd)} is waiting for a decision" for p in view.pending]
    return "\n".join(lines)
