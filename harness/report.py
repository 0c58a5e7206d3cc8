"""Reports from result files only: never re-runs anything.

`report_summary.summary()` folds the records of one or more runs into one row per run and cell
configuration (medians over the repeats that finished ok, with their spread, and the reasons of the
ones that did not); `report_tables.build()` lays that out as sections; `render()` turns them into a
terminal table (report_terminal), Markdown, CSV, JSON or a self-contained HTML page (report_html).
"""

from __future__ import annotations

import json
import os
from typing import Any

import pandas as pd

from harness import durable, results
# Names other modules and tests read from here (harness.compare among them), kept where they always were.
from harness.report_format import (fmt_mb, fmt_rate, fmt_seconds, fmt_value, json_value, md_escape,  # noqa: F401
                                   md_table, missing)
from harness.report_summary import config_of, status_summary, summary, varying_keys  # noqa: F401
from harness.report_tables import Report, Section, build, differences_line  # noqa: F401
from harness.report_terminal import terminal_width, to_table  # noqa: F401
from harness.safe_text import csv_safe

FORMATS = ("table", "md", "csv", "json", "html")


def render(df: pd.DataFrame, fmt: str, width: int | None = None) -> str:
    """The report of records `df` in format `fmt` (`width`: the terminal table's, default the terminal's)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown report format {fmt!r} (choose from: {', '.join(FORMATS)})")
    s = summary(df)
    if fmt == "csv":
        return csv_safe(s).to_csv(index=False)
    report = build(df, s)
    if fmt == "json":
        return to_json(report)
    if fmt == "md":
        return to_markdown(report)
    if fmt == "html":
        from harness.report_html import render_html

        return render_html(report)
    return to_table(report, width)


def to_markdown(report: Report) -> str:
    parts = ["### bench results", "", md_escape(f"Runs shown: {report.runs}.") + "  "]
    if report.s.empty:
        return "\n".join([*parts, "", "No records: no cell of these runs has finished yet.", ""])
    for env in report.environments:
        parts.append(md_escape(f"Run {env['run_id']}: " + env_line(env)) + "  ")
    for line in (differences_line(report.differences), report.digest_note):
        if line:
            parts += ["", md_escape(line)]
    for section in report.sections:
        parts += ["", f"#### {md_escape(section.title)}", "", md_table(section.header, section.rows, section.numeric),
                  ""]
        if section.note:
            parts += [md_escape(section.note), ""]
        if section.kind == "results":
            parts += [md_escape(f"Target of {task}: {target}.") + "  " for task, target in report.targets.items()]
            if report.compile_sources:
                parts += ["", md_escape("Compile measured by: " + "; ".join(report.compile_sources) + ".")]
            parts.append("")
    return "\n".join(parts) + "\n"


def env_line(env: dict[str, Any]) -> str:
    """One line: CPU, cores, RAM, GPU, OS, Python and the framework versions."""
    bits = [f"{env.get('cpu_model') or 'unknown CPU'} ({env.get('usable_cores') or '?'} usable cores)"]
    if env.get("ram_gb"):
        bits.append(f"{env['ram_gb']} GB RAM")
    if env.get("gpu"):
        bits.append(f"GPU {env['gpu']} (driver {env.get('gpu_driver') or '?'}, CUDA {env.get('cuda') or '?'})")
    else:
        bits.append("no GPU")
    bits.append(f"Python {env.get('python') or '?'}")
    bits += [f"{dist} {version}" for dist, version in sorted(env.get("versions", {}).items())
             if dist not in ("pandas", "pluggy")]
    if env.get("git_commit"):  # a run resumed at another commit lists each
        commits = " / ".join(commit[:12] for commit in str(env["git_commit"]).split(" / "))
        bits.append(f"bench {env.get('harness_version') or ''} @ {commits}")
    if env.get("hostname"):
        bits.append(f"host {env['hostname']}")
    return ", ".join(bits)


def to_json(report: Report) -> str:
    cells = [{k: json_value(v) for k, v in row.items()} for row in report.s.to_dict("records")]
    envs = [{k: json_value(v) if not isinstance(v, dict) else v for k, v in e.items()} for e in report.environments]
    return json.dumps({"report": "bench", "schema_version": results.SCHEMA_VERSION, "runs": envs,
                       "environment_differences": report.differences, "cells": cells},
                      indent=1, allow_nan=False) + "\n"


# -- output --------------------------------------------------------------------------------

def write_atomic(path: str | os.PathLike, text: str) -> None:
    """Write the whole file or nothing: a temporary file beside it, then a rename."""
    durable.replace(path, text.encode("utf-8"))
