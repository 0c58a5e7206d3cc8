"""The trend chart of one cell: one point per run, each a link to that run's page, the spread of its repeats
as a whisker, the level between change points as a flat line, and each change point as a dashed red rule
with its size. Inline SVG in the style of harness.report.plots (its axes, frame, palette and escaping)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from harness.report.plots import HALO, RED, Scale, color, esc, frame, svg_text, y_axis

MAX_AXIS = 1e12  # seconds: beyond any run's time
MAX_WHISKERS = 300  # beyond this many runs whiskers would cover the line; the points' tooltips keep the spread


@dataclass
class Point:
    x_label: str  # the run's date, for the axis
    value: float | None  # None: the run has no value (its repeats failed)
    low: float | None
    high: float | None
    href: str
    tip: str


@dataclass
class Change:
    index: int  # the first point after the change
    label: str  # "+15%"


def trend_chart(title: str, points: Sequence[Point], changes: Sequence[Change],
                levels: Sequence[tuple[int, int, float]], y_label: str, width: float = 960, height: float = 340) -> str:
    """`levels`: (first index, end index, value) of each segment between changes."""
    left, right, top, bottom = 70.0, width - 16, 40.0, height - 46
    values = [p.value for p in points if p.value is not None]
    values += [p.low for p in points if p.low is not None] + [p.high for p in points if p.high is not None]
    # A record may hold any finite number; the axis covers those a clock can give, and a point beyond it sits
    # on its edge (its tooltip keeps the value).
    scale = Scale.fit([v for v in values if abs(v) < MAX_AXIS] or [1.0], bottom, top, log=False, zero=False)

    def y(value: float) -> float:
        return min(max(scale(max(min(value, MAX_AXIS), -MAX_AXIS)), top), bottom)

    n = max(len(points), 1)
    step = (right - left) / n

    def x(i: float) -> float:
        return left + (i + 0.5) * step

    parts = [y_axis(scale, left, right, y_label, top, bottom),
             f'<line x1="{left:.1f}" y1="{bottom:.1f}" x2="{right:.1f}" y2="{bottom:.1f}" stroke="#444"/>']
    ticks = sorted({round(k * (n - 1) / 5) for k in range(6)} if n > 1 else {0})
    for i in ticks:
        if i < len(points):
            anchor = "start" if i == 0 and n > 1 else "end" if i == n - 1 and n > 1 else "middle"
            parts.append(svg_text(x(i), bottom + 15, points[i].x_label, 10, anchor))
    parts.append(svg_text((left + right) / 2, bottom + 34, f"run ({len(points)} in time order)", 11))
    if len(points) <= MAX_WHISKERS:
        for i, p in enumerate(points):
            if p.low is not None and p.high is not None and p.high > p.low:
                parts.append(f'<line x1="{x(i):.1f}" y1="{y(p.low):.1f}" x2="{x(i):.1f}" y2="{y(p.high):.1f}" '
                             'stroke="#9a9a9a" stroke-width="1"/>')
    for start, end, level in levels:
        parts.append(f'<line x1="{x(start) - step / 2:.1f}" y1="{y(level):.1f}" x2="{x(end - 1) + step / 2:.1f}" '
                     f'y2="{y(level):.1f}" stroke="#222" stroke-width="1.5"/>')
    line = [(x(i), y(p.value)) for i, p in enumerate(points) if p.value is not None]
    if line:
        path = " ".join(f"{px:.1f},{py:.1f}" for px, py in line)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{color(0)}" stroke-width="1.5" opacity="0.7"/>')
    radius = 3.5 if n <= 200 else 2.5
    for i, p in enumerate(points):
        if p.value is None:
            parts.append(f'<a href="{esc(p.href)}"><text x="{x(i):.1f}" y="{bottom - 4:.1f}" font-size="10" '
                         f'text-anchor="middle" fill="{RED}"><title>{esc(p.tip)}</title>×</text></a>')
            continue
        parts.append(f'<a href="{esc(p.href)}"><circle cx="{x(i):.1f}" cy="{y(p.value):.1f}" r="{radius}" '
                     f'fill="{color(0)}"><title>{esc(p.tip)}</title></circle></a>')
    for change in changes:
        cx = x(change.index) - step / 2
        parts.append(f'<line x1="{cx:.1f}" y1="{top:.1f}" x2="{cx:.1f}" y2="{bottom:.1f}" stroke="{RED}" '
                     'stroke-width="2" stroke-dasharray="6,4"/>')
        parts.append(svg_text(cx + 4, top + 12, change.label, 11, "start", extra=HALO, fill=RED))
    return frame(width, height, title, "".join(parts))
