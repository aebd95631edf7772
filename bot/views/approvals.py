"""The approval flow on screen: the approver's DM, the requester's notices, the modals,
the App Home list and the audit history. Each Block Kit renderer has a plain-text twin
(the demo prints those), and both are built from the view models below only.

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
from typing import Any

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
    fit,
    header,
    long_text_sections,
    mention,
    plain,
    section,
    sparkline,
)
from bot.views.format import money, percent

APPROVE_ACTION = "approve_request"
DENY_ACTION = "deny_request"
OTHER_AMOUNT_ACTION = "approve_other_amount"
REQUEST_ACTION = "request_budget"

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


# -- what the requester sees --------------------------------------------------------------------

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


# -- modals ---------------------------------------------------------------------------------------

def _text_input(block_id: str, label: str, *, placeholder: str | None = None, initial: str | None = None,
                multiline: bool = False, optional: bool = False, max_length: int | None = None,
                hint: str | None = None) -> Block:
    element: Block = {"type": "plain_text_input", "action_id": block_id}
    if placeholder:
        element["placeholder"] = plain(placeholder, 150)
    if initial:
        element["initial_value"] = initial
    if multiline:
        element["multiline"] = True
    if max_length:
        element["max_length"] = max_length
    block: Block = {"type": "input", "block_id": block_id, "label": plain(label, 2000), "element": element}
    if optional:
        block["optional"] = True
    if hint:
        block["hint"] = plain(hint, 2000)
    return block


def _scope_option(scope: str, description: str) -> Block:
    return {"text": plain(scope_label(scope).capitalize(), 75), "value": scope,
            "description": plain(description, 75)}


def request_modal(max_usd: Decimal) -> Block:
    options = [
        _scope_option("month", "The extra budget ends with the month"),
        _scope_option("standing", "Raises your monthly budget from now on"),
    ]
    return {
        "type": "modal",
        "callback_id": REQUEST_MODAL,
        "title": plain("Request more budget", 24),
        "submit": plain("Send request", 24),
        "close": plain("Cancel", 24),
        "blocks": [
            section("Ask your approver for more AI budget. They decide with one click; "
                    "your limit changes only when they approve."),
            _text_input(AMOUNT_BLOCK, "How much more (USD)", placeholder="50",
                        hint=f"The raise, not the new total. At most {money(max_usd)}."),
            _text_input(REASON_BLOCK, "Why", placeholder="e.g. eval run for the Q4 launch", multiline=True,
                        optional=True, max_length=REASON_MAX),
            {"type": "input", "block_id": SCOPE_BLOCK, "label": plain("For how long", 2000),
             "element": {"type": "radio_buttons", "action_id": SCOPE_BLOCK, "options": options,
                         "initial_option": options[0]}},
        ],
    }


@dataclass(frozen=True)
class DecisionContext:
    """What a decision modal carries in `private_metadata` (≤ 3000 chars)."""

    request_id: int
    requester: str
    amount: str
    scope: str
    channel: str | None = None
    message_ts: str | None = None
    response_url: str | None = None

    def dump(self) -> str:
        data = {k: v for k, v in self.__dict__.items() if v is not None}
        text = json.dumps(data, separators=(",", ":"))
        if len(text) > 3000:  # a response_url is short in practice; never break the modal for it
            data.pop("response_url", None)
            text = json.dumps(data, separators=(",", ":"))
        return text

    @classmethod
    def load(cls, text: str) -> DecisionContext:
        data = json.loads(text)
        return cls(**{k: data.get(k) for k in cls.__dataclass_fields__})


def _ask_summary(ctx: DecisionContext) -> str:
    return (f"{mention(ctx.requester)} asked for *{money(Decimal(ctx.amount))} more*, "
            f"{scope_label(ctx.scope)} (request #{ctx.request_id}).")


def deny_modal(ctx: DecisionContext) -> Block:
    return {
        "type": "modal",
        "callback_id": DENY_MODAL,
        "private_metadata": ctx.dump(),
        "title": plain("Deny request", 24),
        "submit": plain("Deny", 24),
        "close": plain("Cancel", 24),
        "blocks": [
            section(_ask_summary(ctx)),
            _text_input(REASON_BLOCK, "Reason (they will see it)", multiline=True, optional=True,
                        max_length=REASON_MAX, placeholder="e.g. let's review the eval plan first"),
        ],
    }


def amount_modal(ctx: DecisionContext) -> Block:
    return {
        "type": "modal",
        "callback_id": AMOUNT_MODAL,
        "private_metadata": ctx.dump(),
        "title": plain("Approve an amount", 24),
        "submit": plain("Approve", 24),
        "close": plain("Cancel", 24),
        "blocks": [
            section(_ask_summary(ctx)),
            _text_input(AMOUNT_BLOCK, "Amount to approve (USD)", initial=plain_amount(Decimal(ctx.amount)),
                        hint="The raise you grant; the audit keeps what was asked and what you granted."),
            _text_input(NOTE_BLOCK, "Note to them", multiline=True, optional=True, max_length=REASON_MAX),
        ],
    }


def notice_modal(title: str, text: str) -> Block:
    """A read-only modal, e.g. a refusal shown where the click came from a modal or the App Home."""
    return {
        "type": "modal",
        "title": plain(title, 24),
        "close": plain("Close", 24),
        "blocks": [section(text)],
    }


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


# -- audit history --------------------------------------------------------------------------------

@dataclass(frozen=True)
class AuditLine:
    at: datetime  # local
    actor: str
    action: str
    subject: str | None
    request_id: int | None
    details: Mapping[str, Any]


ACTION_WORDS = {
    "request.created": "asked",
    "request.approved": "approved",
    "request.auto_approved": "auto-approved",
    "request.denied": "denied",
    "request.expired": "expired",
    "request.reminded": "reminded",
}


def _audit_line(line: AuditLine, names: Mapping[str, str], *, slack: bool) -> str:
    d = line.details

    def who(user: str | None) -> str:
        if not user:
            return "?"
        if user == "tokenbot":
            return "tokenbot"
        return mention(user) if slack else _name(names, user)

    def usd(key: str) -> str:
        return money(Decimal(d[key])) if d.get(key) is not None else "?"

    when = slack_date(line.at, local_text(line.at)) if slack else local_text(line.at)
    ref = f"#{line.request_id}" if line.request_id else ""
    word = ACTION_WORDS.get(line.action, line.action.replace("_", " "))
    scope = scope_label(d.get("scope", "")) if d.get("scope") else ""
    if line.action == "request.created":
        text = f"{who(line.subject)} asked for {usd('requested_usd')} more, {scope}"
    elif line.action in ("request.approved", "request.auto_approved"):
        text = (f"{who(line.actor) if line.action == 'request.approved' else 'auto'} approved {usd('granted_usd')} "
                f"(asked {usd('requested_usd')}) for {who(line.subject)}, {scope}; "
                f"limit {usd('limit_before_usd')} → {usd('limit_after_usd')}")
    elif line.action == "request.denied":
        text = f"{who(line.actor)} denied {who(line.subject)}'s {usd('requested_usd')}"
        if d.get("note"):
            text += f": \"{escape(d['note']) if slack else d['note']}\""
    elif line.action == "request.expired":
        text = f"{who(line.subject)}'s request for {usd('requested_usd')} expired"
    elif line.action == "request.reminded":
        text = f"reminded the approvers of {who(line.subject)}'s request"
        if d.get("escalated_to"):
            text += " and sent it to " + ", ".join(who(u) for u in d["escalated_to"])
    elif line.action == "set_budget":
        text = f"{who(line.actor)} set {who(line.subject)}'s monthly budget to {usd('monthly_usd')}"
        if d.get("previous_usd") is not None:
            text += f" (was {usd('previous_usd')})"
    elif line.action == "set_approver":
        text = f"{who(line.actor)} made {who(d.get('approver'))} the approver of {who(line.subject)}"
    elif line.action == "link_identity":
        external = str(d.get("external_id", "?"))
        text = f"{who(line.actor)} linked `{escape(external) if slack else external}` to {who(line.subject)}"
    else:
        text = f"{who(line.actor)} {word} {who(line.subject)}"
    return f"{when}  {ref}  {text}" if ref else f"{when}  {text}"


def audit_fallback(subject: str | None, lines: list[AuditLine]) -> str:
    return f"Approval history ({len(lines)} entries)"


def audit_blocks(subject: str | None, lines: list[AuditLine], names: Mapping[str, str]) -> list[Block]:
    title = "Approval history" + (" for one person" if subject else "")
    blocks: list[Block] = [header(title)]
    if subject:
        blocks.append(context(f"Requests and decisions for {mention(subject)}, newest first"))
    if not lines:
        blocks.append(section("No requests or decisions yet."))
        return blocks
    blocks += long_text_sections([_audit_line(line, names, slack=True) for line in lines])
    return fit(blocks)


def audit_text(subject: str | None, lines: list[AuditLine], names: Mapping[str, str]) -> str:
    out = ["Approval history" + (f" for {_name(names, subject)}" if subject else "")]
    if not lines:
        out.append("  No requests or decisions yet.")
    out += ["  " + _audit_line(line, names, slack=False) for line in lines]
    return "\n".join(out)
