"""What the requester is told: where the request went, and how it ended (DMs, and their text twins)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.views.approvals import REQUEST_ACTION, RequestView, local_text, scope_label, slack_date
from bot.views.blocks import Block, actions, button, escape, mention, section
from bot.views.format import money


@dataclass(frozen=True)
class RequesterNotice:
    """A DM to the requester. kind: submitted | approved | denied | expired | already_pending."""

    kind: str
    request: RequestView
    link: str | None = None  # permalink of the earlier notice (already_pending)


NOTICE_ICONS = {"submitted": ":incoming_envelope: ", "approved": ":white_check_mark: ", "denied": ":x: ",
                "expired": ":hourglass: ", "already_pending": ""}


def _notice_lines(notice: RequesterNotice, *, slack: bool) -> list[str]:
    view = notice.request

    def who(user: str | None) -> str:
        return mention(user or "") if slack else view.name(user)

    def when(moment: datetime) -> str:
        return slack_date(moment, local_text(moment)) if slack else local_text(moment)

    asked = f"{money(view.amount_usd)} more ({scope_label(view.scope)})"
    icons = dict.fromkeys(NOTICE_ICONS, "") if not slack else NOTICE_ICONS
    if notice.kind == "submitted":
        approvers = " or ".join(who(a) for a in view.approvers)
        return [
            f"{icons[notice.kind]}Your request #{view.id} for {asked} went to {approvers}.",
            f"You'll hear here when they decide. If nobody does, it expires {when(view.expires_at)}.",
        ]
    if notice.kind == "approved":
        granted = view.granted_usd if view.granted_usd is not None else view.amount_usd
        by = "automatically" if view.automatic else f"by {who(view.decided_by)}"
        lines = [f"{icons[notice.kind]}Your request #{view.id} was approved {by}: {money(granted)} more"
                 + (f" (you asked for {money(view.amount_usd)})" if view.partial else "")
                 + f", {scope_label(view.scope)}.",
                 f"Your limit is now {money(view.limit_after_usd)} (was {money(view.limit_usd)})."]
        if view.scope == "month":
            lines.append("The extra budget ends with the month.")
        if view.note:
            lines.append(f"Note: {escape(view.note) if slack else view.note}")
        return lines
    if notice.kind == "denied":
        reason = view.note or "no reason given"
        return [f"{icons[notice.kind]}Your request #{view.id} for {asked} was denied by {who(view.decided_by)}.",
                f"Reason: {escape(reason) if slack else reason}",
                f"Your limit stays {money(view.limit_usd)}."]
    if notice.kind == "expired":
        return [f"{icons[notice.kind]}Your request #{view.id} for {asked} expired without a decision.",
                f"Your limit stays {money(view.limit_usd)}. You can ask again at any time."]
    if notice.kind == "already_pending":
        where = f"<{notice.link}|request #{view.id}>" if slack and notice.link else f"request #{view.id}"
        approvers = " or ".join(who(a) for a in view.approvers)
        return [f"You already have a pending request: {where} for {asked}, waiting for {approvers}.",
                "One request at a time: wait for that decision (or its expiry) before asking again."]
    raise ValueError(f"unknown notice kind {notice.kind!r}")


def notice_text(notice: RequesterNotice) -> str:
    return "\n".join(_notice_lines(notice, slack=False))


def notice_fallback(notice: RequesterNotice) -> str:
    return _notice_lines(notice, slack=False)[0]


def notice_blocks(notice: RequesterNotice) -> list[Block]:
    lines = _notice_lines(notice, slack=True)
    blocks = [section("\n".join(lines))]
    if notice.kind in ("denied", "expired"):
        blocks.append(actions(button("Request again", REQUEST_ACTION, value=notice.request.requester)))
    return blocks
