"""Reports from result files only: never re-runs anything.

`summary()` folds the records of one or more runs into one row per run and cell
configuration (medians over the repeats that finished ok, with their spread, and the
reasons of the ones that did not); `render()` turns that into a terminal table, Markdown,
CSV, JSON or a self-contained HTML page (harness.report_html).
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import shutil
import sys
import uuid
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from harness import results, timing

FORMATS = ("table", "md", "csv", "json", "html")
KEYS = ["task", "backend", "mode", "device", "precision", "optimizer", "batch_size", "lr", "epochs"]
SHOWN_KEYS = ("task", "backend", "mode", "device")  # always shown; the other keys only where they vary
NOISY_CV = 0.07  # repeats spread more than this (coefficient of variation) get flagged
ENV_FIELDS = [
    ("cpu_model", "CPU"), ("usable_cores", "usable cores"), ("cpu_count", "CPUs"), ("ram_gb", "RAM (GB)"),
    ("gpu", "GPU"), ("gpu_count", "GPUs"), ("gpu_driver", "GPU driver"), ("gpu_memory", "GPU memory"),
    ("cuda", "CUDA"), ("os", "OS"), ("python", "Python"), ("hostname", "host"),
    ("harness_version", "bench"), ("git_commit", "git commit"),
]


# -- summary -------------------------------------------------------------------------------

def config_of(cell_id: str) -> str:
    """The cell's configuration: its id without the repeat index (every other setting is in the id)."""
    return re.sub(r"-r\d+$", "", str(cell_id))


def _numbers(series: pd.Series) -> np.ndarray:
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)
    return values[np.isfinite(values)]


def _stat(series: pd.Series, fn: Callable[[np.ndarray], float]) -> float | None:
    values = _numbers(series)
    return float(fn(values)) if len(values) else None


def _median(series: pd.Series) -> float | None:
    return _stat(series, np.median)


def _first(series: pd.Series) -> Any:
    present = series.dropna()
    return present.iloc[0] if len(present) else None


def status_summary(group: pd.DataFrame) -> tuple[str, str]:
    """('ok', '') when every repeat is ok; otherwise counts per status and the distinct reasons."""
    counts = group["status"].value_counts()
    n = len(group)
    if len(counts) == 1:
        status = str(counts.index[0])
    else:
        order = sorted(counts.index, key=lambda s: (s != "ok", str(s)))
        status = ", ".join(f"{s} {counts[s]}/{n}" for s in order)
    reasons: dict[str, int] = {}
    for s, message in zip(group["status"], group["message"]):
        if s != "ok" and isinstance(message, str) and message.strip():
            text = " ".join(message.split())
            reasons[text] = reasons.get(text, 0) + 1
    message = "; ".join(text + (f" (×{c})" if c > 1 else "") for text, c in reasons.items())
    return status, message


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """One row per run and cell configuration, sorted by task, backend, mode, device.

    Timings are medians over the repeats that finished ok; train_s also gets its IQR,
    min, max, coefficient of variation and a bootstrap CI of the median; peaks are maxima.
    """
    if df.empty:
        return pd.DataFrame(columns=["run", *KEYS, "repeats", "ok", "status", "message"])
    # A configuration measured in two runs stays two rows: repeats are pooled within a run only,
    # never across machines or code versions (bench compare is for those).
    df = df.assign(_config=df["cell_id"].map(config_of), _run=df["run_id"].astype(str))
    rows = []
    for (run, config), group in df.groupby(["_run", "_config"], sort=False, dropna=False):
        ok = group[group["status"] == "ok"]
        source = ok if len(ok) else group
        status, message = status_summary(group)
        train = _numbers(ok["train_s"])
        ci = timing.bootstrap_ci(list(train)) if len(train) > 1 else None
        cv = timing.cv(list(train)) if len(train) > 1 else None
        reached = ok["time_to_target_s"].notna().sum() if len(ok) else 0
        rows.append({
            "run": run,
            **{key: _first(source[key]) for key in KEYS},
            "config": config,
            "device_name": _first(source["device_name"]),
            "framework_version": _first(source["framework_version"]),
            "train_size": _first(source["train_size"]),
            "threads": _first(source["threads"]),
            "repeats": len(group),
            "ok": len(ok),
            "status": status,
            "message": message,
            "train_s": _median(ok["train_s"]),
            "train_s_iqr": timing.iqr(list(train)) if len(train) else None,
            "train_s_min": float(train.min()) if len(train) else None,
            "train_s_max": float(train.max()) if len(train) else None,
            "train_s_cv": cv,
            "train_s_ci_low": ci[0] if ci else None,
            "train_s_ci_high": ci[1] if ci else None,
            "noisy": bool(cv is not None and cv > NOISY_CV),
            "steady_epoch_s": _median(ok["steady_epoch_s"]),
            "steady_epoch_s_iqr": _stat(ok["steady_epoch_s"], lambda v: timing.iqr(list(v))),
            "first_epoch_s": _median(ok["first_epoch_s"]),
            "compile_s": _median(ok["compile_s"]),
            "samples_per_s": _median(ok["samples_per_s"]),
            "step_ms_p50": _median(ok["step_ms_p50"]),
            "eval_s": _median(ok["eval_s"]),
            "time_to_target_s": _median(ok["time_to_target_s"]),
            "epochs_to_target": _median(ok["epochs_to_target"]),
            "target_reached": int(reached),
            "metric": _first(source["metric"]),
            "metric_value": _median(ok["metric_value"]),
            "target": _first(source["target"]),
            "target_met": int((ok["target_met"] == True).sum()),  # noqa: E712 - column of bools and None
            "peak_host_mb": _stat(ok["peak_host_mb"], np.max),
            "peak_device_mb": _stat(ok["peak_device_mb"], np.max),
            "ran_on": ran_on(group),
        })
    out = pd.DataFrame(rows)
    order = out[["task", "backend", "mode", "device", "config", "run"]].astype(str)
    return out.loc[order.sort_values(list(order.columns)).index].reset_index(drop=True)


def ran_on(group: pd.DataFrame) -> str | None:
    """Where a configuration's repeats ran, once that is more than "alone, on this machine": the executor,
    the hosts, and how many cells shared a machine at once (harness.concurrency)."""
    from harness.concurrency import describe, sharing

    def distinct(column: str) -> list[str]:
        return sorted(set(group[column].dropna().astype(str))) if column in group else []

    executors, hosts, counts = distinct("executor"), distinct("host"), sharing(group)
    if not hosts or (executors in ([], ["local"]) and len(hosts) == 1 and counts in ([], [1])):
        return None  # never ran, or ran alone on this machine as bench always did
    text = f"{', '.join(executors) or '?'}: {', '.join(hosts[:3])}" + (f" +{len(hosts) - 3}" if len(hosts) > 3 else "")
    return text + (f" ({describe(counts)})" if counts not in ([], [1]) else "")


def varying_keys(s: pd.DataFrame) -> list[str]:
    """The key columns worth showing: the always-shown ones plus any that differ between rows."""
    extra = [k for k in KEYS if k not in SHOWN_KEYS and s[k].astype(str).nunique() > 1]
    if "run" in s and s["run"].nunique() > 1:
        extra.append("run")
    for k in ("train_size", "threads"):  # unknown (None) for cells that failed early: not a difference
        if k in s and s[k].dropna().astype(str).nunique() > 1:
            extra.append(k)
    return [*SHOWN_KEYS, *extra]


def environments(df: pd.DataFrame) -> list[dict[str, Any]]:
    """The machine and software of each run, from its records (first record wins)."""
    envs = []
    if df.empty:
        return envs
    for run_id, group in df.groupby("run_id", sort=True, dropna=False):
        first = group.iloc[0]
        env = {field: first.get(f"env_{field}") for field, _ in ENV_FIELDS}
        env = {k: (None if missing(v) else v) for k, v in env.items()}
        versions = {c[len("version_"):]: first[c] for c in group.columns
                    if c.startswith("version_") and not missing(first[c])}
        stamps = sorted(str(t) for t in group["timestamp"].dropna())
        envs.append({"run_id": str(run_id), "first": stamps[0] if stamps else None,
                     "last": stamps[-1] if stamps else None, "records": len(group), **env,
                     "versions": versions})
    return envs


def missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


# -- number formatting ---------------------------------------------------------------------

def fmt_seconds(value: Any) -> str:
    if missing(value):
        return "-"
    v = float(value)
    if v == 0:
        return "0 s"
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
    return "-" if missing(value) else f"{float(value):,.0f} MB"


def fmt_value(value: Any) -> str:
    if missing(value):
        return "-"
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.4g}"
    return str(value)


# -- the table every text format shares ----------------------------------------------------

def display_rows(s: pd.DataFrame, compact: bool = False) -> tuple[list[str], list[list[str]]]:
    """Header and formatted cells of the results table (Markdown and HTML; `compact` for a terminal:
    shorter headers and cells, the metric's name left to the target lines under the table)."""
    keys = varying_keys(s)
    show_device_mem = bool(s["peak_device_mb"].notna().any())  # only where some backend reports it
    header = [*(SHORT.get(k, k) if compact else k for k in keys), "status", "train",
              "CV" if compact else "spread", "epoch", "samples/s", "compile", "to target",
              "metric" if compact else "final metric", "peak host"]
    header += ["peak device"] if show_device_mem else []
    show_ran_on = "ran_on" in s and bool(s["ran_on"].notna().any())  # runs that left this machine or shared it
    header += ["ran on"] if show_ran_on else []
    rows = []
    for r in s.to_dict("records"):
        ok = r["ok"]
        status = r["status"] + (f": {r['message']}" if r["message"] else "")
        if ok > 1:
            cv = f"{r['train_s_cv'] * 100:.2g}%" + (" noisy" if r["noisy"] else "")
            spread = cv if compact else f"IQR {fmt_seconds(r['train_s_iqr'])}, CV {cv}"
        else:
            spread = "-"
        if not ok:
            to_target = metric = "-"
        else:
            reached = f"{r['target_reached']}/{ok}"
            to_target = (f"{fmt_seconds(r['time_to_target_s'])} ({reached})" if r["target_reached"]
                         else "not reached")
            met = f"{'met' if r['target_met'] == ok else 'missed'} {r['target_met']}/{ok}"
            name = "" if compact else f"{r['metric']} "
            metric = f"{name}{fmt_value(r['metric_value'])} ({met})"
        row = [*(fmt_value(r[k]) for k in keys), status, fmt_seconds(r["train_s"]), spread,
               fmt_seconds(r["steady_epoch_s"]), fmt_rate(r["samples_per_s"]), fmt_seconds(r["compile_s"]),
               to_target, metric, fmt_mb(r["peak_host_mb"])]
        row += [fmt_mb(r["peak_device_mb"])] if show_device_mem else []
        rows.append(row + ([r["ran_on"] if isinstance(r["ran_on"], str) else "-"] if show_ran_on else []))
    return header, rows


SHORT = {"batch_size": "batch", "train_size": "n train", "precision": "prec", "optimizer": "opt"}


def matrix_rows(s: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """The backend × task overview: one row per backend setting, one column per task, each cell the
    median training time (✓ when every ok repeat met the task's target) or why there is none."""
    tasks = sorted(s["task"].astype(str).unique())
    row_keys = ["backend", "mode", "device"]
    row_keys += [k for k in varying_keys(s) if k not in (*row_keys, "task")
                 and s.groupby("task")[k].apply(lambda v: v.astype(str).nunique()).max() > 1]
    cells: dict[tuple, dict[str, list[str]]] = {}
    for r in s.to_dict("records"):
        if r["ok"]:
            text = fmt_seconds(r["train_s"]) + (" ✓" if r["target_met"] == r["ok"] else "")
            if r["ok"] < r["repeats"]:
                text += f" ({r['ok']}/{r['repeats']} ok)"
        else:
            text = r["status"]
        cells.setdefault(tuple(fmt_value(r[k]) for k in row_keys), {}).setdefault(str(r["task"]), []).append(text)
    header = [*row_keys, *tasks]
    rows = [[*key, *("; ".join(by_task.get(t, [])) or "-" for t in tasks)] for key, by_task in sorted(cells.items())]
    return header, rows


MATRIX_NOTE = ("Training time, median over repeats (all epochs, compile included); ✓: every repeat met the task's "
               "quality target; a status instead of a time: no repeat finished ok (see below why); -: not run.")


def targets_by_task(s: pd.DataFrame) -> dict[str, str]:
    return {str(t): str(g["target"].dropna().iloc[0]) for t, g in s.groupby("task", sort=True)
            if g["target"].notna().any()}


NOTES = ("train: all epochs, compile included, median over the repeats that finished ok; spread over those "
         f"repeats (IQR, coefficient of variation; noisy above {NOISY_CV:.0%}); epoch: median steady-state epoch; "
         "samples/s: steady-state throughput; compile: first-epoch excess over a steady epoch; to target: "
         "training time until the quality target was first met (repeats that met it); final metric: the "
         "headline test metric after training (repeats whose final metrics meet the target); peak: the "
         "most over repeats.")


# -- formats -------------------------------------------------------------------------------

def render(df: pd.DataFrame, fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"unknown report format {fmt!r} (choose from: {', '.join(FORMATS)})")
    s = summary(df)
    if fmt == "csv":
        return s.to_csv(index=False)
    if fmt == "json":
        return to_json(df, s)
    if fmt == "md":
        return to_markdown(df, s)
    if fmt == "html":
        from harness.report_html import render_html

        return render_html(df, s)
    return to_table(s)


def to_table(s: pd.DataFrame, width: int | None = None) -> str:
    """A rich table for the terminal; in a narrow terminal the least important columns give way."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    if s.empty:
        return "no records (no cell of these runs has finished yet)\n"
    width = width or terminal_width()
    header, rows = display_rows(s, compact=True)
    hidden = _columns_to_hide(header, rows, width)
    failures = bool(s["message"].astype(bool).any())
    keep = [i for i, column in enumerate(header) if column not in hidden]
    table = Table(title="bench results (medians over repeats)")
    for i in keep:
        table.add_column(header[i], overflow="fold", no_wrap=header[i] not in WRAPPING,
                         min_width=STATUS_WIDTH if header[i] == "status" and width >= 120 and failures else None)
    for row in rows:
        table.add_row(*(escape(row[i]) for i in keep))
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, force_terminal=False, no_color=True)
    m_header, m_rows = matrix_rows(s)
    overview = Table(title="training time, backend × task (✓: target met)")
    for column in m_header:
        overview.add_column(column, overflow="fold")
    for row in m_rows:
        overview.add_row(*(escape(c) for c in row))
    console.print(overview)
    console.print(table)
    for task, target in targets_by_task(s).items():
        metric = s.loc[s["task"] == task, "metric"].dropna()
        shown = f" (metric: {metric.iloc[0]})" if len(metric) else ""
        console.print(escape(f"target of {task}: {target}{shown}"))
    if hidden:
        console.print(escape(f"hidden to fit {width} columns: {', '.join(hidden)} (widen the terminal, or use "
                             f"--format md or html)"))
    return buffer.getvalue()


STATUS_WIDTH = 24
WRAPPING = ("task", "backend", "mode", "status", "metric", "to target")  # texts; numbers stay on one line
DROP_ORDER = ("peak device", "CV", "compile", "samples/s", "peak host", "epoch", "to target")


def _columns_to_hide(header: list[str], rows: list[list[str]], width: int) -> list[str]:
    """Columns to leave out, least important first, until the rest fit on one line per cell
    (the status column wraps; every other column is as wide as its widest cell)."""
    def natural(i: int) -> int:
        if header[i] == "status":
            return STATUS_WIDTH
        return max(len(header[i]), *(len(r[i]) for r in rows)) + 3

    widths = {header[i]: natural(i) for i in range(len(header))}
    hidden: list[str] = []
    for column in DROP_ORDER:
        if sum(w for c, w in widths.items() if c not in hidden) + 1 <= width:
            break
        if column in widths:
            hidden.append(column)
    return hidden



def terminal_width() -> int:
    """$COLUMNS, else the terminal's width; unlimited when output goes to a file or pipe (no wrapping there)."""
    if os.environ.get("COLUMNS", "").isdigit():
        return max(60, int(os.environ["COLUMNS"]))
    if not sys.stdout.isatty():
        return 10_000
    return max(60, shutil.get_terminal_size().columns)


_MD_SPECIAL = re.compile(r"([\\`*\[\]|#!~])")
_MD_UNDERSCORE = re.compile(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")


def md_escape(text: object) -> str:
    """Literal text in a GitHub table cell: one line, no markup, no cell breaks, and no HTML: <, > and &
    become entities, so not even a raw '<' reaches a renderer that allows HTML."""
    flat = " ".join(str(text).split()).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_UNDERSCORE.sub(r"\\_", _MD_SPECIAL.sub(r"\\\1", flat))


def md_table(header: list[str], rows: list[list[str]], right: set[int] = frozenset()) -> str:
    lines = ["| " + " | ".join(md_escape(h) for h in header) + " |",
             "|" + "|".join("---:" if i in right else "---" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(md_escape(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def to_markdown(df: pd.DataFrame, s: pd.DataFrame) -> str:
    if s.empty:
        return "No records: no cell of these runs has finished yet.\n"
    header, rows = display_rows(s)
    first_number = header.index("train")
    parts = ["### bench results", ""]
    for env in environments(df):
        parts.append(md_escape(f"Run {env['run_id']} ({env['records']} records, {env['first']} to {env['last']}): "
                               + env_line(env)) + "  ")
    m_header, m_rows = matrix_rows(s)
    parts += ["", md_table(m_header, m_rows), "", md_escape(MATRIX_NOTE), ""]
    parts += ["", md_table(header, rows, right=set(range(first_number, len(header)))), ""]
    parts += [md_escape(f"Target of {task}: {target}.") + "  " for task, target in targets_by_task(s).items()]
    parts += ["", md_escape(NOTES), ""]
    return "\n".join(parts)


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
    if env.get("git_commit"):
        bits.append(f"bench {env.get('harness_version') or ''} @ {str(env['git_commit'])[:12]}")
    return ", ".join(bits)


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


def to_json(df: pd.DataFrame, s: pd.DataFrame) -> str:
    cells = [{k: json_value(v) for k, v in row.items()} for row in s.to_dict("records")]
    envs = [{k: json_value(v) if not isinstance(v, dict) else v for k, v in e.items()} for e in environments(df)]
    return json.dumps({"report": "bench", "schema_version": results.SCHEMA_VERSION, "runs": envs, "cells": cells},
                      indent=1, allow_nan=False) + "\n"


# -- output --------------------------------------------------------------------------------

def write_atomic(path: str | os.PathLike, text: str) -> None:
    """Write the whole file or nothing: a temporary file beside it, then a rename."""
    out = Path(path)
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
