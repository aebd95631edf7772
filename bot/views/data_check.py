""""Data to check", for admins only (their App Home): spend under ids not linked to anyone, and
models stored without a price, each with the command that fixes it. Never posted to a channel."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from bot.views.blocks import Block, clip, context, escape, header, long_text_sections
from bot.views.format import money, plural, tokens
from bot.views.reconcile import DriftLine, drift_line_text

ROWS_SHOWN = 10


@dataclass(frozen=True)
class DataCheckView:
    month_label: str  # "November"
    unlinked: tuple[tuple[str, Decimal, int], ...]  # (id, cost, tokens) this month, largest first
    unpriced: tuple[tuple[str, int, int], ...]  # (model, calls, tokens) this month
    drift: tuple[DriftLine, ...] = ()  # ledger vs provider bill over the tolerance this month (SPEC 10)
    tolerance_pct: Decimal = Decimal(1)

    @property
    def empty(self) -> bool:
        return not self.unlinked and not self.unpriced and not self.drift


def data_check_blocks(view: DataCheckView) -> list[Block]:
    if view.empty:
        return []
    lines: list[str] = []
    if view.unlinked:
        total = sum((cost for _, cost, _ in view.unlinked), Decimal(0))
        lines.append(f"*{money(total)} under {plural(len(view.unlinked), 'unlinked id')}* in {view.month_label}: "
                     "nobody's budget counts it until you link each id with "
                     "`/tokens admin link &lt;id&gt; @person`.")
        lines += [f"• `{escape(clip(key, 80))}`: {money(cost)} · {tokens(count)} tokens"
                  for key, cost, count in view.unlinked[:ROWS_SHOWN]]
        if len(view.unlinked) > ROWS_SHOWN:
            lines.append(f"…and {len(view.unlinked) - ROWS_SHOWN} more")
    if view.unpriced:
        lines.append(f"*{plural(len(view.unpriced), 'model')} without a price* in {view.month_label}, counted as $0: "
                     "add them to `[pricing.models]` in the config, then run `tokenbot reprice`.")
        lines += [f"• `{escape(clip(model, 80))}`: {plural(calls, 'call')} · {tokens(count)} tokens"
                  for model, calls, count in view.unpriced[:ROWS_SHOWN]]
        if len(view.unpriced) > ROWS_SHOWN:
            lines.append(f"…and {len(view.unpriced) - ROWS_SHOWN} more")
    if view.drift:
        lines.append(f"*The ledger and the provider bill disagree* by more than {view.tolerance_pct}% on "
                     f"{plural(len(view.drift), 'day')} in {view.month_label}: see `/tokens admin reconcile`.")
        lines += [drift_line_text(line) for line in view.drift[:ROWS_SHOWN]]
        if len(view.drift) > ROWS_SHOWN:
            lines.append(f"…and {len(view.drift) - ROWS_SHOWN} more")
    return [header("Data to check"), *long_text_sections(lines),
            context("Only admins see this section.")]
