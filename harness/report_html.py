"""The HTML report: one self-contained page (inline CSS and SVG, no script, nothing remote).

A Content-Security-Policy forbids every remote load, so the page renders the same offline,
and every string from the results (plugin names, messages, environment) is escaped.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pandas as pd

from harness import report
from harness.svg_plots import Line, bar_chart, esc, line_chart

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
EAGER = "eager"

STYLE = """
body { font-family: sans-serif; margin: 24px; color: #222; background: #fff; }
h1 { font-size: 22px; margin-bottom: 4px; }
h2 { font-size: 18px; margin-top: 32px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
h3 { font-size: 15px; margin: 20px 0 8px; }
table { border-collapse: collapse; font-size: 12px; margin: 8px 0; }
th, td { border: 1px solid #ddd; padding: 3px 6px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.num { text-align: right; white-space: nowrap; }
tr.failed td { background: #fdecee; }
tr.skipped td { background: #f6f6f6; color: #666; }
tr.partial td { background: #fff6e0; }
.charts { display: flex; flex-wrap: wrap; gap: 12px; }
.chart { border: 1px solid #e5e5e5; }
.note { font-size: 12px; color: #555; max-width: 1300px; }
.missing { font-size: 12px; color: #b00020; }
code { font-size: 12px; }
"""


def render_html(df: pd.DataFrame, s: pd.DataFrame) -> str:
    """The page for the records `df` and their summary `s` (report.summary)."""
    envs = report.environments(df)
    runs = ", ".join(e["run_id"] for e in envs) or "none"
    body = [f"<h1>bench report</h1><p class=\"note\">Runs: {esc(runs)}. Medians over repeats; "
            "every number comes from the result files of these runs.</p>"]
    if s.empty:
        body.append("<p>No records: no cell of these runs has finished yet.</p>")
    else:
        body.append("<h2>Overview</h2>" + _matrix(s) + f"<p class=\"note\">{esc(report.MATRIX_NOTE)}</p>")
        body.append("<h2>Results</h2>" + _results_table(s))
        body.append(f"<p class=\"note\">{esc(report.NOTES)}</p>")
        body.append(_targets(s))
        failures = _failures(s)
        if failures:
            body.append("<h2>Failed and skipped cells</h2>" + failures)
        for task, group in s.groupby("task", sort=True):
            body.append(_task_section(str(task), group, df[df["task"] == task]))
    body.append("<h2>Environment</h2>" + _devices(df) + _environment(envs))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>bench report: {esc(runs)}</title><style>{STYLE}</style></head>"
            f"<body>{''.join(body)}</body></html>\n")


# -- tables --------------------------------------------------------------------------------

def _row_class(status: str, ok: int, repeats: int) -> str:
    if ok == repeats:
        return "ok"
    if status == "skipped":
        return "skipped"
    return "partial" if ok else "failed"


def _results_table(s: pd.DataFrame) -> str:
    header, rows = report.display_rows(s)
    numeric = set(range(header.index("train"), len(header)))
    out = ["<table class=\"results\"><thead><tr>", *(f"<th>{esc(h)}</th>" for h in header), "</tr></thead><tbody>"]
    for row, record in zip(rows, s.to_dict("records")):
        cls = _row_class(record["status"], record["ok"], record["repeats"])
        cells = "".join(f"<td class=\"num\">{esc(c)}</td>" if i in numeric else f"<td>{esc(c)}</td>"
                        for i, c in enumerate(row))
        out.append(f"<tr class=\"{cls}\">{cells}</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _matrix(s: pd.DataFrame) -> str:
    header, rows = report.matrix_rows(s)
    first_task = header.index(sorted({str(t) for t in s["task"]})[0])
    out = ["<table class=\"overview\"><thead><tr>", *(f"<th>{esc(h)}</th>" for h in header), "</tr></thead><tbody>"]
    for row in rows:
        out.append("<tr>" + "".join(f"<td class=\"num\">{esc(c)}</td>" if i >= first_task else f"<td>{esc(c)}</td>"
                                    for i, c in enumerate(row)) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _targets(s: pd.DataFrame) -> str:
    items = "".join(f"<li><code>{esc(task)}</code>: {esc(target)}</li>"
                    for task, target in report.targets_by_task(s).items())
    return f"<p class=\"note\">Quality targets:</p><ul class=\"note\">{items}</ul>" if items else ""


def _failures(s: pd.DataFrame) -> str:
    bad = s[s["ok"] < s["repeats"]]
    if bad.empty:
        return ""
    out = ["<table class=\"failures\"><thead><tr><th>task</th><th>backend</th><th>mode</th><th>device</th>"
           "<th>status</th><th>why</th></tr></thead><tbody>"]
    for r in bad.to_dict("records"):
        cls = _row_class(r["status"], r["ok"], r["repeats"])
        out.append(f"<tr class=\"{cls}\">" + "".join(f"<td>{esc(r[k])}</td>" for k in
                   ("task", "backend", "mode", "device", "status")) + f"<td>{esc(r['message'] or '-')}</td></tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _environment(envs: list[dict[str, Any]]) -> str:
    if not envs:
        return "<p>No runs.</p>"
    fields = [("first", "first record"), ("last", "last record"), ("records", "records"), *report.ENV_FIELDS]
    dists = sorted({d for e in envs for d in e["versions"]})
    out = ["<table class=\"environment\"><thead><tr><th>run</th>",
           *(f"<th>{esc(e['run_id'])}</th>" for e in envs), "</tr></thead><tbody>"]
    for key, label in fields:
        out.append(f"<tr><th>{esc(label)}</th>" + "".join(f"<td>{esc(_shown(e.get(key)))}</td>" for e in envs)
                   + "</tr>")
    for dist in dists:
        out.append(f"<tr><th>{esc(dist)}</th>" + "".join(f"<td>{esc(e['versions'].get(dist, '-'))}</td>"
                                                          for e in envs) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _devices(df: pd.DataFrame) -> str:
    """What each device of the cells was, as the records name it."""
    if df.empty:
        return ""
    pairs = df[["device", "device_name"]].dropna().drop_duplicates().sort_values(["device", "device_name"])
    items = "".join(f"<li>{esc(d)}: {esc(n)}</li>" for d, n in pairs.itertuples(index=False))
    return f"<p class=\"note\">Devices measured:</p><ul class=\"note\">{items}</ul>" if items else ""


def _shown(value: Any) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


# -- charts per task -----------------------------------------------------------------------

def _label(record: dict[str, Any], parts: list[str]) -> str:
    return " ".join(str(record[p]) for p in parts)


def _task_section(task: str, s: pd.DataFrame, records: pd.DataFrame) -> str:
    """The charts of one task; each chart appears only where its data exist."""
    s = s.reset_index(drop=True)
    extra = [k for k in report.varying_keys(s) if k not in ("task", "backend", "mode")]
    charts = [_training_time(task, s, extra), _time_to_accuracy(task, s, records),
              _compile_vs_steady(task, s, extra), _eager_speedup(task, s, extra), _cpu_vs_gpu(task, s, extra)]
    shown = "".join(c for c in charts if c)
    if not shown:
        shown = ("<p class=\"missing\">No charts: no cell of this task finished ok "
                 "(see the failed and skipped cells).</p>")
    return f"<h2>Task {esc(task)}</h2><div class=\"charts\">{shown}</div>"


def _training_time(task: str, s: pd.DataFrame, extra: list[str]) -> str:
    """Median training time per backend (bars per mode), whiskers from fastest to slowest repeat."""
    records = s.to_dict("records")
    categories = list(dict.fromkeys(_label(r, ["backend", *extra]) for r in records))
    modes = sorted(dict.fromkeys(str(r["mode"]) for r in records), key=lambda m: m != EAGER)  # eager first
    values, spread, notes = {}, {}, {}
    for r in records:
        key = (_label(r, ["backend", *extra]), str(r["mode"]))
        if r["ok"]:
            values[key] = r["train_s"]
            if r["ok"] > 1:
                spread[key] = (r["train_s_min"], r["train_s_max"])
        else:
            notes[key] = r["status"]
    if not values:
        return ""
    return bar_chart(f"{task}: training time (median; whiskers: min to max over repeats)", categories, modes,
                     values, "training time (s)", spread=spread, notes=notes, value_format=_seconds)


def _seconds(value: float) -> str:
    return report.fmt_seconds(value).replace(" ", "\u00a0")


def _median_curve(group: pd.DataFrame, metric: str) -> tuple[list[float], list[float]]:
    """Per epoch, the median over ok repeats of the cumulative training time and of the metric."""
    by_epoch: dict[int, tuple[list[float], list[float]]] = {}
    for curve in group["curve"]:
        for point in curve if isinstance(curve, list) else []:
            t, v = point.get("train_s"), point.get(metric)
            if isinstance(t, (int, float)) and isinstance(v, (int, float)) and math.isfinite(t) and math.isfinite(v):
                times, values = by_epoch.setdefault(int(point.get("epoch", 0)), ([], []))
                times.append(float(t))
                values.append(float(v))
    epochs = sorted(by_epoch)
    return ([float(np.median(by_epoch[e][0])) for e in epochs], [float(np.median(by_epoch[e][1])) for e in epochs])


def _target_line(target: str | None, metric: str | None) -> tuple[float, str] | None:
    """The headline metric's bar from a target text such as 'accuracy >= 0.975 and ...'."""
    if not target or not metric:
        return None
    for name, op, value in re.findall(r"([A-Za-z_]\w*)\s*(>=|<=)\s*([-+0-9.eE]+)", str(target)):
        if name == metric:
            try:
                return float(value), f"target {name} {op} {value}"
            except ValueError:
                return None
    return None


def _time_to_accuracy(task: str, s: pd.DataFrame, records: pd.DataFrame) -> str:
    ok = records[records["status"] == "ok"].assign(_config=lambda d: d["cell_id"].map(report.config_of))
    metric = next((m for m in s["metric"].dropna()), None)
    if ok.empty or not metric:
        return ""
    extra = [k for k in report.varying_keys(s) if k not in ("task", "backend")]
    lines = []
    for r in s.to_dict("records"):
        xs, ys = _median_curve(ok[(ok["_config"] == r["config"]) & (ok["run_id"].astype(str) == r["run"])], metric)
        if xs:
            lines.append(Line(_label(r, ["backend", *extra]), xs, ys, dashed=str(r["mode"]) == EAGER))
    if not lines:
        return ""
    target = _target_line(next((t for t in s["target"].dropna()), None), metric)
    return line_chart(f"{task}: {metric} against training time (median over repeats, per epoch)", lines,
                      "cumulative training time (s)", f"test {metric}", hline=target)


def _compile_vs_steady(task: str, s: pd.DataFrame, extra: list[str]) -> str:
    records = [r for r in s.to_dict("records") if r["ok"] and not pd.isna(r["steady_epoch_s"])]
    if not records:
        return ""
    categories = [_label(r, ["backend", "mode", *extra]) for r in records]
    series = ["compile (first epoch minus a steady one)", "steady-state epoch"]
    values = {}
    for c, r in zip(categories, records):
        values[(c, series[0])] = None if pd.isna(r["compile_s"]) else r["compile_s"]
        values[(c, series[1])] = r["steady_epoch_s"]
    return bar_chart(f"{task}: compile versus steady-state epoch time", categories, series, values, "seconds",
                     value_format=_seconds)


def _eager_speedup(task: str, s: pd.DataFrame, extra: list[str]) -> str:
    """Per backend, steady epoch time in eager mode divided by that of each other mode."""
    records = [r for r in s.to_dict("records") if r["ok"] and not pd.isna(r["steady_epoch_s"])]
    eager = {_label(r, ["backend", *extra]): r["steady_epoch_s"] for r in records if r["mode"] == EAGER}
    values: dict[tuple[str, str], float] = {}
    for r in records:
        group = _label(r, ["backend", *extra])
        if r["mode"] != EAGER and group in eager and r["steady_epoch_s"] > 0:
            values[(group, str(r["mode"]))] = eager[group] / r["steady_epoch_s"]
    if not values:
        return ""
    categories = list(dict.fromkeys(c for c, _ in values))
    modes = list(dict.fromkeys(m for _, m in values))
    return bar_chart(f"{task}: speedup over eager (steady epoch, eager time / mode time)", categories, modes,
                     values, "speedup (×)", reference=(1.0, "1× = as fast as eager"),
                     value_format=lambda v: f"{v:.2f}×")


def _cpu_vs_gpu(task: str, s: pd.DataFrame, extra: list[str]) -> str:
    """Training time on each device, for the backend and mode combinations measured on both."""
    records = [r for r in s.to_dict("records") if r["ok"]]
    rest = [k for k in extra if k != "device"]
    by_cell: dict[str, dict[str, float]] = {}
    for r in records:
        by_cell.setdefault(_label(r, ["backend", "mode", *rest]), {})[str(r["device"])] = r["train_s"]
    both = {c: d for c, d in by_cell.items() if "cpu" in d and len(d) > 1}
    if not both:
        return ""
    devices = sorted({d for v in both.values() for d in v}, key=lambda d: (d != "cpu", d))
    values = {(c, d): v for c, dev in both.items() for d, v in dev.items()}
    return bar_chart(f"{task}: CPU versus GPU training time", list(both), devices, values, "training time (s)",
                     value_format=_seconds)
