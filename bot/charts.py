"""Digest charts: daily cost over the last 30 days, stacked by the top people or models, as PNG bytes.

Why matplotlib: it is the reference plotting library of the Python world, maintained for
two decades with regular releases, and its Agg backend renders a PNG headless (no display,
no browser, no network) from a plain `Figure`. We never touch `pyplot` and its global
state: each chart is its own `Figure` on a `FigureCanvasAgg`, so a chart can be rendered
in a worker thread (`asyncio.to_thread`) while the event loop keeps serving Slack.

Money stays Decimal in the chart model; it becomes float only here, to be drawn.
The PNG carries text chunks naming what it shows (`tokenbot-days`, `tokenbot-first`,
`tokenbot-last`, `tokenbot-series`), so a reader (and the tests) can tell without OCR.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

# Colour-blind-safe (Okabe-Ito) for the named series, grey for "others".
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442")
OTHERS_COLOUR = "#B0B0B0"
OTHERS = "others"


@dataclass(frozen=True)
class ChartSeries:
    label: str
    values: tuple[Decimal, ...]  # one per day of the chart


@dataclass(frozen=True)
class DailyChart:
    title: str
    days: tuple[date, ...]
    series: tuple[ChartSeries, ...]  # stacked bottom to top; "others" (if any) last

    @property
    def total(self) -> Decimal:
        return sum((sum(s.values, Decimal(0)) for s in self.series), Decimal(0))


def render_png(chart: DailyChart) -> bytes:
    """Draw a stacked bar chart, one bar per day; return the PNG file's bytes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    n = len(chart.days)
    fig = Figure(figsize=(10, 4.2), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    positions = list(range(n))
    bottom = [0.0] * n
    colour = 0
    for series in chart.series:
        values = [float(v) for v in series.values]
        if series.label == OTHERS:
            fill = OTHERS_COLOUR
        else:
            fill = PALETTE[colour % len(PALETTE)]
            colour += 1
        label = series.label if len(series.label) <= 28 else series.label[:27] + "…"
        ax.bar(positions, values, bottom=bottom, width=0.8, label=label, color=fill, linewidth=0)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    step = max(1, n // 10)
    ticks = positions[::-1][::step][::-1]  # always label the last day
    ax.set_xticks(ticks, [f"{chart.days[i]:%b %-d}" for i in ticks], fontsize=8)
    ax.set_xlim(-0.6, n - 0.4)
    ax.yaxis.set_major_formatter(FuncFormatter(_dollars))
    ax.tick_params(axis="y", labelsize=8)
    ax.grid(axis="y", color="#E5E5E5", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.set_title(chart.title, fontsize=11, loc="left")
    if chart.series:
        ax.legend(loc="upper left", fontsize=8, frameon=False, ncol=min(len(chart.series), 3))
        top = max(bottom) if bottom else 0.0
        ax.set_ylim(0, top * 1.18 if top > 0 else 1)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={
        "Title": chart.title,
        "tokenbot-days": str(n),
        "tokenbot-first": chart.days[0].isoformat() if n else "",
        "tokenbot-last": chart.days[-1].isoformat() if n else "",
        "tokenbot-series": ",".join(s.label for s in chart.series),
    })
    return buffer.getvalue()


def _dollars(value: float, _position: int) -> str:
    if value >= 1000:
        return f"${value / 1000:.1f}k"
    return f"${value:.0f}" if value >= 10 or value == 0 else f"${value:.2f}"
