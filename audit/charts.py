"""Bar charts as plain geometry, drawn as SVG by templates/admin/audit/chart.html on the server (no script,
nothing from another host). Labels stay plain strings here: the template escapes them (Llm names and
usernames are user input). Each series has a colour and a pattern of its own, every bar a title and the
figures are also given as a table under the chart, so that a chart reads without colour.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

Format = Callable[[float], str]  # a figure as shown; math.inf included (a latency above the last bucket)
WIDTH = 760
LABEL_CHARS = 24  # longer labels are cut on the axis (the label's title, the bar's and the table have them whole)
FILLS = 7  # fills defined in templates/admin/audit/chart_fills.html
OTHERS_FILL = FILLS - 1  # grey: what the top series leave
OTHERS = "other LLMs"


@dataclass(frozen=True)
class Series:
    label: str
    fill: int  # usage-fill-N


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    fill: int
    title: str

    def __post_init__(self) -> None:  # a tenth of a pixel is fine enough, and keeps the page small
        for name in ("x", "y", "width", "height"):
            object.__setattr__(self, name, round(getattr(self, name), 1))


@dataclass(frozen=True)
class Text:
    x: float
    y: float
    text: str
    anchor: str = "middle"
    title: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "x", round(self.x, 1))
        object.__setattr__(self, "y", round(self.y, 1))


@dataclass
class Chart:
    id: str
    title: str
    unit: str
    series: list[Series]
    height: int = 0
    left: float = 0
    top: float = 0
    right: float = WIDTH
    bottom: float = 0
    horizontal: bool = False  # bars along x (one per entry) rather than columns (one per day)
    description: str = ""
    bars: list[Bar] = field(default_factory=list)
    grid: list[Text] = field(default_factory=list)  # a gridline per value, at x (horizontal) or y, and its label
    labels: list[Text] = field(default_factory=list)  # the categories: days or entries
    values: list[Text] = field(default_factory=list)  # figures written at the end of bars
    headings: list[str] = field(default_factory=list)  # the same figures as a table
    rows: list[list[str]] = field(default_factory=list)
    width: int = WIDTH


def nice_ticks(largest: float, count: int = 4, *, whole: bool = False) -> list[float]:
    """Round gridline values from 0 to at least `largest` (steps of 1, 2, 2.5 or 5 times a power of ten;
    whole numbers only when `whole`: a count has no fractions)."""
    if not largest > 0 or not math.isfinite(largest):
        return [0.0, 1.0]
    rough = max(largest / count, 1) if whole else largest / count
    power = 10 ** math.floor(math.log10(rough))
    steps = [power * m for m in (1, 2, 2.5, 5, 10) if not whole or float(power * m).is_integer()]
    step = next(step for step in steps if step >= rough * (1 - 1e-9))
    steps = math.ceil(largest / step * (1 - 1e-9))
    return [round(step * n, 12) for n in range(steps + 1)]


def axis(ticks: list[float], fmt: Format, plain: bool) -> list[str]:
    """Gridline labels: plain numbers with the decimals their step needs (0.50 beside 1.00), else fmt's."""
    if not plain:
        return [fmt(tick) for tick in ticks]
    exponent = Decimal(repr(ticks[1] - ticks[0])).normalize().as_tuple().exponent
    decimals = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    return [f"{tick:,.{decimals}f}" for tick in ticks]


def short(text: str) -> str:
    """A label cut to LABEL_CHARS for an axis."""
    return text if len(text) <= LABEL_CHARS else text[:LABEL_CHARS - 1] + "…"


def columns_per_day(chart_id: str, title: str, unit: str, days: Sequence[date],
                    series: Sequence[tuple[str, dict[date, float]]], fmt: Format, *,
                    others: dict[date, float] | None = None, plain_axis: bool = True, whole: bool = False) -> Chart:
    """A column per day, stacked from its series bottom up in the legend's order, then `others` (what the
    series leave, grey; told apart by its place, not its label, which a client could choose as an Llm name)."""
    fills = [Series(label, min(n, OTHERS_FILL - 1)) for n, (label, _) in enumerate(series)]
    if others is not None:
        series = [*series, (OTHERS, others)]
        fills.append(Series(OTHERS, OTHERS_FILL))
    chart = Chart(chart_id, title, unit, fills, height=226, left=64, top=10, right=WIDTH - 10, bottom=196)
    totals = [sum(values.get(day, 0) for _, values in series) for day in days]
    ticks = nice_ticks(max(totals, default=0), whole=whole)
    scale = (chart.bottom - chart.top) / ticks[-1]
    chart.grid = [Text(chart.left - 6, chart.bottom - tick * scale, text, "end")
                  for tick, text in zip(ticks, axis(ticks, fmt, plain_axis), strict=True)]
    slot = (chart.right - chart.left) / max(len(days), 1)
    width = max(min(slot * 0.7, 56), 2)
    every = max(1, math.ceil(len(days) / 10))  # at most ~10 dates under the axis
    for n, day in enumerate(days):
        x, y = chart.left + slot * n + (slot - width) / 2, chart.bottom
        for fill, (label, values) in zip(fills, series, strict=True):
            value = values.get(day, 0)
            if value > 0:
                y -= value * scale
                chart.bars.append(Bar(x, y, width, value * scale, fill.fill,
                                      f"{day:%Y-%m-%d}, {label}: {fmt(value)} {unit}"))
        if (len(days) - 1 - n) % every == 0:  # today's always
            chart.labels.append(Text(x + width / 2, chart.bottom + 16, f"{day:%b} {day.day}"))
    chart.headings = ["day (UTC)", *(label for label, _ in series), "total"]
    chart.rows = [[f"{day:%Y-%m-%d}", *(fmt(values.get(day, 0)) for _, values in series), fmt(total)]
                  for day, total in zip(days, totals, strict=True)]
    chart.description = f"{fmt(sum(totals))} {unit} in {len(days)} day(s)"
    if any(totals):
        busiest = max(range(len(days)), key=lambda n: totals[n])
        chart.description += f", the most on {days[busiest]:%Y-%m-%d} ({fmt(totals[busiest])})"
    chart.description += f", by {', '.join(label for label, _ in series)}." if series else "."
    return chart


def bars_per_entry(chart_id: str, title: str, unit: str, entries: Sequence[tuple[str, Sequence[float | None]]],
                   series: Sequence[str], fmt: Format, *, stacked: bool = False, plain_axis: bool = True,
                   whole: bool = False) -> Chart:
    """A horizontal bar per entry, its series' parts end to end (stacked: parts of one figure) or one under
    the other. None: nothing to show; math.inf: beyond the scale (drawn to its end)."""
    lanes = 1 if stacked else len(series)
    thickness, pitch = 14, 14 * lanes + 8
    chart = Chart(chart_id, title, unit, [Series(label, n) for n, label in enumerate(series)], left=190, top=6,
                  right=WIDTH - 90, horizontal=True)
    chart.bottom = chart.top + pitch * max(len(entries), 1)
    chart.height = int(chart.bottom + 22)
    if stacked:
        largest = max((sum(v or 0 for v in values) for _, values in entries), default=0)
    else:
        largest = max((v for _, values in entries for v in values if v is not None and math.isfinite(v)), default=0)
    ticks = nice_ticks(largest, whole=whole)
    span = chart.right - chart.left
    scale = span / ticks[-1]
    chart.grid = [Text(chart.left + tick * scale, chart.bottom + 15, text)
                  for tick, text in zip(ticks, axis(ticks, fmt, plain_axis), strict=True)]
    for n, (label, values) in enumerate(entries):
        top = chart.top + pitch * n + 4
        cut = short(label)
        chart.labels.append(Text(chart.left - 8, top + thickness * lanes / 2 + 4, cut, "end", "" if cut == label else label))
        x = chart.left
        for s, value in enumerate(values):
            if value is None:
                continue
            length = span if not math.isfinite(value) else value * scale
            y = top if stacked else top + s * thickness
            if length > 0:
                chart.bars.append(Bar(x, y, length, thickness - 2, s, f"{label}, {series[s]}: {fmt(value)} {unit}"))
            if stacked:
                x += length
            else:
                chart.values.append(Text(x + length + 4, y + thickness - 4, fmt(value), "start"))
        if stacked:
            chart.values.append(Text(x + 4, top + thickness - 4, fmt(sum(v or 0 for v in values)), "start"))
    chart.headings = ["", *series]
    chart.rows = [[label, *("-" if v is None else fmt(v) for v in values)] for label, values in entries]
    chart.description = f"{', '.join(series)} ({unit}) of {len(entries)} entr{'y' if len(entries) == 1 else 'ies'}."
    return chart
