"""Reports from result files only: never re-runs anything.

`summary.summary()` folds the records of one or more runs into one row per run and cell
configuration (medians over the repeats that finished ok, with their spread, and the reasons of the
ones that did not); `tables.build()` lays that out as sections; `render()` turns them into a
terminal table (terminal.py), Markdown (markdown.py), CSV, JSON or a self-contained HTML page (html.py).
"""

from __future__ import annotations

import json

import pandas as pd

from harness import results
from harness.report.format import json_value
from harness.report.markdown import to_markdown
from harness.report.summary import summary
from harness.report.tables import Report, build
from harness.report.terminal import to_table
from harness.store.safe_text import csv_safe

FORMATS = ("table", "md", "csv", "json", "html")


def render(df: pd.DataFrame, fmt: str, width: int | None = None, full: bool = False, machine: str = "") -> str:
    """The report of records `df` in format `fmt` (`width`: the terminal table's, default the terminal's;
    `full`: every section of the terminal table, not only the headline; `machine`: a line on the machine's
    measured noise, for every format)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown report format {fmt!r} (choose from: {', '.join(FORMATS)})")
    s = summary(df)
    if fmt == "csv":
        return csv_safe(s).to_csv(index=False)
    report = build(df, s, machine)
    if fmt == "json":
        return to_json(report)
    if fmt == "md":
        return to_markdown(report)
    if fmt == "html":
        from harness.report.html import render_html

        return render_html(report)
    return to_table(report, width, full)


def to_json(report: Report) -> str:
    rows = pd.concat([report.s, report.inference]) if not report.inference.empty else report.s
    cells = [{k: json_value(v) for k, v in row.items()} for row in rows.to_dict("records")]
    envs = [{k: json_value(v) if not isinstance(v, dict) else v for k, v in e.items()} for e in report.environments]
    return json.dumps({"report": "bench", "schema_version": results.SCHEMA_VERSION, "runs": envs,
                       "environment_differences": report.differences, "cells": cells},
                      indent=1, allow_nan=False) + "\n"
