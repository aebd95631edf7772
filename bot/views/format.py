"""One way to write each kind of number and date for people, and money and scopes as JSON carries them.

For people (every surface, Block Kit and text alike):
- money: `$1,234.57`; whole dollars without cents (`$4,200`, `$150`); a non-zero amount under
  half a cent is `<$0.01`, never `$0.00`; negative amounts `-$3.82`;
- tokens: three significant digits and a suffix, no trailing zero (`219K`, `1.5M`, `98K`, `950`);
- shares: `21%`, `<1%` for a sliver;
- change: words first (`up 12%`, `down 8%`, `flat`, `new`, `up 32×`), so nothing rests on an arrow;
- calendar days (the organisation's days: resets, month ends, digest days): `Dec 1`, or
  `Tue, Dec 1` where the weekday helps;
- moments (a request asked, expiring, decided; "as of"): Slack's `<!date^…>` token, which each
  reader sees in their own time zone and format, with the same words as fallback
  (`Nov 30 at 10:18 AM EST`); the text twin prints that fallback.

`json_money` is for programs (the limits API, `limit.changed`): a decimal string, never a float,
with no currency sign and no rounding to cents.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")


def money(value: Decimal, *, exact: bool = False) -> str:
    """$1,234.57, $4,200, <$0.01; `exact` keeps every stored digit ($0.000123)."""
    sign = "-" if value < 0 else ""
    value = abs(value)
    if exact:
        return f"{sign}${value.normalize():,f}"
    cents = value.quantize(CENT, rounding=ROUND_HALF_UP)
    if cents == 0:
        return "<$0.01" if value > 0 else "$0"
    if cents == cents.to_integral_value():
        return f"{sign}${int(cents):,}"
    return f"{sign}${cents:,}"


def tokens(count: int) -> str:
    """1.73M, 12.4K, 98K, 950: three significant digits at most, no trailing zero."""
    for size, suffix in ((1_000_000_000_000, "T"), (1_000_000_000, "B"), (1_000_000, "M"), (1_000, "K")):
        if abs(count) * 2000 >= size * 1999:  # 999,500 tokens round to 1M, not 1000K
            value = Decimal(count) / size
            digits = 2 if abs(value) < 10 else 1 if abs(value) < 100 else 0
            text = f"{value.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)}"
            if "." in text:
                text = text.rstrip("0").rstrip(".")
            return f"{text}{suffix}"
    return f"{count:,}"


def percent(share: Decimal) -> str:
    """21%; a non-zero share under half a percent is "<1%"."""
    rounded = (share * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    if rounded == 0 and share > 0:
        return "<1%"
    return f"{rounded:,}%"


def change(current: Decimal, baseline: Decimal) -> str:
    """`up 12%`, `down 8%`, `flat`, `up 32×` (ten times or more), `new` (nothing before)."""
    if baseline <= 0:
        return "new" if current > 0 else "flat"
    share = (current - baseline) / baseline
    if share >= 9:  # a factor reads better than "up 3100%"
        return f"up {(current / baseline).quantize(Decimal(1), rounding=ROUND_HALF_UP):,}×"
    rounded = (share * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    if rounded == 0:
        return "flat"
    return f"{'up' if rounded > 0 else 'down'} {abs(rounded):,}%"


def plural(count: int, one: str, many: str | None = None) -> str:
    """`1 person`, `3 people`, `2 calls`."""
    return f"{count:,} {one if count == 1 else many or one + 's'}"


def day(value: date) -> str:
    """A calendar day of the organisation: `Dec 1`."""
    return f"{value:%b} {value.day}"


def weekday(value: date) -> str:
    """A calendar day with its weekday: `Tue, Dec 1`."""
    return f"{value:%a}, {value:%b} {value.day}"


def moment_text(moment: datetime) -> str:
    """A moment in its own (the organisation's) zone: `Nov 30 at 10:18 AM EST`."""
    hour = moment.hour % 12 or 12
    return f"{day(moment.date())} at {hour}:{moment:%M %p} {moment:%Z}".rstrip()


def slack_moment(moment: datetime) -> str:
    """A moment as Slack shows it to each reader (their zone, their clock); `moment_text` as fallback."""
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} at {{time}}|{moment_text(moment)}>"


def slack_day(moment: datetime) -> str:
    """A moment's day as Slack shows it to each reader (`Nov 30`, `tomorrow`), where the time would crowd."""
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}}|{day(moment.date())}>"


def json_money(value: Decimal) -> str:
    """A USD amount for JSON: a string, so no client reads it as a binary float ("187.42", "250")."""
    return f"{value.quantize(value.__class__('0.000001')).normalize():f}"


def json_scope(scope: str) -> str:
    """A request's scope as the limits API and `limit.changed` name it."""
    return "this_month" if scope == "month" else "from_now_on"
