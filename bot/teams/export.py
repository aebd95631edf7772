"""The chargeback export: a month's spend, tokens and calls by team, person, model or project.

`tokenbot export --month 2026-11 --by team [--format csv|json]` and
`GET /api/v1/export?month=2026-11&by=team&format=json` give the same rows, read from the
chargeback rollup (usage_team_monthly): every event of the month is in exactly one row, so
the rows add up to the month's total (the digest's) to the cent. Spend with no team (or no
project) is its own row, named `(none)` in `key` and flagged `unattributed: true`.
Amounts are exact decimal strings (every stored digit, the JSON money format of the API);
`spend_usd_cents` rounds each row to the cent for spreadsheets. An empty month is a header
only (CSV) or `[]` (JSON).
"""

from __future__ import annotations

import csv
import io
import re
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from storage import teams_repo
from storage.db import Database

BYS = ("team", "person", "model", "project")
FORMATS = ("csv", "json")
MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
NONE_KEY = "(none)"
COLUMNS = ("key", "unattributed", "spend_usd", "spend_usd_cents", "input_tokens", "output_tokens", "tokens", "calls")


class ExportError(ValueError):
    """A bad month, `by` or format: the message names the parameter and what is accepted."""


def check(month: str | None, by: str | None, fmt: str | None) -> tuple[str, str, str]:
    if not month or not MONTH.match(month):
        raise ExportError("month: must be a month like 2026-11")
    if by not in BYS:
        raise ExportError(f"by: unknown {by!r}; use one of {', '.join(BYS)}")
    fmt = fmt or "csv"
    if fmt not in FORMATS:
        raise ExportError(f"format: unknown {fmt!r}; use csv or json")
    return month, by, fmt


async def export_rows(db: Database, month: str, by: str) -> list[dict[str, Any]]:
    async with db.session() as session:
        rows = await teams_repo.export_rows(session, month, by)
    out = []
    for r in rows:
        t = r.totals
        out.append({
            "key": r.key or NONE_KEY,
            "unattributed": not r.key,
            "spend_usd": _exact(t.cost_usd),
            "spend_usd_cents": str(t.cost_usd.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)),
            "input_tokens": int(t.input_tokens),
            "output_tokens": int(t.output_tokens),
            "tokens": int(t.tokens),
            "calls": int(t.events),
        })
    return out


def _exact(value: Decimal) -> str:
    text = f"{value.normalize():f}"
    return "0" if text in ("-0", "0E-12") else text


def to_csv(rows: list[dict[str, Any]], by: str) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([by, *COLUMNS[1:]])
    for row in rows:
        writer.writerow([row[c] if c != "unattributed" else str(row[c]).lower() for c in COLUMNS])
    return buffer.getvalue()


def total(rows: list[dict[str, Any]]) -> Decimal:
    return sum((Decimal(r["spend_usd"]) for r in rows), Decimal(0))
