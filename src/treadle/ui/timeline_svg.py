"""A Gantt chart of a run's attempts as inline SVG: one row per task, one bar per attempt."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape

from treadle.ui.fmt import duration
from treadle.ui.palette import swatch

LABEL_W = 170.0
CHART_W = 720.0
ROW_H = 24.0
AXIS_H = 24.0
_TICKS = 5


@dataclass(frozen=True, slots=True)
class Bar:
    number: int
    status: str
    start: datetime
    end: datetime | None  # None: still going


@dataclass(frozen=True, slots=True)
class Row:
    task: str
    bars: tuple[Bar, ...]


def _nice_step(span: float) -> float:
    """A round tick step giving about ``_TICKS`` ticks over ``span`` seconds."""
    raw = span / _TICKS
    for step in (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600):
        if step >= raw:
            return float(step)
    return float(3600 * max(1, round(raw / 3600)))


def render_timeline(rows: Sequence[Row], origin: datetime, now: datetime) -> str:
    """SVG for ``rows``; time 0 is ``origin`` and unfinished bars reach ``now``."""
    ends = [b.end or now for r in rows for b in r.bars]
    span = max([(e - origin).total_seconds() for e in ends] + [0.001])
    step = _nice_step(span)
    span = max(span, step)
    scale = CHART_W / span
    height = AXIS_H + max(len(rows), 1) * ROW_H + 6
    width = LABEL_W + CHART_W + 20
    out = [
        f'<svg class="gantt" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0f} '
        f'{height:.0f}" width="{width:.0f}" height="{height:.0f}" role="img" '
        f'aria-label="Timeline of attempts">'
    ]
    tick = 0.0
    while tick <= span + 1e-9:
        x = LABEL_W + tick * scale
        out.append(
            f'<line class="tick" x1="{x:.1f}" y1="{AXIS_H - 6:.0f}" x2="{x:.1f}" '
            f'y2="{height:.0f}"/><text class="axis" x="{x:.1f}" y="{AXIS_H - 10:.0f}">'
            f"+{duration(tick)}</text>"
        )
        tick += step
    if not rows:
        out.append(
            f'<text class="axis" x="{LABEL_W:.0f}" y="{AXIS_H + 16:.0f}">no attempts yet</text>'
        )
    for i, row in enumerate(rows):
        y = AXIS_H + i * ROW_H
        out.append(
            f'<text class="label" x="{LABEL_W - 8:.0f}" y="{y + 16:.0f}">'
            f"{escape(row.task[:24])}</text>"
        )
        for bar in row.bars:
            start = max(0.0, (bar.start - origin).total_seconds())
            end = ((bar.end or now) - origin).total_seconds()
            x = LABEL_W + start * scale
            w = max(3.0, (end - start) * scale)
            colours = swatch(bar.status)
            took = duration(max(0.0, end - start))
            state = bar.status if bar.end else f"{bar.status}, still going"
            out.append(
                f'<rect class="attempt st-{escape(bar.status)}" x="{x:.1f}" y="{y + 4:.0f}" '
                f'width="{w:.1f}" height="{ROW_H - 8:.0f}" rx="3" fill="{colours.accent}">'
                f"<title>{escape(row.task)} attempt {bar.number}: {escape(state)}, {took}"
                "</title></rect>"
            )
    out.append("</svg>")
    return "".join(out)
