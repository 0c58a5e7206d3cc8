"""`bench history`'s answer: per cell its verdict and changes as a table, Markdown, CSV (one row per point:
the series over time) or JSON (cells with their changes and points), and the gate's lines."""

from __future__ import annotations

import functools
import io
import json
import math
from typing import Any

import pandas as pd

from harness.history import changepoints
from harness.history.series import Series, step_rows
from harness.report.format import fmt_seconds, json_value, md_escape, md_table, missing
from harness.store.safe_text import csv_safe

FORMATS = ("table", "md", "csv", "json")
ORDER = {state: i for i, state in enumerate(("regression", "not decidable", "changed", "faster", "steady"))}
SHOWN = ("backend", "task", "mode", "device")
HOW = ("Per machine and cell configuration, one point per run: the median over its repeats that finished ok. "
       "Steps: binary segmentation with a z test between the two sides of each split on log values, each point "
       f"weighted by its noise (its repeats, the series' run-to-run spread); a step needs z >= {changepoints.Z_CRIT:g} "
       f"and {changepoints.MIN_SEGMENT} runs a side. visible: the smallest step found 9 times in 10 at this noise. "
       "regression: a slowdown of the threshold or more, still in effect; not decidable: the noise hides steps "
       "of the threshold, or a possible step did not reach the score.")


def _short(commit: Any) -> str:
    return str(commit)[:12] if isinstance(commit, str) and commit else "?"


@functools.lru_cache(maxsize=65536)
def _date(moment: Any) -> str:
    """A run's start as the pages and tables show it; the same few thousand runs are shown many times."""
    if missing(moment):
        return "?"
    return (moment if isinstance(moment, pd.Timestamp) else pd.Timestamp(moment)).strftime("%Y-%m-%d %H:%M")


def change_text(row: dict[str, Any], backend: str) -> str:
    """One step as a line: size, interval, first run after it, and what changed between the two runs."""
    step, before, after = row["step"], row["before"], row["after"]
    text = (f"{step.ratio - 1:+.0%} ({step.low:.2f}-{step.high:.2f}x) from run {after['run_id']} "
            f"({_date(after['started'])}, commit {_short(after['commit'])}")
    if before["commit"] != after["commit"]:
        text += f", was {_short(before['commit'])}"
    if before["framework_version"] != after["framework_version"]:
        text += f"; {backend} {before['framework_version']} -> {after['framework_version']}"
    return text + ")"


def sorted_series(series: list[Series]) -> list[Series]:
    return sorted(series, key=lambda s: (ORDER.get(s.verdict.state, 9), s.machine, *(str(s.cell.get(k)) for k in
                                                                                     ("task", "backend", "mode")),
                                         s.config))


def _latest(s: Series) -> tuple[str, str]:
    valued = s.valued
    if valued.empty:
        return "-", "-"
    last = valued.iloc[-1]
    return fmt_seconds(last["value"]), _date(last["started"])


def rows(series: list[Series]) -> tuple[list[str], list[list[str]]]:
    header = ["machine", *SHOWN, "runs", "latest", "at", "visible", "verdict", "changes"]
    out = []
    for s in sorted_series(series):
        latest, at = _latest(s)
        changes = "; ".join(change_text(r, str(s.cell.get("backend"))) for r in step_rows(s))
        if s.verdict.note:
            changes = f"{changes}; {s.verdict.note}" if changes else s.verdict.note
        visible = "-" if not math.isfinite(s.verdict.resolution) else f"{s.verdict.resolution:.0%}"
        out.append([s.machine, *(str(s.cell.get(k)) for k in SHOWN), f"{len(s.valued)}/{len(s.points)}", latest, at,
                    visible, s.verdict.state, changes or "-"])
    return header, out


def tally(series: list[Series]) -> str:
    counts: dict[str, int] = {}
    for s in series:
        counts[s.verdict.state] = counts.get(s.verdict.state, 0) + 1
    return ", ".join(f"{counts[k]} {k}" for k in ORDER if k in counts) or "no cells"


def _step_json(row: dict[str, Any]) -> dict[str, Any]:
    step = row["step"]
    side = ("run_id", "started", "commit", "framework_version", "value")
    return {"ratio": step.ratio, "ci_low": step.low, "ci_high": step.high, "z": step.z,
            "first_run_after": {k: json_value(_iso(row["after"][k])) for k in side},
            "last_run_before": {k: json_value(_iso(row["before"][k])) for k in side}}


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, pd.Timestamp) else value


def to_json(series: list[Series], meta: dict[str, Any]) -> str:
    cells = []
    for s in sorted_series(series):
        points = [{k: json_value(_iso(v)) for k, v in p.items()} for p in s.points.to_dict("records")]
        v = s.verdict
        cells.append({"machine": s.machine, "config": s.config, **{k: json_value(x) for k, x in s.cell.items()},
                      "verdict": v.state, "note": v.note or None,
                      "visible_step": v.resolution if math.isfinite(v.resolution) else None,
                      "noise_sd_log": s.noise.run_to_run if s.noise else None,
                      "changes": [_step_json(r) for r in step_rows(s)], "points": points})
    return json.dumps({**meta, "summary": tally(series), "method": HOW, "cells": cells}, indent=1,
                      allow_nan=False) + "\n"


def to_csv(series: list[Series]) -> str:
    frames = []
    for s in series:
        points = s.points.copy()
        starts = {r["after"]["run_id"]: r["step"].ratio for r in step_rows(s)}
        points.insert(0, "config", s.config)
        points.insert(0, "machine", s.machine)
        for i, key in enumerate(SHOWN):
            points.insert(2 + i, key, s.cell.get(key))
        points["step_ratio"] = points["run_id"].map(starts)
        points["verdict"] = s.verdict.state
        frames.append(points)
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return csv_safe(table).to_csv(index=False)


def render(series: list[Series], fmt: str, title: str, gate_line: str = "", meta: dict[str, Any] | None = None,
           width: int = 10_000) -> str:
    if fmt == "json":
        return to_json(series, {"history": title, "gate": gate_line or None, **(meta or {})})
    if fmt == "csv":
        return to_csv(series)
    header, body = rows(series)
    summary = tally(series) + (f"; {gate_line}" if gate_line else "")
    if fmt == "md":
        return "\n".join([f"### {md_escape(title)}", "", md_table(header, body, right={5, 6, 8}), "",
                          md_escape(summary), "", md_escape(HOW), ""])
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=title)
    for column in header:
        table.add_column(column, overflow="fold", no_wrap=column not in ("changes", "machine"))
    for row in body:
        table.add_row(*(escape(c) for c in row))
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, force_terminal=False, no_color=True)
    console.print(table)
    console.print(escape(summary))
    console.print(escape(HOW))
    return buffer.getvalue()


def points_text(s: Series) -> str:
    """The series of one cell, run by run, steps marked: `bench history --points`."""
    starts = {r["after"]["run_id"]: r["step"] for r in step_rows(s)}
    lines = [f"{s.machine} {s.config}: {s.verdict.state}"]
    for p in s.points.to_dict("records"):
        step = starts.get(p["run_id"])
        mark = f"  <- step {step.ratio - 1:+.0%}" if step else ""
        spread = "" if missing(p["low"]) or p["repeats"] < 2 else f" ({fmt_seconds(p['low'])}-{fmt_seconds(p['high'])})"
        lines.append(f"  {_date(p['started'])}  {p['run_id']}  {fmt_seconds(p['value'])}{spread}  n={p['repeats']}  "
                     f"commit {_short(p['commit'])}  {s.cell.get('backend')} {p['framework_version']}"
                     + ("" if p["status"] == "ok" else f"  [{p['status']}]") + mark)
    return "\n".join(lines) + "\n"
