"""The approval flow's modals: asking for more budget, denying, approving another amount, and a
read-only notice. Input block ids are the action ids too, so `view_submission` errors key by them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal

from bot.views.approvals import (
    AMOUNT_BLOCK,
    AMOUNT_MODAL,
    DENY_MODAL,
    NOTE_BLOCK,
    REASON_BLOCK,
    REASON_MAX,
    REQUEST_MODAL,
    SCOPE_BLOCK,
    plain_amount,
    scope_label,
)
from bot.views.blocks import Block, mention, plain, section
from bot.views.format import money


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
    return f"{mention(ctx.requester)} asked for *{money(Decimal(ctx.amount))} more*, {scope_label(ctx.scope)}."


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
