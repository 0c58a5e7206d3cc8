"""Small inline-SVG charts (bars and lines) for the HTML report: no JavaScript, no fonts, no network.

Every piece of text that reaches the SVG goes through `esc`, because labels come from result
files (plugin names, messages) and a report must be safe to open whatever they contain.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Callable, Collection, Sequence

# Okabe-Ito colours (readable with colour-vision deficiencies), without the yellow that vanishes on white.
PALETTE = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#7a5195", "#6b6b6b")
FONT = 'font-family="sans-serif"'
BOLD = 'font-weight="bold"'
RED = "#b00020"
HALO = 'stroke="#fff" stroke-width="3" paint-order="stroke"'  # keeps a label readable over bars and lines
AUTO_LOG_SPAN = 30.0  # values spread over more than this factor get a logarithmic axis
CHAR_W = 6.5  # rough width of one 11 px sans-serif character, for layout


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(1, limit - 1)] + "…"


def fmt_number(value: float) -> str:
    """Compact, exponent-free where reasonable: 0.00031, 2.4, 1.2k, 3.4M."""
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1e6:
        return f"{value / 1e6:.3g}M"
    if magnitude >= 1e4:
        return f"{value / 1e3:.3g}k"
    if magnitude >= 1e3:
        return f"{value:.0f}"
    if magnitude >= 1e-4:
        return f"{value:.3g}"
    return f"{value:.2g}"


# -- axes ------------------------------------------------------------------------------

def wants_log(values: Sequence[float | None]) -> bool:
    """Whether these values call for a log axis: all positive and spread over more than AUTO_LOG_SPAN.
    Charts of one kind decide it once over every task's values, so their axes read alike."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    positive = [v for v in finite if v > 0]
    return len(positive) == len(finite) and len(positive) > 1 and max(positive) / min(positive) > AUTO_LOG_SPAN


def nice_step(span: float, count: int) -> float:
    raw = span / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * power:
            return factor * power
    return 10 * power


@dataclass
class Scale:
    """Maps data values to pixels along one axis (linear or log10)."""

    lo: float
    hi: float
    pixel_lo: float
    pixel_hi: float
    log: bool = False
    ticks: list[float] = field(default_factory=list)

    @classmethod
    def fit(cls, values: Sequence[float], pixel_lo: float, pixel_hi: float, log: bool | None = None,
            zero: bool = True) -> "Scale":
        finite = [v for v in values if v is not None and math.isfinite(v)]
        positive = [v for v in finite if v > 0]
        if log is None:
            log = wants_log(finite)
        if log and positive:
            lo = 10 ** math.floor(math.log10(min(positive)))
            hi = 10 ** math.ceil(math.log10(max(positive)))
            if hi <= lo:
                hi = lo * 10
            ticks = [10.0**e for e in range(round(math.log10(lo)), round(math.log10(hi)) + 1)]
            return cls(lo, hi, pixel_lo, pixel_hi, True, ticks)
        lo = min(finite + ([0.0] if zero else [])) if finite else 0.0
        hi = max(finite + ([0.0] if zero else [])) if finite else 1.0
        if hi == lo:
            hi = lo + (abs(lo) or 1.0)
            lo = lo if zero else lo - (abs(lo) or 1.0) * 0.1
        step = nice_step(hi - lo, 5)
        lo = math.floor(lo / step + 1e-9) * step
        hi = math.ceil(hi / step - 1e-9) * step
        ticks = [lo + i * step for i in range(int(round((hi - lo) / step)) + 1)]
        return cls(lo, hi, pixel_lo, pixel_hi, False, ticks)

    def __call__(self, value: float) -> float:
        if self.log:
            value = max(value, self.lo)
            t = (math.log10(value) - math.log10(self.lo)) / (math.log10(self.hi) - math.log10(self.lo))
        else:
            t = (value - self.lo) / (self.hi - self.lo)
        return self.pixel_lo + t * (self.pixel_hi - self.pixel_lo)


# -- shared pieces ---------------------------------------------------------------------

def svg_text(x: float, y: float, text: str, size: int = 11, anchor: str = "middle", extra: str = "",
          hover: str | None = None, fill: str = "#222") -> str:
    """A text node; `hover` (e.g. the full label of a shortened one) becomes its tooltip."""
    tip = f"<title>{esc(hover)}</title>" if hover and hover != text else ""
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" {FONT} '
            f'fill="{fill}"{(" " + extra) if extra else ""}>{tip}{esc(text)}</text>')


def _legend(names: Sequence[str], x0: float, y0: float, width: float,
            dashed: Sequence[bool] | None = None) -> tuple[str, float]:
    """Swatches in rows that wrap at `width`; returns the SVG and the height used."""
    parts, x, y = [], x0, y0
    for i, name in enumerate(names):
        label = short(name, 48)
        item_w = 22 + CHAR_W * len(label) + 14
        if x > x0 and x + item_w > x0 + width:
            x, y = x0, y + 18
        if dashed is None:  # bars: a filled swatch
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="16" height="10" fill="{color(i)}"/>')
        else:  # lines: a stroke, dashed like its line
            dash = ' stroke-dasharray="5,3"' if dashed[i] else ""
            parts.append(f'<line x1="{x:.1f}" y1="{y + 5:.1f}" x2="{x + 16:.1f}" y2="{y + 5:.1f}" '
                         f'stroke="{color(i)}" stroke-width="3"{dash}/>')
        parts.append(svg_text(x + 21, y + 9, label, 11, "start", hover=name))
        x += item_w
    return "".join(parts), (y - y0) + 18


def y_axis(scale: Scale, left: float, right: float, label: str, top: float, bottom: float) -> str:
    parts = []
    for tick in scale.ticks:
        y = scale(tick)
        parts.append(f'<line x1="{left:.1f}" y1="{y:.1f}" x2="{right:.1f}" y2="{y:.1f}" stroke="#e3e3e3"/>')
        parts.append(svg_text(left - 6, y + 4, fmt_number(tick), 10, "end"))
    parts.append(f'<line x1="{left:.1f}" y1="{top:.1f}" x2="{left:.1f}" y2="{bottom:.1f}" stroke="#444"/>')
    mid = (top + bottom) / 2
    parts.append(svg_text(14, mid, label + (" (log scale)" if scale.log else ""), 11,
                       extra=f'transform="rotate(-90 14 {mid:.1f})"'))
    return "".join(parts)


def _footnote(width: float, y: float, text: str) -> tuple[str, float]:
    """Wrapped small print under a chart (e.g. what a dashed bar means); returns the SVG and its height."""
    if not text:
        return "", 0.0
    per_line = max(20, int((width - 24) / (CHAR_W * 0.9)))
    words, lines = text.split(), [""]
    for word in words:
        if lines[-1] and len(lines[-1]) + 1 + len(word) > per_line:
            lines.append(word)
        else:
            lines[-1] = f"{lines[-1]} {word}".strip()
    svg = "".join(svg_text(12, y + 12 + 13 * i, line, 10, "start", fill="#555") for i, line in enumerate(lines))
    return svg, 13.0 * len(lines) + 6


def frame(width: float, height: float, title: str, body: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width:.0f}" height="{height:.0f}" '
            f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="{esc(title)}">'
            f'<title>{esc(title)}</title><rect width="100%" height="100%" fill="#fff"/>'
            f'{svg_text(width / 2, 20, title, 13, extra=BOLD)}{body}</svg>')


# -- charts ----------------------------------------------------------------------------

def bar_chart(title: str, categories: Sequence[str], series: Sequence[str],
              values: dict[tuple[str, str], float | None], y_label: str,
              spread: dict[tuple[str, str], tuple[float, float]] | None = None,
              notes: dict[tuple[str, str], str] | None = None, reference: tuple[float, str] | None = None,
              value_format: Callable[[float], str] = fmt_number, log: bool | None = None,
              domain: Sequence[float] = (), dashed: Collection[tuple[str, str]] = (), footnote: str = "",
              width: float = 660, height: float = 300) -> str:
    """Grouped bars: one group per category, one bar per series, optional whiskers (spread) and a
    horizontal reference line. A missing value leaves a gap with its note (e.g. "error") instead.
    `domain`: values the axis must cover (so charts of one kind share a range); `dashed`: bars drawn
    with a dashed outline (e.g. resting on one repeat), explained by `footnote` under the chart."""
    spread = spread or {}
    notes = notes or {}
    dashed = set(dashed)
    left, right, top = 70.0, width - 16, 34.0
    longest = max((len(c) for c in categories), default=0)
    group_w = (right - left) / max(len(categories), 1)
    rotate = longest * CHAR_W > group_w - 6
    label_limit = 30 if rotate else max(4, int(group_w / CHAR_W))
    label_h = (min(longest, label_limit) * CHAR_W * 0.5 + 10) if rotate else 20  # sin 30° of the text's length
    legend_svg, legend_h = _legend(series, left, 0, right - left) if len(series) > 1 else ("", 0.0)
    plot_bottom = height - 28
    total_h = height + label_h + legend_h
    data = [v for v in values.values() if v is not None] + [hi for _, hi in spread.values()]
    data += [lo for lo, _ in spread.values()] + ([reference[0]] if reference else []) + list(domain)
    y = Scale.fit(data, plot_bottom, top, log=log)
    parts = [y_axis(y, left, right, y_label, top, plot_bottom)]
    bar_w = group_w * 0.8 / max(len(series), 1)
    base = y(y.lo) if y.log else y(max(y.lo, 0.0))
    for ci, category in enumerate(categories):
        gx = left + ci * group_w + group_w * 0.1
        for si, name in enumerate(series):
            x = gx + si * bar_w
            value = values.get((category, name))
            if value is None:
                note = notes.get((category, name))
                if note and len(note) * 5 <= bar_w:
                    parts.append(svg_text(x + bar_w / 2, base - 4, note, 9, hover=f"{category} / {name}: {note}",
                                       fill=RED))
                elif note:  # upright in its gap, whole: a narrow bar cannot hold it across
                    cx = x + bar_w / 2 + 3
                    parts.append(svg_text(cx, base - 4, short(note, max(3, int((base - top) / 5))), 9, "start",
                                       hover=f"{category} / {name}: {note}", fill=RED,
                                       extra=f'transform="rotate(-90 {cx:.1f} {base - 4:.1f})"'))
                continue
            top_y = y(value)
            h = abs(base - top_y)
            outline = ' stroke="#222" stroke-width="1.5" stroke-dasharray="4,3"' if (category, name) in dashed else ""
            parts.append(f'<rect x="{x + 1:.1f}" y="{min(top_y, base):.1f}" width="{max(bar_w - 2, 1):.1f}" '
                         f'height="{max(h, 0.5):.1f}" fill="{color(si)}" shape-rendering="crispEdges"{outline}>'
                         f'<title>{esc(category)} / {esc(name)}: {esc(value_format(value))}</title></rect>')
            if (category, name) in spread:
                lo, hi = spread[(category, name)]
                cx = x + bar_w / 2
                parts.append(f'<path d="M{cx:.1f},{y(lo):.1f}V{y(hi):.1f}M{cx - 4:.1f},{y(lo):.1f}h8'
                             f'M{cx - 4:.1f},{y(hi):.1f}h8" stroke="#222" fill="none"/>')
            if bar_w >= 26:
                label_y = min(top_y, y(spread[(category, name)][1]) if (category, name) in spread else top_y)
                parts.append(svg_text(x + bar_w / 2, label_y - 4, value_format(value), 9))
        label = short(category, label_limit)
        cx = left + ci * group_w + group_w / 2
        if rotate:
            parts.append(svg_text(cx, plot_bottom + 14, label, 11, "end", hover=category,
                               extra=f'transform="rotate(-30 {cx:.1f} {plot_bottom + 14:.1f})"'))
        else:
            parts.append(svg_text(cx, plot_bottom + 16, label, 11, hover=category))
    parts.append(f'<line x1="{left:.1f}" y1="{base:.1f}" x2="{right:.1f}" y2="{base:.1f}" stroke="#444"/>')
    if reference:
        ry = y(reference[0])
        parts.append(f'<line x1="{left:.1f}" y1="{ry:.1f}" x2="{right:.1f}" y2="{ry:.1f}" stroke="{RED}" '
                     f'stroke-dasharray="6,4"/>')
        parts.append(svg_text(right - 2, ry - 4, reference[1], 10, "end", fill=RED, extra=HALO))
    if legend_svg:
        parts.append(f'<g transform="translate(0 {plot_bottom + label_h + 10:.1f})">{legend_svg}</g>')
    note_svg, note_h = _footnote(width, total_h, footnote)
    return frame(width, total_h + note_h, title, "".join(parts) + note_svg)


@dataclass
class Line:
    name: str
    xs: list[float]
    ys: list[float]
    dashed: bool = False


def line_chart(title: str, lines: Sequence[Line], x_label: str, y_label: str,
               hline: tuple[float, str] | None = None, log_x: bool | None = None,
               y_domain: Sequence[float] = (), footnote: str = "", width: float = 660, height: float = 300) -> str:
    """One polyline with point markers per series; an optional dashed horizontal line (a target).
    `y_domain`: values the y axis must cover (so charts of one kind share a range)."""
    left, right, top = 70.0, width - 16, 34.0
    legend_svg, legend_h = _legend([l.name for l in lines], left, 0, right - left, [l.dashed for l in lines])
    plot_bottom = height - 40
    xs = [v for l in lines for v in l.xs]
    ys = [v for l in lines for v in l.ys] + ([hline[0]] if hline else []) + list(y_domain)
    x = Scale.fit(xs, left, right, log=log_x, zero=True)
    y = Scale.fit(ys, plot_bottom, top, log=False, zero=False)
    parts = [y_axis(y, left, right, y_label, top, plot_bottom)]
    for tick in x.ticks:
        px = x(tick)
        parts.append(f'<line x1="{px:.1f}" y1="{top:.1f}" x2="{px:.1f}" y2="{plot_bottom:.1f}" stroke="#eeeeee"/>')
        parts.append(svg_text(px, plot_bottom + 15, fmt_number(tick), 10))
    parts.append(f'<line x1="{left:.1f}" y1="{plot_bottom:.1f}" x2="{right:.1f}" y2="{plot_bottom:.1f}" '
                 'stroke="#444"/>')
    parts.append(svg_text((left + right) / 2, plot_bottom + 32, x_label + (" (log scale)" if x.log else ""), 11))
    if hline:
        hy = y(hline[0])
        parts.append(f'<line x1="{left:.1f}" y1="{hy:.1f}" x2="{right:.1f}" y2="{hy:.1f}" stroke="{RED}" '
                     f'stroke-dasharray="6,4"/>')
        parts.append(svg_text(right - 2, hy - 4, hline[1], 10, "end", fill=RED, extra=HALO))
    for i, line in enumerate(lines):
        points = [(x(a), y(b)) for a, b in zip(line.xs, line.ys)
                  if a is not None and b is not None and math.isfinite(a) and math.isfinite(b)]
        if not points:
            continue
        dash = ' stroke-dasharray="7,4"' if line.dashed else ""
        path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{color(i)}" stroke-width="2.5"{dash}>'
                     f'<title>{esc(line.name)}</title></polyline>')
        for (px, py), a, b in zip(points, line.xs, line.ys):
            parts.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3.5" fill="{color(i)}">'
                         f'<title>{esc(line.name)}: {esc(fmt_number(b))} at {esc(fmt_number(a))} s</title></circle>')
    parts.append(f'<g transform="translate(0 {plot_bottom + 44:.1f})">{legend_svg}</g>')
    note_svg, note_h = _footnote(width, height + legend_h + 10, footnote)
    return frame(width, height + legend_h + 10 + note_h, title, "".join(parts) + note_svg)
