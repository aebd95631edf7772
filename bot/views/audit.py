"""The decision history (`/tokens admin audit`): requests, decisions, admin changes, newest first."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from bot.views.approvals import scope_label
from bot.views.blocks import Block, context, escape, fit, header, long_text_sections, mention, section
from bot.views.format import moment_text, money, slack_moment


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
        return mention(user) if slack else names.get(user, user)

    def usd(key: str) -> str:
        return money(Decimal(d[key])) if d.get(key) is not None else "?"

    when = slack_moment(line.at) if slack else moment_text(line.at)
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
    elif line.action.startswith("breaker."):  # the runaway breaker (bot/breaker/): a person or a bare key
        subject = line.subject or "?"
        target = who(subject) if subject[:1] in ("U", "W") and subject.isalnum() else (
            f"key `{escape(subject)}`" if slack else f"key {subject}")
        text = {
            "breaker.tripped": f"the runaway breaker tripped for {target}: {usd('window_usd')} in the window",
            "breaker.pause": f"{who(line.actor)} paused {target} (runaway breaker)",
            "breaker.resume": f"{who(line.actor)} resumed {target} (runaway breaker)",
            "breaker.ignore": f"{who(line.actor)} marked {target}'s runaway spend as expected for 24 h",
            "breaker.auto_resume": f"{target} resumed by itself (runaway breaker)",
        }.get(line.action, f"{who(line.actor)} {word} {target}")
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
    out = ["Approval history" + (f" for {names.get(subject, subject)}" if subject else "")]
    if not lines:
        out.append("  No requests or decisions yet.")
    out += ["  " + _audit_line(line, names, slack=False) for line in lines]
    return "\n".join(out)
