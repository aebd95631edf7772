"""What the requester is told: where the request went, and how it ended (DMs, and their text twins).

The first DM ("submitted") starts a thread; the outcome is posted in that thread and broadcast to
the DM (bot/approvals/messaging.py), so the request and its answer read as one conversation.
Each outcome says what the person has now: the new limit and what is left of it this month.
Requests are named by what was asked, never by an internal number.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.views.approvals import REQUEST_ACTION, RequestView, left_words, scope_label
from bot.views.blocks import Block, actions, button, context, escape, mention, section
from bot.views.format import moment_text, money, slack_moment


@dataclass(frozen=True)
class RequesterNotice:
    """A DM to the requester. kind: submitted | approved | denied | expired | already_pending."""

    kind: str
    request: RequestView
    link: str | None = None  # permalink of the earlier notice (already_pending)


NOTICE_ICONS = {"submitted": ":incoming_envelope: ", "approved": ":white_check_mark: ", "denied": ":x: ",
                "expired": ":hourglass: ", "already_pending": ""}


def _notice_lines(notice: RequesterNotice, *, slack: bool) -> list[str]:
    """The lines of the notice: the first is the answer (and the notification text)."""
    view = notice.request

    def who(user: str | None) -> str:
        return mention(user or "") if slack else view.name(user)

    def when(moment: datetime) -> str:
        return slack_moment(moment) if slack else moment_text(moment)

    def bold(text: str) -> str:
        return f"*{text}*" if slack else text

    icon = NOTICE_ICONS[notice.kind] if slack else ""
    asked = f"{money(view.amount_usd)} more ({scope_label(view.scope)})"
    left = left_words(view.spent_usd, view.limit_now_usd)
    if notice.kind == "submitted":
        approvers = " or ".join(who(a) for a in view.approvers)
        return [f"{icon}Your request for {asked} went to {approvers}.",
                f"You'll hear in this thread when they decide; it expires {when(view.expires_at)} if nobody does. "
                f"Until then you have {left} of {money(view.limit_usd)} this month."]
    if notice.kind == "approved":
        by = "automatically" if view.automatic else f"by {who(view.decided_by)}"
        what = (f"Approved {money(view.granted)} of the {money(view.amount_usd)} you asked"
                if view.partial else f"Approved: {money(view.granted)} more")
        lines = [f"{icon}{bold(what)} {by}, {scope_label(view.scope)}.",
                 f"Your limit is now {money(view.limit_after_usd)}: {left} this month."]
        if view.note:
            lines.append(f"“{escape(view.note) if slack else view.note}”")
        return lines
    if notice.kind == "denied":
        lines = [f"{icon}{bold('Denied')} by {who(view.decided_by)}: your request for {asked}."]
        if view.note:
            lines.append(f"“{escape(view.note) if slack else view.note}”")
        lines.append(f"Your limit stays {money(view.limit_usd)}: {left} this month.")
        return lines
    if notice.kind == "expired":
        return [f"{icon}{bold('Expired')}: nobody decided on your request for {asked} in time.",
                f"Your limit stays {money(view.limit_usd)}: {left} this month. You can ask again any time."]
    if notice.kind == "already_pending":
        where = f"<{notice.link}|your request>" if slack and notice.link else "your request"
        approvers = " or ".join(who(a) for a in view.approvers)
        return [f"You already have a request waiting: {where} for {asked}, with {approvers}.",
                "One at a time: wait for that decision (or its expiry) before asking again."]
    raise ValueError(f"unknown notice kind {notice.kind!r}")


def notice_text(notice: RequesterNotice) -> str:
    return "\n".join(_notice_lines(notice, slack=False))


def notice_fallback(notice: RequesterNotice) -> str:
    return _notice_lines(notice, slack=False)[0]


def notice_blocks(notice: RequesterNotice) -> list[Block]:
    first, *rest = _notice_lines(notice, slack=True)
    blocks = [section("\n".join([first, *rest[:-1]]))] if len(rest) > 1 else [section(first)]
    if rest:
        blocks.append(context(rest[-1]))
    if notice.kind in ("denied", "expired"):
        blocks.append(actions(button("Request again", REQUEST_ACTION, value=notice.request.requester)))
    return blocks
