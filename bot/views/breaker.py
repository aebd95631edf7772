"""The runaway breaker's Slack surfaces (SPEC 12): the trip DM (updated in place as people act on
it) and `/tokens admin breaker`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from bot.views.blocks import Block, actions, button, confirm_dialog, context, escape, fields, header, mention, section
from bot.views.format import moment_text, money, plural, slack_moment

PAUSE_ACTION = "breaker_pause"
RESUME_ACTION = "breaker_resume"
IGNORE_ACTION = "breaker_ignore"
ZERO = Decimal(0)


@dataclass(frozen=True)
class TripView:
    trip_id: int
    person: str | None  # the Slack user id; None for a key no person is linked to
    key_id: str | None  # the API key or agent id behind it
    model: str | None
    window_minutes: int
    window_usd: Decimal
    usual_usd: Decimal
    mode: str  # the breaker mode: "alert" | "pause"
    status: str  # "alert" | "paused" | "resumed" | "ignored"
    tripped_at: datetime  # local
    decided_by: str | None = None
    decided_at: datetime | None = None  # local
    auto_resume_at: datetime | None = None  # local
    quiet_until: datetime | None = None  # local

    @property
    def per_hour(self) -> Decimal:
        return self.window_usd * 60 / self.window_minutes

    @property
    def times_usual(self) -> str:
        if self.person is None:
            return "a key with no person to compare against"
        if self.usual_usd < Decimal("0.01"):
            return f"where they usually spend next to nothing in {self.window_minutes} minutes"
        ratio = self.window_usd / self.usual_usd
        times = f"{ratio:.0f}×" if ratio < 1000 else "over 1,000×"
        return f"{times} their usual {money(self.usual_usd)} for {self.window_minutes} minutes"

    def who(self, *, slack: bool) -> str:
        if self.person:
            return mention(self.person) if slack else self.person
        key = self.key_id or "an unknown key"
        return f"`{escape(key)}`" if slack else key


def trip_fallback(view: TripView) -> str:
    status = {"alert": "", "paused": " Paused.", "resumed": " Resumed.", "ignored": " Ignored for 24 h."}[view.status]
    who = mention(view.person) if view.person else f"key {escape(view.key_id or 'unknown')}"
    return (f"Runaway spend: {who} spent {money(view.window_usd)} in {view.window_minutes} min "
            f"({money(view.per_hour)} an hour at this pace).{status}")


def _status_text(view: TripView) -> str:
    by = mention(view.decided_by) if view.decided_by and view.decided_by != "tokenbot" else None
    when = slack_moment(view.decided_at) if view.decided_at else ""
    their, them = ("their", "them") if view.person else ("its", "it")
    if view.status == "alert":
        return (f"Nothing is blocked yet. *Pause* stops {their} calls at every enforcer until someone resumes; "
                f"*Expected* silences the breaker for {them} for 24 h.")
    if view.status == "paused":
        text = (f":no_entry: *Paused* by {by} {when}." if by else
                ":no_entry: *Paused* automatically: the limits API answers `allowed: false` and every "
                f"enforcer refuses {their} calls.")
        if view.auto_resume_at is not None:
            text += f" Resumes by itself {slack_moment(view.auto_resume_at)}."
        return text + f" *Resume* restores {their} limit."
    if view.status == "resumed":
        return f":white_check_mark: *Resumed* by {by or 'tokenbot'} {when}: {their} limit is back."
    until = slack_moment(view.quiet_until) if view.quiet_until else "24 h"
    return f":zzz: {by or 'Someone'} marked this as expected {when}: no breaker alerts for {them} until {until}."


def trip_blocks(view: TripView) -> list[Block]:
    who = view.who(slack=True)
    blocks: list[Block] = [
        section(f":rotating_light: *Runaway spend: {who} spent {money(view.window_usd)} in the last "
                f"{view.window_minutes} minutes*, {view.times_usual}.",
                block_id=f"breaker_{view.trip_id}"),
        fields([f"*At this pace*\n{money(view.per_hour)} an hour",
                f"*Model*\n{escape(view.model or 'unknown')}",
                f"*Key or agent*\n{'`' + escape(view.key_id) + '`' if view.key_id else 'not named in the events'}",
                f"*Since*\n{slack_moment(view.tripped_at)}"]),
        section(_status_text(view)),
    ]
    value = str(view.trip_id)
    ignore = button("Expected, ignore for 24 h", IGNORE_ACTION, value=value)
    if view.status == "alert":
        their = "their" if view.person else "its"
        pause = button("Pause", PAUSE_ACTION, value=value, style="danger",
                       confirm=confirm_dialog(f"Pause {their} AI calls?",
                                              f"Every enforcer refuses {their} calls until someone resumes.",
                                              ok="Pause"))
        blocks.append(actions(pause, ignore, block_id=f"breaker_actions_{view.trip_id}"))
    elif view.status == "paused":
        blocks.append(actions(button("Resume", RESUME_ACTION, value=value, style="primary"), ignore,
                              block_id=f"breaker_actions_{view.trip_id}"))
    if view.person is None:
        blocks.append(context("No person is linked to this key, so admins decide. "
                              "`/tokens admin link` attributes it."))
    return blocks


@dataclass(frozen=True)
class BreakerListView:
    mode: str
    paused: list[TripView] = field(default_factory=list)
    recent: list[TripView] = field(default_factory=list)  # the last 7 days, newest first


def _trip_line(view: TripView) -> str:
    state = {"alert": "alerted", "paused": "paused", "resumed": "resumed", "ignored": "ignored 24 h"}[view.status]
    return (f"• {view.who(slack=True)}: {money(view.window_usd)} in {view.window_minutes} min "
            f"({money(view.per_hour)}/h) on {escape(view.model or 'unknown')}, {slack_moment(view.tripped_at)}: "
            f"{state}")


def breaker_fallback(view: BreakerListView) -> str:
    return (f"Runaway breaker ({view.mode}): {len(view.paused):,} paused now, "
            f"{plural(len(view.recent), 'trip')} in 7 days")


def breaker_blocks(view: BreakerListView) -> list[Block]:
    mode = {"off": "off", "alert": "alert (DMs only)", "pause": "pause (blocks at once)"}.get(view.mode, view.mode)
    blocks: list[Block] = [header("Runaway breaker"), context(f"Mode: {mode}")]
    if view.paused:
        blocks.append(section("*Paused now*\n" + "\n".join(_trip_line(t) for t in view.paused)))
    else:
        blocks.append(section("*Paused now*: nobody."))
    if view.recent:
        blocks.append(section("*Trips in the last 7 days*\n" + "\n".join(_trip_line(t) for t in view.recent[:15])))
    else:
        blocks.append(section("*Trips in the last 7 days*: none."))
    return blocks


def trip_digest_line(view: TripView) -> str:
    """Yesterday's trips in a digest: one line each."""
    return (f"{view.who(slack=True)}: {money(view.window_usd)} in {view.window_minutes} min on "
            f"{escape(view.model or 'unknown')} ({moment_text(view.tripped_at)})")


def trip_text(view: TripView, names: dict[str, str] | None = None) -> str:
    """The trip DM as plain text (the demo): what the blocks say, with names for mentions."""
    names = names or {}
    who = names.get(view.person, view.person) if view.person else view.who(slack=False)
    ratio = view.times_usual.replace(" their", " the")
    status = {
        "alert": "Nothing is blocked yet.",
        "paused": "Paused" + (f" by {names.get(view.decided_by, view.decided_by)}" if view.decided_by else
                              " automatically") + ": the limits API answers allowed: false and every enforcer "
                                                  "refuses the calls.",
        "resumed": f"Resumed by {names.get(view.decided_by or '', view.decided_by or 'tokenbot')}: the limit is back.",
        "ignored": f"{names.get(view.decided_by or '', view.decided_by or 'Someone')} marked this as expected: "
                   "no breaker alerts for 24 h.",
    }[view.status]
    buttons = {"alert": "[Pause] [Expected, ignore for 24 h]", "paused": "[Resume] [Expected, ignore for 24 h]"}
    lines = [f"Runaway spend: {who} spent {money(view.window_usd)} in the last {view.window_minutes} minutes, {ratio}.",
             f"At this pace: {money(view.per_hour)} an hour · model {view.model or 'unknown'} · "
             f"key or agent {view.key_id or 'not named'}",
             status]
    if view.status in buttons:
        lines.append(buttons[view.status])
    return "\n".join(lines)
