"""Numbers for people (1.73M tokens, $11.51, 42%) and money and scopes as JSON carries them.

`money` is for people to read; `json_money` is for programs (the limits API, `limit.changed`):
a decimal string, never a float, with no currency sign and no rounding to cents.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal


def money(value: Decimal, *, exact: bool = False) -> str:
    """$1,234.57; amounts under a cent keep enough digits to not read as zero."""
    if exact:
        return f"${value.normalize():,f}"
    sign = "-" if value < 0 else ""
    value = abs(value)
    if value == 0:
        return "$0.00"
    if value < Decimal("0.01"):
        return f"{sign}${value.quantize(Decimal('0.0001'), rounding=ROUND_HALF_UP)}"
    return f"{sign}${value.quantize(Decimal('0.01'), rounding=ROUND_HALF_UP):,}"


def tokens(count: int) -> str:
    """1.73M, 12.4K, 950."""
    for size, suffix in ((1_000_000_000_000, "T"), (1_000_000_000, "B"), (1_000_000, "M"), (1_000, "K")):
        if abs(count) >= size:
            value = Decimal(count) / size
            digits = 2 if value < 10 else 1 if value < 100 else 0
            text = f"{value.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)}"
            return f"{text}{suffix}"
    return str(count)


def percent(share: Decimal) -> str:
    return f"{(share * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP)}%"


def json_money(value: Decimal) -> str:
    """A USD amount for JSON: a string, so no client reads it as a binary float ("187.42", "250")."""
    return f"{value.quantize(value.__class__('0.000001')).normalize():f}"


def json_scope(scope: str) -> str:
    """A request's scope as the limits API and `limit.changed` name it."""
    return "this_month" if scope == "month" else "from_now_on"
