"""Compare two runs (or two backends within one run) cell by cell, from result files only.

Cells pair up by their configuration: the cell id without the repeat index (task, backend,
mode, device, precision, optimizer, batch size, epochs, lr, seed and any size or thread
setting), or without the backend as well when two backends of one run are compared.

Per pair, the unit of evidence is the repeat: each repeat is its own process, and on a shared or
drifting machine the spread between processes is what a difference has to beat. A repeat's
value of steady_epoch_s is already the median of all its steady epochs. The test is Welch's t
test on the logarithms of the repeats' values (scipy.stats.ttest_ind), which is valid at small n
(its interval widens as n shrinks, and needs two repeats a side to exist); its confidence interval,
exponentiated, is the interval of the ratio B/A of geometric means. Before the test, a side's processes
slower than SLOW_MODE times its median are set aside as the machine's slow mode (harness.measure.noise,
docs/repeats-and-compare.md) and counted in the note; --all-processes keeps them.

Cells that ran in lockstep (bench run --lockstep: live processes taking turns epoch by epoch, so that both saw
the same machine) are compared pair by pair instead: the paired t test on the log ratio of the two cells of each
lockstep group, which cancels what the group's stretch of time did to both; a group whose ratio lies over
SLOW_MODE times from the median ratio (one process alone in the slow mode) is set aside. Verdicts:
faster or slower when the interval excludes 1 and the ratio lies beyond the tolerance; same when the interval
lies within the tolerance around 1; otherwise inconclusive, with what would decide it.
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

from harness.measure.noise import SLOW_MODE, agreeing_pairs, fast_mode, sd_log_of
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
from harness.store.record import FAILED, finite_number
from harness.store.safe_text import csv_safe

# Lower is better for all of them, so B/A > 1 means B is slower.
METRICS = ("steady_epoch_s", "train_s", "cold_start_s", "time_to_target_s", "first_epoch_s", "compile_s",
           "step_ms_p50", "step_ms_p90", "eval_s", "setup_s", "import_s", "total_s", "wall_s",
           "infer_ms_p50", "infer_ms_p90", "infer_ms_p99", "infer_first_ms")
INFERENCE_METRICS = frozenset(m for m in METRICS if m.startswith("infer_"))  # compared between inference cells only
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


def pair_key(cell_id: str, backend: str, ignore_backend: bool, python: str | None = None) -> str:
    config = config_of(cell_id)
    if python and config.endswith(f"-py{python}"):  # bench run --python: the label ends the id, before the repeat
        config = config[: -len(f"-py{python}")]
    if ignore_backend and config.startswith(f"{backend}-"):
        return config[len(backend) + 1:]
    return config


LOCKSTEP_PAIRS = "lockstep groups"  # how a row's note says it was tested pair by pair, group by group


def tested_in_lockstep(table: pd.DataFrame) -> bool:
    """Whether compare tested any row of `table` pair by pair over lockstep groups."""
    return bool(table["note"].fillna("").astype(str).str.contains(LOCKSTEP_PAIRS, regex=False).any())


def _lockstep_key(group: pd.DataFrame) -> pd.Series:
    """Each record's lockstep group within its run ("RUN/GROUP"); None for a record that ran alone."""
    if "lockstep" not in group or "run_id" not in group:
        return pd.Series(None, index=group.index, dtype=object)
    return pd.Series([f"{r}/{g}" if isinstance(g, str) and g and isinstance(r, str) else None
                      for r, g in zip(group["run_id"], group["lockstep"])], index=group.index, dtype=object)


def matched(group_a: pd.DataFrame | None, group_b: pd.DataFrame | None, metric: str, by: str) -> tuple | None:
    """The values of the repeats that finished ok on both sides, matched `by` "lockstep" (the two cells of one
    lockstep group, which took turns epoch by epoch) or by "repeat" index (processes of one run that ran one
    after the other); None when none match. For the steady epoch of a lockstep pair, B's value is A's times the
    median ratio of their steady epochs turn by turn (`turn_ratio`)."""
    if group_a is None or group_b is None:
        return None
    sides = []
    for group in (group_a, group_b):
        ok = group[group["status"] == "ok"]
        if by == "repeat" and "repeat" not in ok:
            return None
        index = _lockstep_key(ok) if by == "lockstep" else pd.to_numeric(ok["repeat"], errors="coerce")
        values = pd.to_numeric(ok[metric], errors="coerce").to_numpy(dtype=float)
        keep = pd.notna(index.to_numpy()) & np.isfinite(values) & ~index.duplicated(keep=False).to_numpy()
        sides.append({key: (value, row) for key, value, row, k in zip(index, values, ok.to_dict("records"), keep)
                      if k})
    a, b = sides
    common = [key for key in a if key in b]
    if not common:
        return None
    turned = [turn_ratio(a[k][1], b[k][1]) if by == "lockstep" and metric == "steady_epoch_s" else None
              for k in common]
    va = np.array([a[k][0] for k in common])
    vb = np.array([b[k][0] if r is None else a[k][0] * r for k, r in zip(common, turned)])
    return va, vb


def _steady_series(record: dict[str, Any], blocks: bool) -> list[float] | None:
    """A record's steady epochs in the order they ran, per epoch: with `blocks`, its blocks over their epochs
    (harness.cell.worker_blocks; the steady epoch is the blocks' median over k, which gives k), else its epochs
    after the first; None where the record holds no such series."""
    steady, timed, epochs = (record.get(k) for k in ("steady_epoch_s", "steady_epoch_blocks_s", "epoch_s"))
    series = None
    if blocks and isinstance(timed, list) and timed and finite_number(steady) and steady > 0:
        if all(finite_number(b) for b in timed):
            k = round(float(np.median(timed)) / steady)
            series = [b / k for b in timed] if k >= 1 else None
    elif not blocks and isinstance(epochs, list) and len(epochs) > 1:
        series = epochs[1:]
    if series and all(finite_number(v) and v > 0 for v in series):
        return [float(v) for v in series]
    return None


def turn_ratio(a: dict[str, Any], b: dict[str, Any]) -> float | None:
    """B/A of two cells that took turns, from their steady epochs turn by turn: the median of b[i]/a[i], each
    pair a turn apart, so that a stretch of time that slows the machine part way through weighs on both sides of
    a ratio alike. Their blocks where both were timed in blocks, else their epochs (a cell near the 100 ms
    threshold may have been timed one way and its partner the other); None where either has no series."""
    sa, sb = _steady_series(a, blocks=True), _steady_series(b, blocks=True)
    if not sa or not sb:
        sa, sb = _steady_series(a, blocks=False), _steady_series(b, blocks=False)
    if not sa or not sb:
        return None
    return float(np.median([y / x for x, y in zip(sa, sb)]))


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
            ignore_backend: bool = False, noise: float | None = None, ignore_python: bool = False,
            paired: bool | None = None, slow_mode: float | None = SLOW_MODE) -> pd.DataFrame:
    """One row per cell configuration found in A or B: geometric means, ratio B/A with its (1 - alpha)
    confidence interval, p-value and verdict. `noise`: this machine's measured coefficient of variation between
    processes (bench calibrate), the least spread a side is taken to have: repeats that agree exactly have not
    measured the machine's noise away. `paired`: None (the default) tests cells that ran in lockstep pair by
    pair, and others side against side; True pairs processes by repeat index as well; False never pairs.
    `slow_mode`: a side's processes slower than this many times its median are set aside (and counted in the
    note) before a test side against side; None keeps every process."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r} (choose from: {', '.join(METRICS)})")
    groups = []
    for side in (a, b):
        df = _of_phase(side.records, "inference" if metric in INFERENCE_METRICS else "train")
        labels = df["python"] if ignore_python and "python" in df else pd.Series(None, index=df.index, dtype=object)
        keys = [pair_key(c, be, ignore_backend, py if isinstance(py, str) else None)
                for c, be, py in zip(df["cell_id"], df["backend"], labels)]
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
        pairs = None if paired is False else matched(group_a, group_b, metric, "lockstep")
        if paired and (pairs is None or len(pairs[0]) < MIN_REPEATS):
            pairs = matched(group_a, group_b, metric, "repeat")
        if pairs is not None and len(pairs[0]) < MIN_REPEATS:
            pairs = None
        aside, pairs_aside = {}, 0
        if slow_mode and pairs is None:
            (va, aside["A"]), (vb, aside["B"]) = fast_mode(va, slow_mode), fast_mode(vb, slow_mode)
            va, vb = np.asarray(va), np.asarray(vb)
        elif slow_mode:
            *kept, pairs_aside = agreeing_pairs(*pairs, slow_mode)
            pairs = tuple(np.asarray(k) for k in kept)
        row.update(config=key, n_a=len(va), n_b=len(vb), mean_a=_gmean(va), mean_b=_gmean(vb), ratio=None,
                   ci_low=None, ci_high=None, p=None)
        row.update(_verdict(va, vb, group_a, group_b, metric, alpha, tolerance, row, noise, pairs))
        if pairs is not None and not missing(row.get("p")):
            said = f"paired: {len(pairs[0])} {LOCKSTEP_PAIRS if paired is None else 'pairs of processes'}"
            if pairs_aside:
                said += f" ({pairs_aside} more set aside: one process alone in the slow mode)"
            row["note"] = "; ".join(filter(None, [row.get("note"), said]))
        if any(aside.values()):
            said = ", ".join(f"{side} {n} of {n + len(v)}" for (side, n), v in zip(aside.items(), (va, vb)) if n)
            row["note"] = "; ".join(filter(None, [row.get("note"), f"slow-mode processes set aside: {said}"]))
        rows.append(row)
    table = pd.DataFrame(rows, columns=COLUMNS)
    order = table[["task", "backend", "mode", "device", "config"]].astype(str)
    return table.loc[order.sort_values(list(order.columns)).index].reset_index(drop=True)


def _of_phase(df: pd.DataFrame, phase: str) -> pd.DataFrame:
    """The records of training cells (records older than phases included) or of inference cells: a metric of
    one says nothing of the other."""
    phases = df["phase"].fillna("train") if "phase" in df else pd.Series("train", index=df.index)
    return df[phases.eq(phase).to_numpy()]


def _gmean(values: np.ndarray) -> float | None:
    if not len(values):
        return None
    return float(np.exp(np.mean(np.log(values)))) if (values > 0).all() else float(np.mean(values))


def _failed_repeats(group: pd.DataFrame | None) -> int:
    return 0 if group is None else int(group["status"].isin(FAILED).sum())


def _verdict(va: np.ndarray, vb: np.ndarray, group_a: pd.DataFrame | None, group_b: pd.DataFrame | None,
             metric: str, alpha: float, tolerance: float, row: dict[str, Any],
             noise: float | None = None, pairs: tuple | None = None) -> dict[str, Any]:
    if group_a is None:  # name the configuration: the shown keys may look like another row's
        return {"verdict": "only in B", "note": row["config"]}
    if group_b is None:
        return {"verdict": "only in A", "note": row["config"]}
    ok_a, ok_b = (group_a["status"] == "ok").any(), (group_b["status"] == "ok").any()
    if not ok_b and len(va):  # every repeat of B failed (or was skipped) where A measured
        return {"verdict": "failed in B", "note": _failure(group_b)}
    if not ok_a and len(vb):
        return {"verdict": "failed in A", "note": _failure(group_a)}
    failed_b, failed_a = _failed_repeats(group_b), _failed_repeats(group_a)
    if failed_b and not failed_a:  # a cell that became flaky: some repeats of B fail where every one of A ran
        return {"verdict": "failed in B", "note": f"{failed_b} of {len(group_b)} repeats failed in B, none of "
                                                  f"{len(group_a)} in A ({_failure(group_b)})"}
    if failed_a and not failed_b:
        return {"verdict": "failed in A", "note": f"{failed_a} of {len(group_a)} repeats failed in A, none of "
                                                  f"{len(group_b)} in B ({_failure(group_a)})"}
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
    if pairs is not None and not ((pairs[0] > 0).all() and (pairs[1] > 0).all()):
        pairs = None
    if pairs is not None:
        flat = "every pair gave the same ratio" if np.ptp(np.log(pairs[1]) - np.log(pairs[0])) == 0 else ""
    else:
        sides = [side for side, v in (("A", va), ("B", vb)) if np.ptp(np.log(v)) == 0]
        flat = f"every repeat of {' and '.join(sides)} gave the same value" if sides else ""
    if flat and not noise:
        return {"ratio": ratio, "verdict": "inconclusive",
                "note": f"{flat}: no spread between processes to test against (bench calibrate measures this "
                        "machine's, which compare then uses)"}
    floor = sd_log_of(noise) if noise else 0.0
    if pairs is not None:
        test = paired_ratio_test(*pairs, alpha, floor)
        ratio = float(np.exp(np.mean(np.log(pairs[1]) - np.log(pairs[0]))))
    else:
        test = ratio_test(va, vb, alpha, floor=floor)
    out = {"ratio": ratio, **test}
    low, high = test["ci_low"], test["ci_high"]
    band_low, band_high = 1 / (1 + tolerance), 1 + tolerance
    if low > 1 and ratio > band_high:
        return {**out, "verdict": "slower", "note": ""}
    if high < 1 and ratio < band_low:
        return {**out, "verdict": "faster", "note": ""}
    if band_low <= low and high <= band_high:
        return {**out, "verdict": "same", "note": f"within ±{tolerance:.0%}"}
    if low > 1 or high < 1:
        return {**out, "verdict": "inconclusive",
                "note": f"a difference, but not shown beyond ±{tolerance:.0%}; "
                        f"{_more_repeats(len(va), len(vb), low, high, band_high if low > 1 else band_low)}"}
    return {**out, "verdict": "inconclusive",
            "note": f"the interval includes 1 and is wider than ±{tolerance:.0%}; "
                    f"{_more_repeats(len(va), len(vb), low, high, 1.0)}"}


def paired_ratio_test(va: np.ndarray, vb: np.ndarray, alpha: float, floor: float = 0.0) -> dict[str, float]:
    """The paired t test on log(B/A) of processes matched by repeat: p, and the (1 - alpha) interval of the ratio
    of geometric means. `floor` stands in for the spread of the differences only where they have none."""
    d = np.log(vb) - np.log(va)
    sd = float(np.std(d, ddof=1)) or math.sqrt(2) * floor
    mean = float(np.mean(d))
    if sd == 0:
        return {"ci_low": math.exp(mean), "ci_high": math.exp(mean), "p": 1.0 if mean == 0 else 0.0}
    se = sd / math.sqrt(len(d))
    half = float(stats.t.ppf(1 - alpha / 2, len(d) - 1)) * se
    return {"ci_low": math.exp(mean - half), "ci_high": math.exp(mean + half),
            "p": float(2 * stats.t.sf(abs(mean) / se, len(d) - 1))}


def ratio_test(va: np.ndarray, vb: np.ndarray, alpha: float, floor: float = 0.0) -> dict[str, float]:
    """Welch's t test on log values: p, and the (1 - alpha) confidence interval of the ratio B/A. `floor`: the
    least standard deviation of a side's log values (the machine's measured noise), so that repeats that
    happen to agree do not make an interval of zero width."""
    la, lb = np.log(va), np.log(vb)
    var_a, var_b = (max(float(np.var(x, ddof=1)), floor ** 2) / len(x) for x in (la, lb))
    se = math.sqrt(var_a + var_b)
    diff = float(np.mean(lb) - np.mean(la))
    if se == 0:  # no spread and no floor: only exact equality can be said
        return {"ci_low": math.exp(diff), "ci_high": math.exp(diff), "p": 1.0 if diff == 0 else 0.0}
    df = (var_a + var_b) ** 2 / (var_a ** 2 / (len(la) - 1) + var_b ** 2 / (len(lb) - 1))  # Welch-Satterthwaite
    half = float(stats.t.ppf(1 - alpha / 2, df)) * se
    return {"ci_low": math.exp(diff - half), "ci_high": math.exp(diff + half),
            "p": float(2 * stats.t.sf(abs(diff) / se, df))}


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
    above, straddles = interval_against(low, high, fail_above)
    untested = (table["verdict"] == "inconclusive") & low.isna()
    return table[failed | above], table[~failed & ~above & (straddles | untested)]


def interval_against(low, high, fail_above: float):
    """(above, straddles): whether an interval of B/A lies wholly above the gate's ratio (a regression), or
    reaches above it without lying wholly there (undecided); elementwise over arrays. The one rule of the gate,
    which the power simulation (harness.compare.power) applies too."""
    return low > fail_above, (low <= fail_above) & (high > fail_above)


def gate_notes(undecided: pd.DataFrame, fail_above: float) -> pd.DataFrame:
    """Undecided rows with their notes saying what would decide them against the gate's threshold."""
    out = undecided.copy()
    for i, r in out.iterrows():
        if not missing(r["ci_low"]):
            how = [part for part in str(r["note"] or "").split("; ") if part.startswith(("paired:", "slow-mode"))]
            out.at[i, "note"] = "; ".join([f"interval {r['ci_low']:.3f}–{r['ci_high']:.3f} spans {fail_above:g}",
                                           _more_repeats(r["n_a"], r["n_b"], r["ci_low"], r["ci_high"], fail_above),
                                           *how])
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


def how(metric: str, tolerance: float = 0.05, slow_mode: float | None = SLOW_MODE) -> str:
    """The legend of a comparison of `metric`."""
    value = "each repeat's median steady epoch" if metric == "steady_epoch_s" else f"each repeat's {metric}"
    aside = f", less those slower than {slow_mode:g}x their side's median (slow mode)" if slow_mode else ""
    return (f"Compared: {metric}. A, B: geometric mean over the repeats that finished ok{aside} ({value}); B/A with "
            "its confidence interval from Welch's t test on the log values of the repeats (cells that ran in "
            "lockstep: the paired t test on the log ratio within each lockstep group"
            + (f", less groups whose ratio lies over {slow_mode:g}x from the others' median" if slow_mode else "")
            + "); faster/slower: the interval "
            f"excludes 1 and B/A is beyond ±{tolerance:.0%}; same: the interval lies within ±{tolerance:.0%}; failed "
            "in B: B has failed repeats where A has none; inconclusive: none of these, or too few repeats.")


def render(table: pd.DataFrame, fmt: str, title: str, gate_line: str = "", metric: str = "steady_epoch_s",
           alpha: float = 0.05, tolerance: float = 0.05, slow_mode: float | None = SLOW_MODE) -> str:
    legend = how(metric, tolerance, slow_mode)
    if fmt == "csv":
        return csv_safe(table).to_csv(index=False)
    if fmt == "json":
        cells = [{k: json_value(v) for k, v in row.items()} for row in table.to_dict("records")]
        return json.dumps({"comparison": title, "summary": tally(table), "gate": gate_line or None, "method": legend,
                           "cells": cells}, indent=1, allow_nan=False) + "\n"
    header, rows = display(table, metric, alpha)
    summary_line = tally(table) + (f"; {gate_line}" if gate_line else "")
    if fmt == "md":
        numbers = set(range(len(header) - 8, len(header) - 2))
        return "\n".join([f"### {md_escape(title)}", "", md_table(header, rows, right=numbers), "",
                          md_escape(summary_line), "", md_escape(legend), ""])
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
    console.print(escape(legend))
    return buffer.getvalue()
