"""Digest charts: cost per day (daily digests, 30 days) or per week (weekly digests, 12 weeks),
stacked by the top people or models, the covered day or week marked, as PNG bytes.

Made to be read on a phone: Slack shows an uploaded image about 340 px wide there, so the figure
is drawn 6.4 x 4.8 inches at 200 dpi (1280 x 960 px) with 15-17 pt type, which lands near 11 px
on that screen. Three named bands at most plus one grey band for everyone else, drawn at the
bottom so the named ones keep their shape; bars before the covered period are lighter and the
covered bar carries its total. The title and the alt text say the takeaway, not the shape.

Why matplotlib: it is the reference plotting library of the Python world, maintained for
two decades with regular releases, and its Agg backend renders a PNG headless (no display,
no browser, no network) from a plain `Figure`. We never touch `pyplot` and its global
state: each chart is its own `Figure` on a `FigureCanvasAgg`, so a chart can be rendered
in a worker thread (`asyncio.to_thread`) while the event loop keeps serving Slack.

Money stays Decimal in the chart model; it becomes float only here, to be drawn.
The PNG carries text chunks naming what it shows (`tokenbot-days`, `tokenbot-first`,
`tokenbot-last`, `tokenbot-series`, `tokenbot-period`), so a reader (and the tests) can tell
without OCR.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from bot.views.format import change, day, money, percent, weekday

# Colour-blind-safe (Okabe-Ito) for the named series, light grey for everyone else.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442")
OTHERS_COLOUR = "#C8C8C8"
OTHERS = "everyone else"
OTHER_MODELS = "other models"
REST = (OTHERS, OTHER_MODELS)  # the grey band
ZERO = Decimal(0)


@dataclass(frozen=True)
class ChartSeries:
    label: str
    values: tuple[Decimal, ...]  # one per bar of the chart


@dataclass(frozen=True)
class DailyChart:
    """One bar per day (period "day") or per week (period "week", `days` are the weeks' first days)."""

    title: str
    days: tuple[date, ...]
    series: tuple[ChartSeries, ...]  # stacked; "everyone else" (if any) last
    period: str = "day"
    highlight: int | None = None  # the bar of the covered day or week (default: the last)

    @property
    def total(self) -> Decimal:
        return sum((sum(s.values, ZERO) for s in self.series), ZERO)

    def bar_totals(self) -> list[Decimal]:
        return [sum((s.values[i] for s in self.series), ZERO) for i in range(len(self.days))]

    @property
    def marked(self) -> int:
        return self.highlight if self.highlight is not None else len(self.days) - 1

    def bar_name(self, index: int) -> str:
        first = self.days[index]
        return f"week of {day(first)}" if self.period == "week" else weekday(first)

    def takeaway(self, *, short: bool = False) -> str:
        """The covered bar against the one before it: "Thu, Nov 26: $18.05, up 10% on the day before"
        (`short`: without "on the day before", for the chart's own title)."""
        if not self.days:
            return self.title
        totals = self.bar_totals()
        i = self.marked
        name = self.bar_name(i)
        line = f"{name[0].upper()}{name[1:]}: {money(totals[i])}"
        if i > 0:
            line += f", {change(totals[i], totals[i - 1])}"
            if not short:
                line += f" on the {'week' if self.period == 'week' else 'day'} before"
        return line

    def alt_text(self) -> str:
        """What a screen reader says instead of the picture: the covered bar, the peak, the average, who leads."""
        if not self.days:
            return self.title
        unit = "week" if self.period == "week" else "day"
        totals = self.bar_totals()
        peak = max(range(len(totals)), key=lambda k: (totals[k], k))
        average = sum(totals, ZERO) / len(totals)
        text = (f"Bar chart of AI cost per {unit}, {day(self.days[0])} to {day(self.days[-1])}. "
                f"{self.takeaway()}. The {len(totals)}-{unit} average is {money(average)}; the highest {unit} was "
                f"{self.bar_name(peak)} at {money(totals[peak])}.")
        named = [s for s in self.series if s.label not in REST]
        if named and self.total > 0:
            lead = max(named, key=lambda s: sum(s.values, ZERO))
            text += f" {lead.label} has the largest share ({percent(sum(lead.values, ZERO) / self.total)})."
        return text[:1000]


def render_png(chart: DailyChart) -> bytes:
    """Draw the stacked bars, the covered bar marked; return the PNG file's bytes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    n = len(chart.days)
    fig = Figure(figsize=(6.4, 4.8), dpi=200)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    positions = list(range(n))
    marked = chart.marked
    bottom = [0.0] * n
    named = [s for s in chart.series if s.label not in REST]
    rest = [s for s in chart.series if s.label in REST]
    for index, series in enumerate([*rest, *named]):  # everyone else at the bottom, in grey
        values = [float(v) for v in series.values]
        fill = OTHERS_COLOUR if series.label in REST else PALETTE[(index - len(rest)) % len(PALETTE)]
        label = series.label if len(series.label) <= 22 else series.label[:21] + "…"
        bars = ax.bar(positions, values, bottom=bottom, width=0.78, label=label, color=fill, linewidth=0)
        for i, patch in enumerate(bars):
            if i != marked:
                patch.set_alpha(0.45)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    if n:
        ax.annotate(money(Decimal(str(round(bottom[marked], 2)))), (marked, bottom[marked]),
                    xytext=(0, 4), textcoords="offset points", ha="center", va="bottom", fontsize=15,
                    fontweight="bold")
    step = 7 if chart.period == "day" and n > 14 else max(1, n // 4)  # a week apart, counted from the marked bar
    ticks = sorted(range(marked, -1, -step)) if n else []
    ax.set_xticks(ticks, [f"{chart.days[i]:%b} {chart.days[i].day}" for i in ticks], fontsize=14)
    for tick, position in zip(ax.get_xticklabels(), ticks, strict=True):
        if position == marked:
            tick.set_fontweight("bold")
    ax.set_xlim(-0.6, n - 0.4)
    ax.yaxis.set_major_locator(MaxNLocator(nbins=4))
    ax.yaxis.set_major_formatter(FuncFormatter(_dollars))
    ax.tick_params(axis="y", labelsize=14)
    ax.grid(axis="y", color="#E5E5E5", linewidth=1)
    ax.set_axisbelow(True)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    unit = "week" if chart.period == "week" else "day"
    fig.suptitle(chart.takeaway(short=True), x=0.03, ha="left", fontsize=17, fontweight="bold")
    ax.set_title(f"AI cost per {unit}; change on the {unit} before", fontsize=13, loc="left", color="#555555")
    if chart.series:
        handles, labels = ax.get_legend_handles_labels()
        order = [*range(len(rest), len(handles)), *range(len(rest))]  # named first, everyone else last
        ax.legend([handles[i] for i in order], [labels[i] for i in order], loc="upper left", fontsize=13,
                  frameon=False, ncol=2, handlelength=1, columnspacing=1)
        top = max(bottom) if bottom else 0.0
        ax.set_ylim(0, top * 1.35 if top > 0 else 1)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={
        "Title": chart.title,
        "Description": chart.alt_text(),
        "tokenbot-days": str(n),
        "tokenbot-first": chart.days[0].isoformat() if n else "",
        "tokenbot-last": chart.days[-1].isoformat() if n else "",
        "tokenbot-series": ",".join(s.label for s in chart.series),
        "tokenbot-period": chart.period,
    })
    return buffer.getvalue()


def _dollars(value: float, _position: int) -> str:
    if value >= 1000:
        return f"${value / 1000:.1f}k".replace(".0k", "k")
    return f"${value:.0f}" if value >= 10 or value == 0 else f"${value:.2f}".rstrip("0").rstrip(".")
