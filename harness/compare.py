"""Compare two runs (or two backends within one run) cell by cell, from result files only.

Cells pair up by their configuration: the cell id without the repeat index (task, backend,
mode, device, precision, optimizer, batch size, epochs, lr, seed and any size or thread
setting), or without the backend as well when two backends of one run are compared. Per
pair: the ratio of medians B/A of a time metric over the repeats that finished ok, a
two-sided Mann-Whitney U test over those repeats, and a verdict at level alpha.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from harness import report
from harness.mannwhitney import mann_whitney, smallest_p
from harness.safe_text import csv_safe

# Lower is better for all of them, so B/A > 1 means B is slower.
METRICS = ("steady_epoch_s", "train_s", "time_to_target_s", "first_epoch_s", "compile_s", "step_ms_p50",
           "step_ms_p90", "eval_s", "setup_s", "import_s", "total_s", "wall_s")
FORMATS = ("table", "md", "csv", "json")
VERDICTS = ("faster", "slower", "same", "failed in B", "failed in A", "only in A", "only in B", "no values")
DISPLAY_KEYS = ["task", "backend", "mode", "device", "precision", "optimizer", "batch_size"]


@dataclass
class Side:
    """One side of a comparison: the records and how to name them."""

    label: str
    records: pd.DataFrame


def pair_key(cell_id: str, backend: str, ignore_backend: bool) -> str:
    config = report.config_of(cell_id)
    if ignore_backend and config.startswith(f"{backend}-"):
        return config[len(backend) + 1:]
    return config


def _values(group: pd.DataFrame | None, metric: str) -> np.ndarray:
    if group is None:
        return np.array([])
    ok = group[group["status"] == "ok"]
    values = pd.to_numeric(ok[metric], errors="coerce").to_numpy(dtype=float)
    return values[np.isfinite(values)]


def _failure(group: pd.DataFrame | None) -> str:
    if group is None or not len(group):
        return ""
    status, message = report.status_summary(group)
    return status + (f": {message}" if message else "")


def compare(a: Side, b: Side, metric: str = "steady_epoch_s", alpha: float = 0.05,
            ignore_backend: bool = False) -> pd.DataFrame:
    """One row per cell configuration found in A or B, with medians, ratio B/A, p-value and verdict."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r} (choose from: {', '.join(METRICS)})")
    groups = []
    for side in (a, b):
        df = side.records
        keys = [pair_key(c, be, ignore_backend) for c, be in zip(df["cell_id"], df["backend"])]
        groups.append({k: g for k, g in df.assign(_key=keys).groupby("_key", sort=False)})
    ga, gb = groups
    rows = []
    for key in list(dict.fromkeys([*ga, *gb])):
        group_a, group_b = ga.get(key), gb.get(key)
        first = (group_a if group_a is not None else group_b).iloc[0]
        row: dict[str, Any] = {k: first[k] for k in DISPLAY_KEYS}
        if ignore_backend:
            row["backend"] = f"{a.label} → {b.label}"
        va, vb = _values(group_a, metric), _values(group_b, metric)
        row.update(config=key, n_a=len(va), n_b=len(vb),
                   median_a=float(np.median(va)) if len(va) else None,
                   median_b=float(np.median(vb)) if len(vb) else None,
                   ratio=None, p=None, test=None)
        row.update(_verdict(va, vb, group_a, group_b, metric, alpha, row))
        rows.append(row)
    table = pd.DataFrame(rows, columns=[*DISPLAY_KEYS, "config", "n_a", "n_b", "median_a", "median_b", "ratio", "p",
                                        "test", "verdict", "note"])
    order = table[["task", "backend", "mode", "device", "config"]].astype(str)
    return table.loc[order.sort_values(list(order.columns)).index].reset_index(drop=True)


def _verdict(va: np.ndarray, vb: np.ndarray, group_a: pd.DataFrame | None, group_b: pd.DataFrame | None,
             metric: str, alpha: float, row: dict[str, Any]) -> dict[str, Any]:
    if group_a is None:  # name the configuration: the shown keys may look like another row's
        return {"verdict": "only in B", "note": row["config"]}
    if group_b is None:
        return {"verdict": "only in A", "note": row["config"]}
    ok_a, ok_b = (group_a["status"] == "ok").any(), (group_b["status"] == "ok").any()
    if not ok_b and len(va):  # every repeat of B failed (or was skipped) where A measured
        return {"verdict": "failed in B", "note": _failure(group_b)}
    if not ok_a and len(vb):
        return {"verdict": "failed in A", "note": _failure(group_a)}
    if not len(va) or not len(vb):  # e.g. time_to_target_s where the target was not reached
        where = " and ".join(side for side, v in (("A", va), ("B", vb)) if not len(v))
        failed = "; ".join(f"{side}: {_failure(g)}" for side, g, ok in (("A", group_a, ok_a), ("B", group_b, ok_b))
                           if not ok)
        return {"verdict": "no values", "note": f"no {metric} in {where}" + (f" ({failed})" if failed else "")}
    ratio = row["median_b"] / row["median_a"] if row["median_a"] > 0 else None
    test = mann_whitney(va, vb)
    out = {"ratio": ratio, "p": test.p, "test": test.method}
    floor = smallest_p(len(va), len(vb))
    if floor > alpha:  # no rank test can reach alpha with so few values
        return {**out, "verdict": "same",
                "note": f"too few repeats to test ({len(va)} vs {len(vb)}: the smallest possible p is {floor:.3g})"}
    if test.p >= alpha or ratio is None or ratio == 1:
        return {**out, "verdict": "same", "note": ""}
    return {**out, "verdict": "slower" if ratio > 1 else "faster", "note": ""}


def regressions(table: pd.DataFrame, fail_above: float) -> pd.DataFrame:
    """Rows that fail a --fail-above gate: significantly slower by more than the ratio, or newly failing."""
    slower = (table["verdict"] == "slower") & (pd.to_numeric(table["ratio"], errors="coerce") > fail_above)
    return table[slower | (table["verdict"] == "failed in B")]


# -- rendering -----------------------------------------------------------------------------

def _shown_keys(table: pd.DataFrame) -> list[str]:
    return [k for k in DISPLAY_KEYS if k in ("task", "backend", "mode", "device")
            or table[k].astype(str).nunique() > 1]


def display(table: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    keys = _shown_keys(table)
    header = [*keys, "A median", "B median", "B/A", "p", "n A/B", "verdict", "note"]
    rows = []
    for r in table.to_dict("records"):
        ratio = "-" if report.missing(r["ratio"]) else f"{r['ratio']:.3f}"
        p = "-" if report.missing(r["p"]) else f"{r['p']:.3g}"
        rows.append([*(report.fmt_value(r[k]) for k in keys), report.fmt_seconds(r["median_a"]),
                     report.fmt_seconds(r["median_b"]), ratio, p, f"{r['n_a']}/{r['n_b']}", r["verdict"],
                     r["note"] or ""])
    return header, rows


def tally(table: pd.DataFrame) -> str:
    counts = table["verdict"].value_counts()
    return ", ".join(f"{counts[v]} {v}" for v in VERDICTS if v in counts) or "no cells"


def render(table: pd.DataFrame, fmt: str, title: str, gate: str = "") -> str:
    if fmt == "csv":
        return csv_safe(table).to_csv(index=False)
    if fmt == "json":
        cells = [{k: report.json_value(v) for k, v in row.items()} for row in table.to_dict("records")]
        return json.dumps({"comparison": title, "summary": tally(table), "gate": gate or None, "cells": cells},
                          indent=1, allow_nan=False) + "\n"
    header, rows = display(table)
    lines = [title, tally(table) + (f"; {gate}" if gate else "")]
    if fmt == "md":
        return "\n".join([f"### {report.md_escape(title)}", "", report.md_table(header, rows, right=set(range(
            len(header) - 7, len(header) - 2))), "", report.md_escape(lines[1]), ""])
    if fmt != "table":
        raise ValueError(f"unknown compare format {fmt!r} (choose from: {', '.join(FORMATS)})")
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    rich_table = Table(title=title)
    for column in header:
        rich_table.add_column(column, overflow="fold", no_wrap=column not in ("task", "backend", "note"))
    for row in rows:
        rich_table.add_row(*(escape(c) for c in row))
    buffer = io.StringIO()
    console = Console(file=buffer, width=report.terminal_width(), force_terminal=False, no_color=True)
    console.print(rich_table)
    console.print(escape(lines[1]))
    return buffer.getvalue()
