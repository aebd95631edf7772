"""The approval flow on screen: the request view model, the approver's DM, reminders and the
App Home list, plus the flow's action, modal and block ids (one place for each). The
requester's notices are in approval_notices.py, the modals in approval_forms.py, the
history in audit.py. Each Block Kit renderer has a plain-text twin (the demo prints
those), and both are built from the view models only.

Block Kit mentions people (`<@U…>`, shown in the viewer's language) and dates
(`<!date^…>`, shown in the viewer's time zone); text renders names and the
organisation's time zone.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from bot.views.blocks import (
    Block,
    actions,
    button,
    clip,
    confirm_dialog,
    context,
    divider,
    escape,
    fields,
    header,
    mention,
    section,
    sparkline,
)
from bot.views.format import money, percent

APPROVE_ACTION = "approve_request"
DENY_ACTION = "deny_request"
OTHER_AMOUNT_ACTION = "approve_other_amount"
REQUEST_ACTION = "request_budget"  # "Request more budget": the card's, an alert's, a notice's button

REQUEST_MODAL = "budget_request_modal"
DENY_MODAL = "deny_request_modal"
AMOUNT_MODAL = "approve_amount_modal"

# block ids of the modal inputs (their action ids are the same); view_submission errors are keyed by these
AMOUNT_BLOCK = "amount"
REASON_BLOCK = "reason"
SCOPE_BLOCK = "scope"
NOTE_BLOCK = "note"

SCOPE_LABELS = {"month": "this month only", "standing": "from now on"}
REASON_MAX = 500
HOME_REQUESTS_SHOWN = 8


def plain_amount(value: Decimal) -> str:
    """50, 49.5: for inputs and button values (never 5E+1)."""
    return format(value.normalize(), "f")


def scope_label(scope: str) -> str:
    return SCOPE_LABELS.get(scope, scope)


def slack_date(moment: datetime, fallback: str) -> str:
    """A date Slack shows in the reader's own time zone."""
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} at {{time}}|{fallback}>"


def local_text(moment: datetime) -> str:
    return moment.strftime("%b %d %H:%M %Z").replace(" 0", " ")


def _name(names: Mapping[str, str], user: str) -> str:
    return names.get(user, user)


# -- view models --------------------------------------------------------------------------------

@dataclass(frozen=True)
class RequestView:
    """One request as people see it. Times are aware datetimes in the organisation's zone."""

    id: int
    requester: str
    amount_usd: Decimal
    scope: str  # "month" | "standing"
    month_label: str  # "November 2026"
    status: str  # pending | approved | denied | expired
    reason: str | None
    approvers: tuple[str, ...]
    created_at: datetime
    expires_at: datetime
    spent_usd: Decimal
    limit_usd: Decimal  # the limit now (pending) or before the decision (decided)
    limit_after_usd: Decimal  # proposed (pending) or granted (decided)
    projected_usd: Decimal
    trend: tuple[Decimal, ...] = ()  # the last 14 local days, oldest first
    last7_usd: Decimal = Decimal(0)
    prev7_usd: Decimal = Decimal(0)
    granted_usd: Decimal | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None
    note: str | None = None
    automatic: bool = False
    escalated_from: tuple[str, ...] = ()  # set on the copy sent to default approvers at the reminder
    names: Mapping[str, str] = field(default_factory=dict)

    @property
    def pending(self) -> bool:
        return self.status == "pending"

    @property
    def partial(self) -> bool:
        return self.granted_usd is not None and self.granted_usd != self.amount_usd

    def name(self, user: str | None) -> str:
        return _name(self.names, user) if user else "nobody"


def button_value(view: RequestView) -> str:
    """What the decision buttons carry: enough to draw the modals without a database read."""
    return json.dumps(
        {"request_id": view.id, "requester": view.requester, "amount": plain_amount(view.amount_usd),
         "scope": view.scope},
        separators=(",", ":"),
    )


# -- the approver's message ---------------------------------------------------------------------

def _trend_text(view: RequestView) -> str:
    line = f"{money(view.last7_usd)} last 7 days"
    if view.prev7_usd > 0:
        change = (view.last7_usd - view.prev7_usd) / view.prev7_usd
        line += f" ({'+' if change >= 0 else ''}{percent(change)} on the week before)"
    return line


def _share(view: RequestView) -> str:
    if view.limit_usd <= 0:
        return ""
    return f" ({percent(view.spent_usd / view.limit_usd)})"


def _ask_line(view: RequestView, who: str) -> str:
    return f"{who} asks for *{money(view.amount_usd)} more*, {scope_label(view.scope)} ({view.month_label})."


def _outcome_slack(view: RequestView) -> str:
    when = slack_date(view.decided_at, local_text(view.decided_at)) if view.decided_at else ""
    if view.status == "approved":
        granted = view.granted_usd if view.granted_usd is not None else view.amount_usd
        what = f"*Approved {money(granted)}*" + (f" (of {money(view.amount_usd)} asked)" if view.partial else "")
        who = "automatically" if view.automatic else f"by {mention(view.decided_by or '')}"
        line = (f":white_check_mark: {what} {who} {when}, {scope_label(view.scope)}. "
                f"Limit {money(view.limit_usd)} → {money(view.limit_after_usd)}.")
    elif view.status == "denied":
        line = f":x: *Denied* by {mention(view.decided_by or '')} {when}. The limit stays {money(view.limit_usd)}."
    else:
        line = f":hourglass: *Expired* {when} with no decision. The limit stays {money(view.limit_usd)}."
    if view.note:
        line += f"\n>{escape(clip(view.note, REASON_MAX))}"
    return line


def _outcome_text(view: RequestView) -> str:
    when = local_text(view.decided_at) if view.decided_at else ""
    if view.status == "approved":
        granted = view.granted_usd if view.granted_usd is not None else view.amount_usd
        what = f"APPROVED {money(granted)}" + (f" (of {money(view.amount_usd)} asked)" if view.partial else "")
        who = "automatically" if view.automatic else f"by {view.name(view.decided_by)}"
        line = (f"{what} {who} on {when}, {scope_label(view.scope)}. "
                f"Limit {money(view.limit_usd)} -> {money(view.limit_after_usd)}.")
    elif view.status == "denied":
        line = f"DENIED by {view.name(view.decided_by)} on {when}. The limit stays {money(view.limit_usd)}."
    else:
        line = f"EXPIRED on {when} with no decision. The limit stays {money(view.limit_usd)}."
    if view.note:
        line += f"\n  Note: {view.note}"
    return line


def decision_buttons(view: RequestView, *, unique: bool = False) -> Block:
    """Approve (with a confirm dialog), Approve another amount, Deny. `unique` suffixes the action ids
    with the request id (`approve_request:12`) where several requests share one view (App Home)."""
    value = button_value(view)
    suffix = f":{view.id}" if unique else ""
    confirm = confirm_dialog(
        f"Approve {money(view.amount_usd)}?",
        f"{mention(view.requester)}'s limit goes from {money(view.limit_usd)} to {money(view.limit_after_usd)} "
        f"({scope_label(view.scope)}).",
        ok="Approve",
    )
    return actions(
        button("Approve", APPROVE_ACTION + suffix, value=value, style="primary", confirm=confirm),
        button("Approve another amount", OTHER_AMOUNT_ACTION + suffix, value=value),
        button("Deny", DENY_ACTION + suffix, value=value, style="danger"),
        block_id=f"decide_{view.id}",
    )


def _facts(view: RequestView) -> Block:
    trend = sparkline([float(v) for v in view.trend])
    proposed = "Limit if approved" if view.pending else "Limit after"
    facts = [
        f"*Spent this month*\n{money(view.spent_usd)}{_share(view)}",
        f"*Projected month end*\n{money(view.projected_usd)}",
        f"*Limit now*\n{money(view.limit_usd)}" if view.pending else f"*Limit before*\n{money(view.limit_usd)}",
        f"*{proposed}*\n{money(view.limit_after_usd)}",
        f"*Last 14 days*\n`{trend or 'no usage'}`\n{_trend_text(view)}",
    ]
    if view.pending:
        facts.append(f"*Expires*\n{slack_date(view.expires_at, local_text(view.expires_at))}")
    return fields(facts)


def approval_fallback(view: RequestView) -> str:
    if view.pending:
        return (f"{view.name(view.requester)} asks for {money(view.amount_usd)} more budget "
                f"({scope_label(view.scope)}): approve or deny in tokenbot")
    return f"Budget request #{view.id} from {view.name(view.requester)}: {view.status}"


def approval_blocks(view: RequestView) -> list[Block]:
    """The approver's DM: who, how much, why, spend, limits, trend; buttons while pending."""
    blocks: list[Block] = [header(f"Budget request: {money(view.amount_usd)} more")]
    if view.escalated_from:
        waiting = ", ".join(mention(u) for u in view.escalated_from)
        blocks.append(context(f":rotating_light: Sent to you too: {waiting} has not decided yet."))
    ask = _ask_line(view, mention(view.requester))
    if view.reason:
        ask += f"\n>{escape(clip(view.reason, REASON_MAX))}"
    else:
        ask += "\n_No reason given._"
    blocks.append(section(ask))
    blocks.append(_facts(view))
    if view.pending:
        blocks.append(decision_buttons(view))
    else:
        blocks.append(section(_outcome_slack(view), block_id=f"outcome_{view.id}"))
    approvers = ", ".join(mention(a) for a in view.approvers) or "admins"
    blocks.append(context(
        f"Request #{view.id} · asked {slack_date(view.created_at, local_text(view.created_at))} · "
        f"approvers: {approvers}"
    ))
    return blocks


def approval_text(view: RequestView) -> str:
    lines = [f"Budget request #{view.id}: {money(view.amount_usd)} more"]
    if view.escalated_from:
        lines.append(f"(sent to you too: {', '.join(view.name(u) for u in view.escalated_from)} has not decided yet)")
    lines.append(f"{view.name(view.requester)} asks for {money(view.amount_usd)} more, "
                 f"{scope_label(view.scope)} ({view.month_label}).")
    lines.append(f'  Reason: "{view.reason}"' if view.reason else "  No reason given.")
    lines.append(f"  Spent this month: {money(view.spent_usd)}{_share(view)}; projected month end "
                 f"{money(view.projected_usd)}")
    if view.pending:
        lines.append(f"  Limit now {money(view.limit_usd)}, if approved {money(view.limit_after_usd)}")
    else:
        lines.append(f"  Limit before {money(view.limit_usd)}, after {money(view.limit_after_usd)}")
    trend = sparkline([float(v) for v in view.trend])
    lines.append(f"  Last 14 days: {trend or 'no usage'}  {_trend_text(view)}")
    if view.pending:
        lines.append(f"  Expires {local_text(view.expires_at)}")
        lines.append("  [Approve]  [Approve another amount]  [Deny]")
    else:
        lines.append("  " + _outcome_text(view))
    lines.append(f"  Approvers: {', '.join(view.name(a) for a in view.approvers) or 'admins'}")
    return "\n".join(lines)


def reminder_text(view: RequestView, hours_waiting: int, *, slack: bool = True) -> str:
    who = mention(view.requester) if slack else view.name(view.requester)
    expires = slack_date(view.expires_at, local_text(view.expires_at)) if slack else local_text(view.expires_at)
    icon = ":alarm_clock: " if slack else ""
    return (f"{icon}Reminder: {who}'s request for {money(view.amount_usd)} more has waited "
            f"{hours_waiting} h for your decision. It expires {expires}.")


def reminder_blocks(view: RequestView, hours_waiting: int) -> list[Block]:
    return [section(reminder_text(view, hours_waiting))]


# -- App Home -------------------------------------------------------------------------------------

def home_pending_blocks(views: list[RequestView]) -> list[Block]:
    """Requests waiting for this approver, with the same buttons as the DM."""
    if not views:
        return []
    blocks: list[Block] = [header(f"Waiting for your decision ({len(views)})")]
    for view in views[:HOME_REQUESTS_SHOWN]:
        ask = _ask_line(view, mention(view.requester))
        if view.reason:
            ask += f"\n>{escape(clip(view.reason, REASON_MAX))}"
        ask += (f"\nSpent {money(view.spent_usd)}{_share(view)} · limit {money(view.limit_usd)} → "
                f"{money(view.limit_after_usd)} · expires {slack_date(view.expires_at, local_text(view.expires_at))}")
        blocks.append(section(ask))
        blocks.append(decision_buttons(view, unique=True))
    if len(views) > HOME_REQUESTS_SHOWN:
        blocks.append(context(f"…and {len(views) - HOME_REQUESTS_SHOWN} more in your DMs"))
    blocks.append(divider())
    return blocks


def home_pending_text(views: list[RequestView]) -> str:
    if not views:
        return ""
    lines = [f"Waiting for your decision ({len(views)})"]
    for view in views:
        lines.append(f"  #{view.id} {view.name(view.requester)}: {money(view.amount_usd)} more, "
                     f"{scope_label(view.scope)}; expires {local_text(view.expires_at)}")
    return "\n".join(lines)
