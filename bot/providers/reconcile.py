"""Reconciliation (SPEC 10): per provider, UTC day and project, the ledger against the bill.

The ledger side is every stored event whose provider is the source's (pulled buckets with
`count = "all"`, and whatever gateways sent), read by the UTC day the providers bill in
(storage/reconcile_repo.py); the bill side is the stored cost report (`provider_costs`).
Where the ledger has spend without a project on a day (gateways rarely send one), that provider's
day is compared whole, as "(all projects)". Drift = ledger - bill; in percent of the bill. A row is
over when |drift| is at least a cent and above `reconcile.tolerance_pct` of the bill (any drift at
all when the bill is zero).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

from bot.clock import month_first_day, month_last_day, parse_month
from bot.providers.settings import SOURCE_NAMES
from bot.services import Services
from storage import reconcile_repo, sources_repo

CENT = Decimal("0.01")
# a day where some of the ledger's spend has no project (gateway events often carry none) is compared whole
ALL_PROJECTS = "(all projects)"
HUNDRED = Decimal(100)


@dataclass(frozen=True)
class DriftRow:
    provider: str
    day: date | None  # None: the provider's month total
    project: str
    ledger: Decimal
    bill: Decimal
    events: int = 0

    @property
    def drift(self) -> Decimal:
        return self.ledger - self.bill

    @property
    def pct(self) -> Decimal | None:
        return None if self.bill == 0 else self.drift / self.bill * HUNDRED

    def over(self, tolerance_pct: Decimal) -> bool:
        if abs(self.drift) < CENT:
            return False
        pct = self.pct
        return pct is None or abs(pct) > tolerance_pct


@dataclass(frozen=True)
class Reconciliation:
    month: str
    first: date
    last: date
    tolerance_pct: Decimal
    rows: tuple[DriftRow, ...]  # per provider, day, project
    totals: tuple[DriftRow, ...]  # per provider, the month

    @property
    def over(self) -> tuple[DriftRow, ...]:
        return tuple(r for r in self.rows if r.over(self.tolerance_pct))


async def reconcile_month(services: Services, month: str | None = None) -> Reconciliation:
    today = services.clock.now().astimezone(UTC).date()
    first = parse_month(month) if month else month_first_day(today)
    last = min(month_last_day(first), max(today, first))
    async with services.db.session() as session:
        ledger = await reconcile_repo.ledger_by_day(session, list(SOURCE_NAMES), first, last)
        bill = await sources_repo.costs_between(session, first, last)
    keyed: dict[tuple[str, date, str], list] = {}
    unknown = {(p, d) for p, d, project, *_ in ledger if not project}
    for provider, day, project, cost, events in ledger:
        key = (provider, day, ALL_PROJECTS if (provider, day) in unknown else project)
        acc = keyed.setdefault(key, [Decimal(0), Decimal(0), 0])
        acc[0] += cost
        acc[2] += events
    billed = {p for p, *_ in bill}
    for provider, day, project, amount in bill:
        key = (provider, day, ALL_PROJECTS if (provider, day) in unknown else project)
        keyed.setdefault(key, [Decimal(0), Decimal(0), 0])[1] += amount
    rows = tuple(DriftRow(p, d, pr, v[0], v[1], v[2]) for (p, d, pr), v in sorted(keyed.items())
                 if p in billed)  # a provider with no bill stored yet has nothing to reconcile against
    totals = []
    for provider in sorted(billed):
        mine = [r for r in rows if r.provider == provider]
        totals.append(DriftRow(provider, None, "", sum((r.ledger for r in mine), Decimal(0)),
                               sum((r.bill for r in mine), Decimal(0)), sum(r.events for r in mine)))
    return Reconciliation(f"{first:%Y-%m}", first, last, services.settings.sources.tolerance_pct, rows,
                          tuple(totals))


def pct_text(row: DriftRow) -> str:
    pct = row.pct
    if pct is None:
        return "no bill" if row.ledger else "–"
    if abs(pct) < Decimal("0.05"):
        return "0.0%"
    return f"{pct.quantize(Decimal('0.1')):+}%"


def _drift(value: Decimal) -> str:
    return "0.00" if abs(value) < CENT / 2 else f"{value:+.2f}"


def table_text(rec: Reconciliation) -> str:
    """The plain-text table `tokenbot reconcile` prints."""
    head = ("provider", "day", "project", "ledger $", "bill $", "drift $", "drift %", "")
    lines = [head]
    for r in rec.rows:
        lines.append((r.provider, r.day.isoformat(), r.project or "-", f"{r.ledger:.2f}", f"{r.bill:.2f}",
                      _drift(r.drift), pct_text(r), "OVER" if r.over(rec.tolerance_pct) else ""))
    for t in rec.totals:
        lines.append((t.provider, "month", "all", f"{t.ledger:.2f}", f"{t.bill:.2f}", _drift(t.drift), pct_text(t),
                      "OVER" if t.over(rec.tolerance_pct) else ""))
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(head))]
    out = [f"Reconciliation {rec.month} ({rec.first} to {rec.last}, UTC days), tolerance {rec.tolerance_pct}%"]
    if len(lines) == 1:
        out.append("No bill stored for this month yet: run `tokenbot sources sync` (with an admin key set).")
        return "\n".join(out)
    for line in lines:
        out.append("  ".join(str(v).rjust(w) if i >= 3 else str(v).ljust(w)
                             for i, (v, w) in enumerate(zip(line, widths, strict=True))).rstrip())
    over = rec.over
    out.append(f"{len(over)} of {len(rec.rows)} rows over tolerance." if over else "Every row within tolerance.")
    return "\n".join(out)


def now_utc() -> datetime:
    return datetime.now(UTC)
