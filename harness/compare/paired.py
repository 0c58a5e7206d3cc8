"""Compare two runs (or two backends within one run) cell by cell, from result files only.

Cells pair up by their configuration: the cell id without the repeat index (task, backend,
mode, device, precision, optimizer, batch size, epochs, lr, seed and any size or thread
setting), or without the backend as well when two backends of one run are compared.

Per pair, the unit of evidence is the repeat: each repeat is its own process, and on a shared or
drifting machine the spread between processes is what a difference has to beat. A repeat's
value of steady_epoch_s is already the median of all its steady epochs. The test is Welch's t
test on the logarithms of the repeats' values (scipy.stats.ttest_ind), which is valid at small n
(its interval widens as n shrinks, and needs two repeats a side to exist); its confidence interval,
exponentiated, is the interval of the ratio B/A of geometric means. Verdicts: faster or slower
when the interval excludes 1; same when it lies within the tolerance around 1; otherwise
inconclusive, with what would decide it.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from harness.report.format import (
    fmt_seconds,
    fmt_value,
    json_value,
    md_escape,
    md_table,
    missing,
)
from harness.report.summary import config_of, status_summary
from harness.report.terminal import terminal_width
from harness.store.safe_text import csv_safe

# Lower is better for all of them, so B/A > 1 means B is slower.
METRICS = ("steady_epoch_s", "train_s", "cold_start_s", "time_to_target_s", "first_epoch_s", "compile_s",
           "step_ms_p50", "step_ms_p90", "eval_s", "setup_s", "import_s", "total_s", "wall_s")
FORMATS = ("table", "md", "csv", "json")
VERDICTS = ("faster", "slower", "same", "inconclusive", "failed in B", "failed in A", "only in A", "only in B",
            "no values")
DISPLAY_KEYS = ["task", "backend", "mode", "device", "precision", "optimizer", "batch_size"]
MIN_REPEATS = 2  # Welch's test needs a spread on each side
ADVISED_REPEATS = 3
COLUMNS = [*DISPLAY_KEYS, "config", "n_a", "n_b", "mean_a", "mean_b", "ratio", "ci_low", "ci_high", "p", "verdict",
           "note"]


@dataclass
class Side:
    """One side of a comparison: the records and how to name them."""

    label: str
    records: pd.DataFrame


def pair_key(cell_id: str, backend: str, ignore_backend: bool) -> str:
    config = config_of(cell_id)
    if ignore_backend and config.startswith(f"{backend}-"):
        return config[len(backend) + 1:]
    return config


def _values(group: pd.DataFrame | None, metric: str) -> np.ndarray:
    """One value per repeat that finished ok."""
    if group is None:
        return np.array([])
    ok = group[group["status"] == "ok"]
    values = pd.to_numeric(ok[metric], errors="coerce").to_numpy(dtype=float)
    return values[np.isfinite(values)]


def _failure(group: pd.DataFrame | None) -> str:
    if group is None or not len(group):
        return ""
    status, message = status_summary(group)
    return status + (f": {message}" if message else "")


def compare(a: Side, b: Side, metric: str = "steady_epoch_s", alpha: float = 0.05, tolerance: float = 0.05,
            ignore_backend: bool = False) -> pd.DataFrame:
    """One row per cell configuration found in A or B: geometric means, ratio B/A with its (1 - alpha)
    confidence interval, p-value and verdict."""
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
        row.update(config=key, n_a=len(va), n_b=len(vb), mean_a=_gmean(va), mean_b=_gmean(vb), ratio=None,
                   ci_low=None, ci_high=None, p=None)
        row.update(_verdict(va, vb, group_a, group_b, metric, alpha, tolerance, row))
        rows.append(row)
    table = pd.DataFrame(rows, columns=COLUMNS)
    order = table[["task", "backend", "mode", "device", "config"]].astype(str)
    return table.loc[order.sort_values(list(order.columns)).index].reset_index(drop=True)


def _gmean(values: np.ndarray) -> float | None:
    if not len(values):
        return None
    return float(np.exp(np.mean(np.log(values)))) if (values > 0).all() else float(np.mean(values))


def _verdict(va: np.ndarray, vb: np.ndarray, group_a: pd.DataFrame | None, group_b: pd.DataFrame | None,
             metric: str, alpha: float, tolerance: float, row: dict[str, Any]) -> dict[str, Any]:
    if group_a is None:  # name the configuration: the shown keys may look like another row's
        return {"verdict": "only in B", "note": row["config"]}
    if group_b is None:
        return {"verdict": "only in A", "note": row["config"]}
    ok_a, ok_b = (group_a["status"] == "ok").any(), (group_b["status"] == "ok").any()
    if not ok_b and len(va):  # every repeat of B failed (or was skipped) where A measured
        return {"verdict": "failed in B", "note": _failure(group_b)}
    if not ok_a and len(vb):
        return {"verdict": "failed in A", "note": _failure(group_a)}
    if ok_a and ok_b and metric == "steady_epoch_s" and not (len(va) and len(vb)):
        return {"verdict": "inconclusive",
                "note": f"one epoch per repeat: no steady epoch to compare; run --epochs 3 --repeat {ADVISED_REPEATS}"}
    if not len(va) or not len(vb):  # e.g. time_to_target_s where the target was not reached
        where = " and ".join(side for side, v in (("A", va), ("B", vb)) if not len(v))
        failed = "; ".join(f"{side}: {_failure(g)}" for side, g, ok in (("A", group_a, ok_a), ("B", group_b, ok_b))
                           if not ok)
        return {"verdict": "no values", "note": f"no {metric} in {where}" + (f" ({failed})" if failed else "")}
    if (va == 0).all() and (vb == 0).all():
        return {"ratio": 1.0, "ci_low": 1.0, "ci_high": 1.0, "verdict": "same", "note": f"{metric} is 0 on both sides"}
    if (va <= 0).any() or (vb <= 0).any():
        return {"verdict": "inconclusive", "note": f"{metric} is 0 or negative in some repeats: no ratio to test"}
    ratio = row["mean_b"] / row["mean_a"]
    if min(len(va), len(vb)) < MIN_REPEATS:
        return {"ratio": ratio, "verdict": "inconclusive",
                "note": f"{len(va)} vs {len(vb)} repeats: the spread between processes is unknown with one; "
                        f"run --repeat {ADVISED_REPEATS}"}
    test = ratio_test(va, vb, alpha)
    out = {"ratio": ratio, **test}
    low, high = test["ci_low"], test["ci_high"]
    if low > 1:
        return {**out, "verdict": "slower", "note": ""}
    if high < 1:
        return {**out, "verdict": "faster", "note": ""}
    if 1 / (1 + tolerance) <= low and high <= 1 + tolerance:
        return {**out, "verdict": "same", "note": f"within ±{tolerance:.0%}"}
    return {**out, "verdict": "inconclusive",
            "note": f"the interval includes 1 and is wider than ±{tolerance:.0%}; "
                    f"{_more_repeats(len(va), len(vb), low, high, 1.0)}"}


def ratio_test(va: np.ndarray, vb: np.ndarray, alpha: float) -> dict[str, float]:
    """Welch's t test on log values: p, and the (1 - alpha) confidence interval of the ratio B/A."""
    la, lb = np.log(va), np.log(vb)
    if np.ptp(la) == 0 and np.ptp(lb) == 0:  # no spread at all: the difference is exact
        exact = float(np.exp(lb[0] - la[0]))
        return {"ci_low": exact, "ci_high": exact, "p": 0.0 if exact != 1 else 1.0}
    result = stats.ttest_ind(lb, la, equal_var=False)
    ci = result.confidence_interval(confidence_level=1 - alpha)
    return {"ci_low": float(np.exp(ci.low)), "ci_high": float(np.exp(ci.high)), "p": float(result.pvalue)}


def _more_repeats(n_a: int, n_b: int, low: float, high: float, threshold: float) -> str:
    """What would decide it: the interval's half-width shrinks about as 1/sqrt(n), so the repeats needed for it to
    clear the threshold, if the ratio stays where it is."""
    centre, half = (math.log(low) + math.log(high)) / 2, (math.log(high) - math.log(low)) / 2
    gap = abs(centre - math.log(threshold))
    if gap < half / 10:
        return f"the ratio sits at {threshold:g}: more repeats narrow the interval but may not decide it"
    needed = math.ceil(max(n_a, n_b) * (half / gap) ** 2) + 1
    return f"about --repeat {max(needed, ADVISED_REPEATS)} would decide it"


def gate(table: pd.DataFrame, fail_above: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(regressions, undecided) under `--fail-above`: a regression is a cell whose whole interval lies above the
    ratio, or one that fails in B only; undecided is a cell whose interval reaches above it but not wholly, or
    that has too little data to tell. Cells only in one run, or with no values on either side, are not gated."""
    low, high = (pd.to_numeric(table[c], errors="coerce") for c in ("ci_low", "ci_high"))
    failed = table["verdict"] == "failed in B"
    above = low > fail_above
    straddles = (low <= fail_above) & (high > fail_above)
    untested = (table["verdict"] == "inconclusive") & low.isna()
    return table[failed | above], table[~failed & ~above & (straddles | untested)]


def gate_notes(undecided: pd.DataFrame, fail_above: float) -> pd.DataFrame:
    """Undecided rows with their notes saying what would decide them against the gate's threshold."""
    out = undecided.copy()
    for i, r in out.iterrows():
        if not missing(r["ci_low"]):
            out.at[i, "note"] = (f"interval {r['ci_low']:.3f}–{r['ci_high']:.3f} spans {fail_above:g}; "
                                 + _more_repeats(r["n_a"], r["n_b"], r["ci_low"], r["ci_high"], fail_above))
    return out


# -- rendering -----------------------------------------------------------------------------

def _shown_keys(table: pd.DataFrame) -> list[str]:
    return [k for k in DISPLAY_KEYS if k in ("task", "backend", "mode", "device")
            or table[k].astype(str).nunique() > 1]


def _fmt_metric(value: Any, metric: str) -> str:
    if metric.endswith("_ms_p50") or metric.endswith("_ms_p90"):
        return fmt_seconds(None if missing(value) else float(value) / 1e3)
    return fmt_seconds(value)


def display(table: pd.DataFrame, metric: str = "steady_epoch_s",
            alpha: float = 0.05) -> tuple[list[str], list[list[str]]]:
    keys = _shown_keys(table)
    header = [*keys, "A", "B", "B/A", f"{1 - alpha:.0%} CI", "p", "n A/B", "verdict", "note"]
    rows = []
    for r in table.to_dict("records"):
        ratio = "-" if missing(r["ratio"]) else f"{r['ratio']:.3f}"
        ci = "-" if missing(r["ci_low"]) else f"{r['ci_low']:.3f}–{r['ci_high']:.3f}"
        p = "-" if missing(r["p"]) else f"{r['p']:.3g}"
        rows.append([*(fmt_value(r[k]) for k in keys), _fmt_metric(r["mean_a"], metric),
                     _fmt_metric(r["mean_b"], metric), ratio, ci, p, f"{r['n_a']}/{r['n_b']}", r["verdict"],
                     r["note"] or ""])
    return header, rows


def tally(table: pd.DataFrame) -> str:
    counts = table["verdict"].value_counts()
    return ", ".join(f"{counts[v]} {v}" for v in VERDICTS if v in counts) or "no cells"


HOW = ("A, B: geometric mean over the repeats that finished ok (steady_epoch_s: each repeat's median steady epoch); "
       "B/A with its confidence interval from Welch's t test on the log values of the repeats; faster/slower: the "
       "interval excludes 1; same: it lies within the tolerance; inconclusive: neither, or too few repeats.")


def render(table: pd.DataFrame, fmt: str, title: str, gate_line: str = "", metric: str = "steady_epoch_s",
           alpha: float = 0.05) -> str:
    if fmt == "csv":
        return csv_safe(table).to_csv(index=False)
    if fmt == "json":
        cells = [{k: json_value(v) for k, v in row.items()} for row in table.to_dict("records")]
        return json.dumps({"comparison": title, "summary": tally(table), "gate": gate_line or None, "method": HOW,
                           "cells": cells}, indent=1, allow_nan=False) + "\n"
    header, rows = display(table, metric, alpha)
    summary_line = tally(table) + (f"; {gate_line}" if gate_line else "")
    if fmt == "md":
        numbers = set(range(len(header) - 8, len(header) - 2))
        return "\n".join([f"### {md_escape(title)}", "", md_table(header, rows, right=numbers), "",
                          md_escape(summary_line), "", md_escape(HOW), ""])
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
    console = Console(file=buffer, width=terminal_width(), force_terminal=False, no_color=True)
    console.print(rich_table)
    console.print(escape(summary_line))
    console.print(escape(HOW))
    return buffer.getvalue()
