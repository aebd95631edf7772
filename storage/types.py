"""Column types that keep money exact and time in UTC on every backend."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal

from sqlalchemy import BigInteger, DateTime, Numeric
from sqlalchemy.types import TypeDecorator

# Money is held to the picodollar (1e-12 USD): a single cached token of the cheapest
# models costs ~1e-8 USD, so per-event costs stay exact to four more digits.
MONEY_SCALE = 12
PICO = Decimal(1).scaleb(-MONEY_SCALE)


def quantize_money(value: Decimal) -> Decimal:
    return value.quantize(PICO, rounding=ROUND_HALF_EVEN)


class Money(TypeDecorator):
    """An exact USD amount.

    PostgreSQL stores NUMERIC(38, 12). SQLite has no decimal type (it would store a
    binary float), so there the value is a 64-bit integer count of picodollars:
    `+` and `SUM()` in SQL stay exact on both, and rollup upserts can add in place.
    The SQLite range is ±$9.2 million per stored value, far above one person's month.
    """

    impl = Numeric(38, MONEY_SCALE)
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(Numeric(38, MONEY_SCALE, asdecimal=True))

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if not isinstance(value, Decimal):
            value = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
        if dialect.name == "sqlite":
            return int(quantize_money(value).scaleb(MONEY_SCALE))
        return quantize_money(value)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if dialect.name == "sqlite":
            return Decimal(int(value)).scaleb(-MONEY_SCALE)
        return Decimal(value)

    @property
    def python_type(self):
        return Decimal


def money_from_db(value, dialect_name: str) -> Decimal:
    """Convert a raw driver value (from hand-written SQL) the way `Money` would."""
    if value is None:
        return Decimal(0)
    if dialect_name == "sqlite":
        return Decimal(int(value)).scaleb(-MONEY_SCALE)
    return Decimal(value)


def money_to_db(value: Decimal, dialect_name: str):
    if dialect_name == "sqlite":
        # costs are quantized once when priced; integral() only guards the exception
        scaled = value.scaleb(MONEY_SCALE)
        return int(scaled) if scaled == scaled.to_integral_value() else int(quantize_money(value).scaleb(MONEY_SCALE))
    return quantize_money(value)


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes in, aware UTC datetimes out, whatever the backend keeps."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
