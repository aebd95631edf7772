"""`/tokens help`, short notices (refusals, confirmations) and the rendered `Message`.

`Message` is what every Slack surface finally sends: notification text plus blocks.
Features that answer `/tokens` words of their own (Services.tokens_words, listed in bot/wiring.py) may
return a `Notice` or a ready `Message`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.views.blocks import Block, context, escape, header, section

COMMANDS: tuple[tuple[str, str], ...] = (
    ("/tokens", "your card: tokens and cost today, last 7 days and this month; budget, pace, rank"),
    ("/tokens top [today|week|month]", "the leaderboard by cost (default: this month)"),
    ("/tokens budget [@person]", "your budget, or a requester's if you approve for them"),
    ("/tokens request <amount> [reason]", "ask for more budget for this month, e.g. `/tokens request 50 eval run`"),
    ("/tokens team [name]", "your team's spend against its budget, members and models (or another team's)"),
    ("/tokens request team [name] <amount> [reason]", "a team lead asks for more team budget for this month"),
    ("/tokens help", "this help"),
)
ADMIN_COMMANDS: tuple[tuple[str, str], ...] = (
    ("/tokens admin set-budget @person <amount>", "set a standing monthly budget in USD"),
    ("/tokens admin link <external-id> @person", "attribute an API key, gateway user or email to a person"),
    ("/tokens admin approver @person @approver", "who approves that person's requests"),
    ("/tokens admin digest #channel HH:MM", "post a daily digest to a channel at a local time"),
    ("/tokens admin audit [@person]", "the history of budget decisions"),
    ("/tokens admin reconcile [YYYY-MM]", "the ledger against the OpenAI and Anthropic bills, day by day"),
    ("/tokens admin status", "enforcers, what waits to be pushed, the breaker"),
    ("/tokens admin breaker", "who the runaway breaker paused, and recent trips"),
    ("/tokens admin team [sync]", "the teams, their leads, budgets and user group sync; `sync` reads the groups now"),
)


@dataclass(frozen=True)
class HelpView:
    unknown: str | None = None  # the word that was not understood, named back to the caller
    hint: str | None = None  # a usage line for the command that was almost right


@dataclass(frozen=True)
class Notice:
    text: str  # mrkdwn; user-provided parts must already be escaped
    ok: bool = True


@dataclass
class Message:
    text: str
    blocks: list[Block] = field(default_factory=list)

    def payload(self) -> dict[str, Any]:
        return {"text": self.text, "blocks": self.blocks} if self.blocks else {"text": self.text}


def _unknown_line(view: HelpView, *, slack: bool) -> str | None:
    if view.unknown is None:
        return None
    word = view.unknown if len(view.unknown) <= 40 else view.unknown[:39] + "…"
    return f"I don't know `{escape(word) if slack else word}`. Here is what I can do:"


def help_fallback(view: HelpView) -> str:
    """The notification text: no markup, the unknown word escaped (Slack parses this text too)."""
    if view.unknown is None:
        return "tokenbot: /tokens commands"
    word = view.unknown if len(view.unknown) <= 40 else view.unknown[:39] + "…"
    return f"I don't know “{escape(word)}”. Here is what I can do (see /tokens help)"


def help_blocks(view: HelpView) -> list[Block]:
    blocks: list[Block] = []
    unknown = _unknown_line(view, slack=True)
    if unknown:
        blocks.append(section(unknown))
    else:
        blocks.append(header("tokenbot: AI spend in Slack"))
    if view.hint:
        blocks.append(section(view.hint))
    blocks.append(section("\n".join(f"`{escape(cmd)}`  {what}" for cmd, what in COMMANDS)))
    blocks.append(section("*Admins*\n" + "\n".join(f"`{escape(cmd)}`  {what}" for cmd, what in ADMIN_COMMANDS)))
    blocks.append(context("Amounts are US dollars: `50`, `$50`, `50.5` or `1,000`. "
                          "Your card is also in the bot's Home tab."))
    return blocks


def help_text(view: HelpView) -> str:
    lines = []
    unknown = _unknown_line(view, slack=False)
    lines.append(unknown or "tokenbot: AI spend in Slack")
    if view.hint:
        lines.append(view.hint)
    lines += [f"  {cmd:<44} {what}" for cmd, what in COMMANDS]
    lines.append("Admins:")
    lines += [f"  {cmd:<44} {what}" for cmd, what in ADMIN_COMMANDS]
    return "\n".join(lines)


def notice_message(notice: Notice) -> Message:
    """The notice as mrkdwn (its `<`, `>` and `&` are already escaped), the notification text without markup."""
    icon = ":white_check_mark:" if notice.ok else ":warning:"
    plain_text = notice.text.replace("*", "").replace("`", "")
    return Message(plain_text[:3000], [section(f"{icon} {notice.text}")])


def help_message(view: HelpView) -> Message:
    return Message(help_fallback(view), help_blocks(view))
