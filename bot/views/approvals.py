"""The approval flow on screen: the request view model, the approver's DM, reminders and the
App Home list, plus the flow's action, modal and block ids (one place for each). The
requester's notices are in approval_notices.py, the modals in approval_forms.py, the
history in audit.py. Each Block Kit renderer has a plain-text twin (the demo prints
those), and both are built from the view models only.

The approver's DM does the arithmetic for them: the header says who asks for how much; the
facts say where the requester stands now (or how far over), where their pace takes the month,
and whether the raise covers that pace. Approve is the one primary button (with a confirm
dialog); Deny is not styled red (Slack keeps "danger" for destructive actions, and denying is
an ordinary answer); "Other amount" is short enough not to wrap on a phone, and screen readers
hear each button's full meaning. After a decision the outcome comes first, the buttons go.

Block Kit mentions people (`<@U…>`, shown in the viewer's language) and moments
(`<!date^…>`, shown in the viewer's time zone); text renders names and the
organisation's time zone.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from bot.views.blocks import (
    Block,
    actions,
    button,
    clip,
    confirm_dialog,
    context,
    escape,
    fields,
    header,
    mention,
    section,
)
from bot.views.format import change, day, moment_text, money, percent, slack_day, slack_moment

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
HOME_REQUESTS_SHOWN = 5


def plain_amount(value: Decimal) -> str:
    """50, 49.5: for inputs and button values (never 5E+1)."""
    return format(value.normalize(), "f")


def scope_label(scope: str) -> str:
    return SCOPE_LABELS.get(scope, scope)


def _name(names: Mapping[str, str], user: str) -> str:
    if user.startswith("team:") and user not in names:  # a team's raise request (bot/teams/requests.py)
        return f"Team {user[5:]}"
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
    last7_usd: Decimal = Decimal(0)
    prev7_usd: Decimal = Decimal(0)
    month_end: date | None = None  # the last day of the month the pace is projected to
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

    @property
    def granted(self) -> Decimal:
        return self.granted_usd if self.granted_usd is not None else self.amount_usd

    @property
    def limit_now_usd(self) -> Decimal:
        """The requester's limit as things stand: after the raise once approved, else before."""
        return self.limit_after_usd if self.status == "approved" else self.limit_usd

    def name(self, user: str | None) -> str:
        return _name(self.names, user) if user else "nobody"


def button_value(view: RequestView) -> str:
    """What the decision buttons carry: enough to draw the modals without a database read."""
    return json.dumps(
        {"request_id": view.id, "requester": view.requester, "amount": plain_amount(view.amount_usd),
         "scope": view.scope},
        separators=(",", ":"),
    )


# -- shared phrases ------------------------------------------------------------------------------

def _scope_words(view: RequestView) -> str:
    return f"for {view.month_label.split()[0]} only" if view.scope == "month" else "from now on"


def standing_words(spent: Decimal, limit: Decimal) -> str:
    """`$50.33 of $125 (40%)`, or `$128.82: $3.82 over $125`."""
    if spent > limit:
        return f"{money(spent)}: {money(spent - limit)} over {money(limit)}"
    share = f" ({percent(spent / limit)})" if limit > 0 else ""
    return f"{money(spent)} of {money(limit)}{share}"


def left_words(spent: Decimal, limit: Decimal) -> str:
    """`$74.67 left`, `nothing left`, `$3.82 over`."""
    if spent > limit:
        return f"{money(spent - limit)} over"
    return "nothing left" if spent == limit else f"{money(limit - spent)} left"


def _pace_words(view: RequestView) -> str:
    by = f" by {day(view.month_end)}" if view.month_end else ""
    if view.projected_usd > view.limit_usd:
        return f"about {money(view.projected_usd)}{by}: {money(view.projected_usd - view.limit_usd)} over today's limit"
    return f"about {money(view.projected_usd)}{by}: within today's limit"


def _cover_words(view: RequestView) -> str:
    spare = view.limit_after_usd - view.projected_usd
    if spare >= 0:
        return f"covers their pace, {money(spare)} to spare"
    return f"{money(-spare)} short of their pace"


def _week_words(view: RequestView) -> str:
    if view.prev7_usd <= 0 and view.last7_usd <= 0:
        return "no spend"
    return f"{money(view.last7_usd)}, {change(view.last7_usd, view.prev7_usd)} on the week before"


def _who_asks(view: RequestView) -> str:
    """The header: plain text (no mentions there), the requester's display name when known."""
    if view.requester not in view.names:
        return f"{'Request' if view.pending else 'Requested'}: {money(view.amount_usd)} more"
    verb = "asks" if view.pending else "asked"
    return f"{view.name(view.requester)} {verb} for {money(view.amount_usd)} more"


def _reason(view: RequestView) -> str:
    if view.reason:
        return f">{escape(clip(view.reason, REASON_MAX))}"
    return "_No reason given._"


def _outcome_slack(view: RequestView) -> str:
    when = slack_moment(view.decided_at) if view.decided_at else ""
    if view.status == "approved":
        who = "automatically" if view.automatic else f"by {mention(view.decided_by or '')}"
        what = f"Approved {money(view.granted)} of {money(view.amount_usd)}" if view.partial else "Approved"
        line = (f":white_check_mark: *{what}* {who} {when}: limit {money(view.limit_usd)} → "
                f"{money(view.limit_after_usd)} {_scope_words(view)}.")
    elif view.status == "denied":
        line = f":x: *Denied* by {mention(view.decided_by or '')} {when}. The limit stays {money(view.limit_usd)}."
    else:
        line = f":hourglass: *Expired* {when} with no decision. The limit stays {money(view.limit_usd)}."
    if view.note:
        line += f"\n>{escape(clip(view.note, REASON_MAX))}"
    return line


def _outcome_text(view: RequestView) -> str:
    when = moment_text(view.decided_at) if view.decided_at else ""
    if view.status == "approved":
        who = "automatically" if view.automatic else f"by {view.name(view.decided_by)}"
        what = f"Approved {money(view.granted)} of {money(view.amount_usd)}" if view.partial else "Approved"
        line = (f"{what} {who} on {when}: limit {money(view.limit_usd)} -> {money(view.limit_after_usd)} "
                f"{_scope_words(view)}.")
    elif view.status == "denied":
        line = f"Denied by {view.name(view.decided_by)} on {when}. The limit stays {money(view.limit_usd)}."
    else:
        line = f"Expired on {when} with no decision. The limit stays {money(view.limit_usd)}."
    if view.note:
        line += f"\n  Note: {view.note}"
    return line


# -- the approver's message ---------------------------------------------------------------------

def decision_buttons(view: RequestView, *, unique: bool = False, primary: bool = True) -> Block:
    """Approve (with a confirm dialog), Other amount, Deny. `unique` suffixes the action ids with the
    request id (`approve_request:12`) where several requests share one view (App Home); `primary=False`
    leaves Approve unstyled (only one primary button per view)."""
    value = button_value(view)
    suffix = f":{view.id}" if unique else ""
    who = view.name(view.requester)
    confirm = confirm_dialog(
        f"Approve {money(view.amount_usd)} more?",
        f"{mention(view.requester)}'s limit goes from {money(view.limit_usd)} to {money(view.limit_after_usd)} "
        f"({scope_label(view.scope)}).",
        ok="Approve",
    )
    return actions(
        button("Approve", APPROVE_ACTION + suffix, value=value, style="primary" if primary else None, confirm=confirm,
               label=f"Approve {money(view.amount_usd)} more for {who}"),
        button("Other amount", OTHER_AMOUNT_ACTION + suffix, value=value,
               label=f"Approve another amount for {who}"),
        button("Deny", DENY_ACTION + suffix, value=value, label=f"Deny {who}'s request"),
        block_id=f"decide_{view.id}",
    )


def approval_fallback(view: RequestView) -> str:
    who = view.name(view.requester)
    if view.pending:
        return (f"{who} asks for {money(view.amount_usd)} more ({scope_label(view.scope)}); "
                f"spent {standing_words(view.spent_usd, view.limit_usd)}")
    if view.status == "approved":
        return f"Approved: {who} gets {money(view.granted)} more (limit {money(view.limit_after_usd)})"
    if view.status == "denied":
        return f"Denied: {who}'s request for {money(view.amount_usd)} more"
    return f"Expired: {who}'s request for {money(view.amount_usd)} more"


def approval_blocks(view: RequestView) -> list[Block]:
    """The approver's DM: who asks for how much, why, and the arithmetic; then the buttons, or the outcome."""
    blocks: list[Block] = [header(_who_asks(view))]
    if not view.pending:
        blocks.append(section(_outcome_slack(view), block_id=f"outcome_{view.id}"))
    if view.escalated_from:
        waiting = ", ".join(mention(u) for u in view.escalated_from)
        blocks.append(context(f":rotating_light: Sent to you too: {waiting} has not decided yet."))
    blocks.append(section(f"{mention(view.requester)} · {_scope_words(view)}\n{_reason(view)}"))
    if view.pending:
        blocks.append(fields([
            f"*Spent this month*\n{standing_words(view.spent_usd, view.limit_usd)}",
            f"*Last 7 days*\n{_week_words(view)}",
            f"*Pace*\n{_pace_words(view)}",
            f"*If approved*\nlimit {money(view.limit_after_usd)}: {_cover_words(view)}",
        ]))
        blocks.append(decision_buttons(view))
        blocks.append(context(f"Asked {slack_moment(view.created_at)} · expires {slack_moment(view.expires_at)} · "
                              f"approvers: {', '.join(mention(a) for a in view.approvers) or 'admins'}"))
    else:
        blocks.append(context(f"Spent this month {standing_words(view.spent_usd, view.limit_now_usd)} · "
                              f"last 7 days {_week_words(view)} · asked {slack_moment(view.created_at)}"))
    return blocks


def approval_text(view: RequestView) -> str:
    lines = [_who_asks(view)]
    if not view.pending:
        lines.append("  " + _outcome_text(view))
    if view.escalated_from:
        lines.append(f"  (sent to you too: {', '.join(view.name(u) for u in view.escalated_from)} has not decided yet)")
    lines.append(f"  {money(view.amount_usd)} more {_scope_words(view)}. "
                 + (f'Reason: "{view.reason}"' if view.reason else "No reason given."))
    if view.pending:
        lines.append(f"  Spent this month {standing_words(view.spent_usd, view.limit_usd)}; last 7 days "
                     f"{_week_words(view)}")
        lines.append(f"  Pace {_pace_words(view)}; if approved, limit {money(view.limit_after_usd)}: "
                     f"{_cover_words(view)}")
        lines.append(f"  Asked {moment_text(view.created_at)}; expires {moment_text(view.expires_at)}")
        lines.append("  [Approve]  [Other amount]  [Deny]")
    else:
        lines.append(f"  Spent this month {standing_words(view.spent_usd, view.limit_now_usd)}")
    lines.append(f"  Approvers: {', '.join(view.name(a) for a in view.approvers) or 'admins'}")
    return "\n".join(lines)


def reminder_text(view: RequestView, hours_waiting: int, *, slack: bool = True) -> str:
    who = mention(view.requester) if slack else view.name(view.requester)
    expires = slack_moment(view.expires_at) if slack else moment_text(view.expires_at)
    icon = ":alarm_clock: " if slack else ""
    return (f"{icon}Still waiting for you: {who}'s request for {money(view.amount_usd)} more, asked "
            f"{hours_waiting} hours ago. It expires {expires}.")


def reminder_blocks(view: RequestView, hours_waiting: int) -> list[Block]:
    return [section(reminder_text(view, hours_waiting))]


# -- App Home -------------------------------------------------------------------------------------

def home_pending_blocks(views: list[RequestView]) -> list[Block]:
    """Requests waiting for this approver, oldest first, with the same buttons as the DM; only the
    oldest request's Approve is primary (the next thing to do)."""
    if not views:
        return []
    blocks: list[Block] = [header(f"Waiting for your decision ({len(views)})")]
    for index, view in enumerate(views[:HOME_REQUESTS_SHOWN]):
        line = (f"*{escape(view.name(view.requester))}* asks for *{money(view.amount_usd)} more* "
                f"{_scope_words(view)} · spent {standing_words(view.spent_usd, view.limit_usd)} · "
                f"expires {slack_day(view.expires_at)}")
        if view.reason:
            line += f"\n{_reason(view)}"
        blocks.append(section(line))
        blocks.append(decision_buttons(view, unique=True, primary=index == 0))
    if len(views) > HOME_REQUESTS_SHOWN:
        blocks.append(context(f"…and {len(views) - HOME_REQUESTS_SHOWN} more in your DMs"))
    return blocks


def home_pending_text(views: list[RequestView]) -> str:
    if not views:
        return ""
    lines = [f"Waiting for your decision ({len(views)})"]
    for view in views:
        lines.append(f"  {view.name(view.requester)}: {money(view.amount_usd)} more {_scope_words(view)}; "
                     f"expires {moment_text(view.expires_at)}")
    return "\n".join(lines)
