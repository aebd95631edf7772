"""US dollar amounts as people type them, for `/tokens` and the approval forms alike.

One grammar and one set of answers: `50`, `$50`, `50.5`, `1,000` (commas only as
thousands separators, at most two decimals). A budget may be $0; a request or a grant
must be more than $0 and at most `approvals.max_request_usd`; nothing above $1,000,000
is accepted as a budget. Every refusal ends with the same example, so the person sees
what to type.
"""

from __future__ import annotations

import re
from decimal import Decimal

from bot.views.blocks import escape
from bot.views.format import money

MAX_AMOUNT = Decimal(1_000_000)
EXAMPLE = "use a number of US dollars like `50`, `$50`, `50.5` or `1,000`"
_AMOUNT = re.compile(r"^(?P<sign>-)?\$?(?P<whole>\d{1,3}(?:,\d{3})+|\d+)(?:\.(?P<cents>\d+))?$")


class AmountError(ValueError):
    """An amount we cannot take; the message says why and what to type instead (mrkdwn)."""


def parse_amount(text: str | None, *, maximum: Decimal = MAX_AMOUNT, allow_zero: bool = True) -> Decimal:
    """`50`, `$50`, `50.5`, `1,000` -> Decimal; anything else raises AmountError."""
    raw = (text or "").strip()
    match = _AMOUNT.match(raw)
    if not match:
        shown = escape(raw[:40]) if raw else "nothing"
        raise AmountError(f"Enter an amount: `{shown}` is not one; {EXAMPLE}.")
    if match["cents"] and len(match["cents"]) > 2:
        raise AmountError(f"Use at most two decimals (cents); {EXAMPLE}.")
    value = Decimal(match["whole"].replace(",", "") + "." + (match["cents"] or "0"))
    if match["sign"]:
        value = -value
    if value < 0 or (value == 0 and not allow_zero):
        floor = "$0 or more" if allow_zero else "more than $0"
        raise AmountError(f"The amount must be {floor}; {EXAMPLE}.")
    if value > maximum:
        raise AmountError(f"At most {money(maximum)}: {money(value)} is more than tokenbot accepts here.")
    return value
