"""Column types that keep money and counts exact, and time in UTC, on every backend.

Money is held to the picodollar (1e-12 USD): a single cached token of the cheapest models
costs ~1e-8 USD, so per-event costs stay exact to four more digits.

PostgreSQL keeps money as NUMERIC(38, 12) and rollup token sums as NUMERIC(38, 0): `+` and
`SUM()` are exact far beyond any bill (10^26 USD), and an upsert can never overflow.

SQLite has no wide exact number (its integers are 64-bit; `a + b` past 2^63 silently turns
into a binary float, and `SUM()` raises). So money (in picodollars) and rollup token sums are
"wide integers" there, in columns with no type affinity:
- a value below 2^62 in magnitude is stored as a plain INTEGER: every real row, so SQL
  comparisons, ORDER BY and hand-written reads see ordinary integers;
- a larger value (a row past $4.6 million, or tokens past 4.6e18) is stored as fixed-width
  digits (TEXT), exact, and sorted after every integer (right for positive amounts);
- additions happen in the fold with an SQL fast path for small values and the `wide_add`
  function beyond, and every `SUM()` of a wide column is compiled, on SQLite, to the exact
  `wide_sum` aggregate (registered on every connection by `register_sqlite_functions`).
Why not two integer columns (units and picodollars): every reader (ORDER BY cost, cost
comparisons, SUM) would have to change shape, and a sort by cost would need both columns.
One column keeps every query as it is and the rare huge value exact.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal

from sqlalchemy import DateTime, Numeric
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import functions
from sqlalchemy.types import TypeDecorator, UserDefinedType

MONEY_SCALE = 12
PICO = Decimal(1).scaleb(-MONEY_SCALE)
# SQLite: a wide integer is an INTEGER below this magnitude, fixed-width digits from it on
INT_LIMIT = 2**62
# the fast path of an SQL addition: both terms below this, so the sum stays below INT_LIMIT
ADD_FAST_LIMIT = 2**61
_WIDTH = 40
_COMPLEMENT = 10**_WIDTH
WIDE_MAX = 10**38  # PostgreSQL NUMERIC(38, ...) holds at least this much; SQLite text too


def quantize_money(value: Decimal) -> Decimal:
    return value.quantize(PICO, rounding=ROUND_HALF_EVEN)


# -- SQLite wide integers -------------------------------------------------------------------------
def wide_encode(value: int) -> int | str:
    """A Python int -> what a SQLite wide column stores (see the module docstring)."""
    if -INT_LIMIT < value < INT_LIMIT:
        return value
    if not -WIDE_MAX < value < WIDE_MAX:
        raise OverflowError(f"{value} is beyond the range of a stored amount (10^38)")
    if value >= 0:
        return format(value, f"0{_WIDTH}d")
    # negative: "-" sorts before digits; the complement sorts larger magnitudes first
    return "-" + format(_COMPLEMENT + value, f"0{_WIDTH}d")


def wide_decode(value) -> int:
    """What a SQLite wide column (or `wide_sum`) returned -> a Python int."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        if value.startswith("-"):
            return int(value[1:]) - _COMPLEMENT
        return int(value)
    if isinstance(value, float):  # only from hand-written SQL arithmetic; refuse to guess
        raise TypeError(f"a wide integer read back as a float ({value!r}): use wide_sum/wide_add")
    return int(value)


def _wide_add(a, b):
    return wide_encode(wide_decode(a) + wide_decode(b))


def _wide_join(units, parts, scale):
    """units * scale + parts, for the fold's split sums."""
    return wide_encode(wide_decode(units) * int(scale) + wide_decode(parts))


class _WideSum:
    """SQLite aggregate: the exact sum of wide integers (NULL when there were no values)."""

    __slots__ = ("seen", "total")

    def __init__(self) -> None:
        self.total = 0
        self.seen = False

    def step(self, value) -> None:
        # called once per row of every SUM of a wide column on SQLite: the common case first
        if value.__class__ is int:
            self.total += value
            self.seen = True
        elif value is not None:
            self.total += wide_decode(value)
            self.seen = True

    def finalize(self):
        return wide_encode(self.total) if self.seen else None


def register_sqlite_functions(conn) -> None:
    """Give a sqlite3 connection the wide-integer functions every wide column needs."""
    conn.create_function("wide_add", 2, _wide_add, deterministic=True)
    conn.create_function("wide_join", 3, _wide_join, deterministic=True)
    conn.create_aggregate("wide_sum", 1, _WideSum)


class _SqliteWide(UserDefinedType):
    """DDL type BLOB: no affinity, so an INTEGER stays an INTEGER and digits stay TEXT."""

    cache_ok = True

    def get_col_spec(self, **kw) -> str:
        return "BLOB"


class Money(TypeDecorator):
    """An exact USD amount (negative amounts too: ledger corrections)."""

    impl = Numeric(38, MONEY_SCALE)
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "sqlite":
            return dialect.type_descriptor(_SqliteWide())
        return dialect.type_descriptor(Numeric(38, MONEY_SCALE, asdecimal=True))

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        return money_to_db(_as_decimal(value), dialect.name)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return money_from_db(value, dialect.name)

    def coerce_compared_value(self, op, value):
        return self

    @property
    def python_type(self):
        return Decimal


class WideCount(TypeDecorator):
    """A rollup sum of tokens: exact and never overflowing (see the module docstring)."""

    impl = Numeric(38, 0)
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "sqlite":
            return dialect.type_descriptor(_SqliteWide())
        return dialect.type_descriptor(Numeric(38, 0, asdecimal=True))

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        return wide_encode(int(value)) if dialect.name == "sqlite" else int(value)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return wide_decode(value) if dialect.name == "sqlite" else int(value)

    def coerce_compared_value(self, op, value):
        return self

    @property
    def python_type(self):
        return int


def _as_decimal(value) -> Decimal:
    if isinstance(value, Decimal):
        return value
    return Decimal(str(value)) if isinstance(value, float) else Decimal(value)


def money_from_db(value, dialect_name: str) -> Decimal:
    """Convert a raw driver value (from hand-written SQL) the way `Money` would."""
    if value is None:
        return Decimal(0)
    if dialect_name == "sqlite":
        return Decimal(wide_decode(value)).scaleb(-MONEY_SCALE)
    return Decimal(value)


def money_to_db(value: Decimal, dialect_name: str):
    """A Decimal -> the raw driver value `Money` stores (picodollars, wide, on SQLite)."""
    if dialect_name == "sqlite":
        scaled = value.scaleb(MONEY_SCALE)
        if scaled != scaled.to_integral_value():  # costs are quantized once when priced
            scaled = quantize_money(value).scaleb(MONEY_SCALE)
        return wide_encode(int(scaled))
    return quantize_money(value)


def picodollars(value: Decimal) -> int:
    """A Decimal amount -> whole picodollars (rounded half-even)."""
    scaled = value.scaleb(MONEY_SCALE)
    if scaled != scaled.to_integral_value():
        scaled = quantize_money(value).scaleb(MONEY_SCALE)
    return int(scaled)


@compiles(functions.sum, "sqlite")
def _sqlite_exact_sum(element, compiler, **kw):
    """SUM() of a wide column on SQLite -> the exact `wide_sum` aggregate."""
    if isinstance(element.type, Money | WideCount):
        return f"wide_sum({compiler.process(element.clause_expr.element, **kw)})"
    return compiler.visit_function(element, **kw)


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


