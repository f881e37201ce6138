"""Server-rendered SVG charts of seat use and login decisions (no JavaScript).

Pure functions from figures to SVG text: the web console embeds them, tests
read them. Each chart is accessible on its own: ``role="img"``, a
``<title>`` and ``<desc>`` tied to it with ``aria-labelledby``, text labels
on the axes and a legend, colours with enough contrast on white, and a
``viewBox`` so it scales down to a 360 px wide phone screen.
Every text shown comes in already translated: this module knows no language.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

# Narrow enough that 14-unit text is still about 10 px on a 360 px screen.
WIDTH = 480
HEIGHT = 260
_LEFT, _RIGHT, _TOP, _BOTTOM = 40, 10, 14, 52
FONT = 14
_LEGEND_ROW = 20
# Dark enough against white for 3:1 non-text contrast (WCAG 1.4.11) and
# told apart by more than hue: the legend names them, lines differ in dash.
PALETTE = ("#1f4e99", "#b3261e", "#1b6e3a", "#7a4b00", "#5b2a86", "#00626b", "#444444")


@dataclass(frozen=True)
class Series:
    """One named row of values, one per label of the chart."""

    name: str
    values: Sequence[int | None]
    """None where there is no value (an unlimited entitlement)."""


@dataclass(frozen=True)
class Chart:
    """What a chart shows; every text already in the reader's language."""

    chart_id: str
    title: str
    description: str
    labels: Sequence[str]
    series: Sequence[Series]


def _top(chart: Chart, stacked: bool) -> int:
    if stacked:
        sums = [sum(s.values[i] or 0 for s in chart.series) for i in range(len(chart.labels))]
        highest = max(sums, default=0)
    else:
        highest = max((v for s in chart.series for v in s.values if v is not None), default=0)
    return max(1, highest)


def _y(value: float, top: int) -> float:
    return _TOP + (HEIGHT - _TOP - _BOTTOM) * (1 - value / top)


def _x(index: int, count: int) -> float:
    step = (WIDTH - _LEFT - _RIGHT) / max(1, count)
    return _LEFT + step * index + step / 2


def _frame(chart: Chart, top: int, body: list[str]) -> str:
    """The outer SVG: title, description, axis, labels, legend around ``body``."""
    cid = escape(chart.chart_id)
    plot_bottom = HEIGHT - _BOTTOM
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="{cid}" class="chart" role="img" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" preserveAspectRatio="xMidYMid meet" '
        f'aria-labelledby="{cid}-title {cid}-desc">',
        f'<title id="{cid}-title">{escape(chart.title)}</title>',
        f'<desc id="{cid}-desc">{escape(chart.description)}</desc>',
        f'<line x1="{_LEFT}" y1="{plot_bottom}" x2="{WIDTH - _RIGHT}" y2="{plot_bottom}" '
        'stroke="#222" stroke-width="1"/>',
    ]
    for value in sorted({0, top // 2, top}):
        y = _y(value, top)
        parts.append(
            f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="{FONT}" '
            f'fill="#222">{value}</text>'
        )
        parts.append(
            f'<line x1="{_LEFT}" y1="{y:.1f}" x2="{WIDTH - _RIGHT}" y2="{y:.1f}" '
            'stroke="#bbb" stroke-width="0.5"/>'
        )
    legend, rows = _legend(chart.series)
    height = HEIGHT + max(0, rows - 1) * _LEGEND_ROW
    parts[0] = parts[0].replace(f"0 0 {WIDTH} {HEIGHT}", f"0 0 {WIDTH} {height}")
    parts += body
    parts += _axis_labels(chart.labels, plot_bottom)
    parts += legend
    parts.append("</svg>")
    return "\n".join(parts)


def _axis_labels(labels: Sequence[str], plot_bottom: int) -> list[str]:
    # At most about six labels fit; the rest are in the CSV and the tables.
    every = max(1, -(-len(labels) // 6))
    return [
        f'<text x="{_x(i, len(labels)):.1f}" y="{plot_bottom + 18}" text-anchor="middle" '
        f'font-size="{FONT}" fill="#222">{escape(label)}</text>'
        for i, label in enumerate(labels)
        if i % every == 0
    ]


def _legend(series: Sequence[Series]) -> tuple[list[str], int]:
    """The legend below the axis labels, wrapped into rows; its parts and its row count."""
    parts: list[str] = []
    x, row = _LEFT, 0
    for index, item in enumerate(series):
        # About 0.6 em per character: enough room for the name without measuring it.
        width = 24 + int(len(item.name) * FONT * 0.6)
        if x > _LEFT and x + width > WIDTH - _RIGHT:
            x, row = _LEFT, row + 1
        y = HEIGHT - _BOTTOM + 26 + row * _LEGEND_ROW
        colour = PALETTE[index % len(PALETTE)]
        parts.append(f'<rect x="{x}" y="{y}" width="12" height="12" fill="{colour}"/>')
        parts.append(
            f'<text x="{x + 16}" y="{y + 11}" font-size="{FONT}" fill="#222">'
            f"{escape(item.name)}</text>"
        )
        x += width + 8
    return parts, row + 1 if series else 0


def line_chart(chart: Chart) -> str:
    """Lines, one per series (seats held against seats entitled, by day)."""
    top = _top(chart, stacked=False)
    count = len(chart.labels)
    body: list[str] = []
    for index, item in enumerate(chart.series):
        colour = PALETTE[index % len(PALETTE)]
        dash = "" if index == 0 else ' stroke-dasharray="6 4"'
        runs: list[list[str]] = [[]]
        for i, value in enumerate(item.values):
            if value is None:
                runs.append([])
                continue
            runs[-1].append(f"{_x(i, count):.1f},{_y(value, top):.1f}")
        for run in runs:
            if len(run) == 1:
                x, y = run[0].split(",")
                body.append(f'<circle cx="{x}" cy="{y}" r="2.5" fill="{colour}"/>')
            elif run:
                body.append(
                    f'<polyline class="series" data-series="{escape(item.name)}" fill="none" '
                    f'stroke="{colour}" stroke-width="2"{dash} points="{" ".join(run)}"/>'
                )
    return _frame(chart, top, body)


def bar_chart(chart: Chart, *, stacked: bool = True) -> str:
    """Bars per label, the series stacked (logins by outcome, peaks and overage)."""
    top = _top(chart, stacked)
    count = len(chart.labels)
    # A few months would make slabs; a bar is never wider than 40 units.
    width = min(40.0, (WIDTH - _LEFT - _RIGHT) / max(1, count) * 0.7)
    shown = len(chart.series) if not stacked else 1
    body: list[str] = []
    for i, label in enumerate(chart.labels):
        base = 0
        for index, item in enumerate(chart.series):
            value = item.values[i] or 0
            if not value:
                continue
            colour = PALETTE[index % len(PALETTE)]
            slot = width / shown
            x = _x(i, count) - width / 2 + (0 if stacked else slot * index)
            y_top, y_bottom = _y(base + value, top), _y(base, top)
            body.append(
                f'<rect x="{x:.1f}" y="{y_top:.1f}" width="{slot:.1f}" '
                f'height="{y_bottom - y_top:.1f}" fill="{colour}">'
                f"<title>{escape(label)} · {escape(item.name)}: {value}</title></rect>"
            )
            if stacked:
                base += value
    return _frame(chart, top, body)
