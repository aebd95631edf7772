"""The reconciliation answer (`/tokens admin reconcile [month]`) and its lines in Data to check."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from bot.views.blocks import Block, clip, context, escape, header, section, table
from bot.views.format import money

ROWS_SHOWN = 12  # over-tolerance rows first; a phone screen or two
CENT = Decimal("0.01")


@dataclass(frozen=True)
class DriftLine:
    provider: str
    day: date | None
    project: str
    ledger: Decimal
    bill: Decimal
    pct: str  # "+4.2%", "no bill"
    over: bool

    @property
    def drift(self) -> Decimal:
        return self.ledger - self.bill


@dataclass(frozen=True)
class ReconcileView:
    month_label: str  # "November 2026"
    tolerance_pct: Decimal
    rows: tuple[DriftLine, ...]  # over tolerance first, then the largest drifts
    totals: tuple[DriftLine, ...]
    over_count: int


def drift_line_text(line: DriftLine) -> str:
    where = f"{line.provider} · {line.day:%b %-d}" if line.day else f"{line.provider} · month"
    project = (f" · {line.project}" if line.project.startswith("(") else
               f" · `{escape(clip(line.project, 60))}`" if line.project else "")
    return (f"• {where}{project}: ledger {money(line.ledger)}, bill {money(line.bill)}, "
            f"drift {_signed(line.drift)} ({line.pct})")


def _signed(value: Decimal) -> str:
    if abs(value) < CENT / 2:
        return "$0"
    return ("+" if value > 0 else "") + money(value)


def reconcile_fallback(view: ReconcileView) -> str:
    if not view.totals:
        return f"Reconciliation {view.month_label}: no bill stored yet."
    parts = [f"{t.provider} ledger {money(t.ledger)} vs bill {money(t.bill)} ({t.pct})" for t in view.totals]
    return f"Reconciliation {view.month_label}: " + "; ".join(parts)


def reconcile_blocks(view: ReconcileView) -> list[Block]:
    blocks: list[Block] = [header(f"Reconciliation · {view.month_label}")]
    if not view.totals:
        return [*blocks, section("No bill stored for this month yet. Pulls run on their schedule, or now with "
                                 "`tokenbot sources sync`.")]
    summary = [f"*{t.provider}*: ledger {money(t.ledger)} · bill {money(t.bill)} · drift {_signed(t.drift)} "
               f"({t.pct})" + (" :warning:" if t.over else "") for t in view.totals]
    blocks.append(section("\n".join(summary)))
    if view.rows:
        with_project = any(line.project and not line.project.startswith("(") for line in view.rows)
        rows = [["Provider", "Day", *(["Project"] if with_project else []), "Ledger", "Bill", "Drift", "%"]]
        for line in view.rows[:ROWS_SHOWN]:
            rows.append([line.provider, f"{line.day:%b %-d}" if line.day else "month",
                         *([clip(line.project or "–", 40)] if with_project else []),
                         money(line.ledger), money(line.bill), _signed(line.drift),
                         line.pct + (" ⚠" if line.over else "")])
        align = ["left", "left", *(["left"] if with_project else []), "right", "right", "right", "right"]
        blocks.append(table(rows, align=align))
    more = len(view.rows) - ROWS_SHOWN
    note = (f"{more} more rows: `tokenbot reconcile` prints them all. " if more > 0 else "")
    note += (f"{view.over_count} day·project rows over the {view.tolerance_pct}% tolerance. "
            if view.over_count else f"Every day·project within {view.tolerance_pct}%. ")
    blocks.append(context(note + "Usual causes: cache writes, batch discounts, priority tier, late buckets; "
                          "see the README, \"Provider sources\"."))
    return blocks
