"""`/tokens admin status`: the enforcers (last success and failure, what waits), the outbox and the
breaker, in one answer an admin reads on a phone; and the lines `tokenbot enforce status` prints."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from bot.views.blocks import Block, context, escape, header, section
from bot.views.format import moment_text, plural, slack_moment

LABELS = {"litellm": "LiteLLM proxy", "openai": "OpenAI project limits"}


@dataclass(frozen=True)
class EnforcerLine:
    name: str
    target: str  # the proxy URL, or the mapped projects
    waiting: int
    last_success: datetime | None = None  # local
    last_failure: datetime | None = None
    last_error: str | None = None
    failing_since: datetime | None = None
    notes: tuple[str, ...] = ()  # one line per team budget on the proxy

    @property
    def label(self) -> str:
        return LABELS.get(self.name, self.name)

    @property
    def state(self) -> str:
        if self.failing_since is not None:
            return "failing"
        return "ok" if self.last_success is not None else "not pushed yet"


@dataclass(frozen=True)
class StatusView:
    enforcers: list[EnforcerLine] = field(default_factory=list)
    outbox_waiting: int = 0
    breaker_mode: str = "off"
    paused: int = 0
    trips_today: int = 0


def failing_text(enforcer: str, error: str) -> str:
    """The one DM admins get when an enforcer keeps failing."""
    return (f":warning: tokenbot can't reach the {LABELS.get(enforcer, enforcer)}: limit pushes have been failing for "
            f"15 minutes ({error[:200]}). Decisions still stand in tokenbot and are pushed, in order, when it "
            "answers again. `/tokens admin status` shows where it stands.")


def _when(moment: datetime | None, *, slack: bool) -> str:
    if moment is None:
        return "never"
    return slack_moment(moment) if slack else moment_text(moment)


def _line(e: EnforcerLine, *, slack: bool) -> str:
    icon = {"failing": ":red_circle:", "ok": ":large_green_circle:"}.get(e.state, ":white_circle:") if slack else ""
    target = escape(e.target) if slack else e.target
    bold = f"*{e.label}*" if slack else e.label
    lead = f"{icon} {bold}" if icon else bold
    state = e.state if e.failing_since is None else f"failing since {_when(e.failing_since, slack=slack)}"
    waiting = f"{plural(e.waiting, 'push', 'pushes')} waiting" if e.waiting else "nothing waiting"
    lines = [f"{lead}: {state}, {waiting}",
             f"{target}",
             *(escape(n) if slack else n for n in e.notes),
             f"Last success {_when(e.last_success, slack=slack)}"]
    if e.last_failure is not None:
        error = (e.last_error or "")[:160]
        lines.append(f"Last failure {_when(e.last_failure, slack=slack)}: "
                     + (f"`{escape(error)}`" if slack else error))
    return "\n".join(lines)


def status_lines(view: StatusView) -> list[str]:
    """Plain text, one enforcer per paragraph (for the CLI and the notification text)."""
    if not view.enforcers:
        return ["No enforcers configured ([enforce.litellm], [enforce.openai])."]
    return [_line(e, slack=False) for e in view.enforcers]


def status_fallback(view: StatusView) -> str:
    """The answer in one line (the header and the notification): what is failing, else that all is well."""
    failing = [e.label for e in view.enforcers if e.state == "failing"]
    if failing:
        return f"{' and '.join(failing)} failing"
    if not view.enforcers:
        return "No enforcers configured"
    return "All enforcers ok" if len(view.enforcers) > 1 else f"{view.enforcers[0].label} ok"


def status_blocks(view: StatusView) -> list[Block]:
    blocks: list[Block] = [header(status_fallback(view))]
    if view.enforcers:
        blocks += [section(_line(e, slack=True)) for e in view.enforcers]
    else:
        blocks.append(section("No enforcers configured: limits live in tokenbot's limits API only. "
                              "Add `[enforce.litellm]` or `[enforce.openai]` to the config."))
    breaker = {"off": "off", "alert": "alerting", "pause": "pausing"}.get(view.breaker_mode, view.breaker_mode)
    blocks.append(section(
        f"*Runaway breaker*: {breaker}; {plural(view.paused, 'person', 'people')} paused, "
        f"{plural(view.trips_today, 'trip')} today" + (" (`/tokens admin breaker`)" if view.trips_today else "")))
    blocks.append(context(f"limit.changed webhook: {plural(view.outbox_waiting, 'event')} waiting"))
    return blocks
