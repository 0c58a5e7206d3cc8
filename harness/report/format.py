"""How numbers and text look in every report (terminal, Markdown, HTML, compare): a leaf module, so that
report, report_html and compare share it without importing each other."""

from __future__ import annotations

import math
import re
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd


def missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def fmt_seconds(value: Any) -> str:
    if missing(value):
        return "-"
    v = float(value)
    if v == 0:
        return "0 s"
    if v < 0:
        return "-" + fmt_seconds(-v)
    if v < 1e-3:
        return f"{v * 1e6:.3g} µs"
    if v < 1:
        return f"{v * 1e3:.3g} ms"
    if v < 100:
        return f"{v:.3g} s"
    return f"{v:,.0f} s"


def fmt_rate(value: Any) -> str:
    if missing(value):
        return "-"
    v = float(value)
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if v >= scale:
            return f"{v / scale:.3g}{suffix}"
    return f"{v:.3g}"


def fmt_mb(value: Any) -> str:
    if missing(value):
        return "-"
    v = float(value)
    return f"{v:.2g} MB" if 0 < v < 10 else f"{v:,.0f} MB"


def fmt_value(value: Any) -> str:
    if missing(value):
        return "-"
    if isinstance(value, (float, np.floating)):
        if float(value).is_integer() and abs(value) < 1e15:  # a count upcast to float by a column's NaN
            return str(int(value))
        return f"{float(value):.4g}"
    return str(value)


def cells(values: Iterable[Any], fmt: Callable[[Any], str]) -> list[str]:
    """One formatted string per value of a column (a plain loop over values: no pandas call per row)."""
    return [fmt(v) for v in values]


def json_value(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.bool_):
        return bool(value)
    if missing(value):
        return None
    return value


_MD_SPECIAL = re.compile(r"([\\`*\[\]|#!~])")
_MD_UNDERSCORE = re.compile(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")


def md_escape(text: object) -> str:
    """Literal text in a GitHub table cell: one line, no markup, no cell breaks, and no HTML: <, > and &
    become entities, so not even a raw '<' reaches a renderer that allows HTML."""
    flat = " ".join(str(text).split()).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_UNDERSCORE.sub(r"\\_", _MD_SPECIAL.sub(r"\\\1", flat))


def md_table(header: list[str], rows: list[list[str]], right: Iterable[int] = frozenset()) -> str:
    right = set(right)
    lines = ["| " + " | ".join(md_escape(h) for h in header) + " |",
             "|" + "|".join("---:" if i in right else "---" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(md_escape(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
