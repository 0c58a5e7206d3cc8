"""The HTML report: one self-contained page (inline CSS and SVG, no script, nothing remote).

A Content-Security-Policy forbids every remote load, so the page renders the same offline,
and every string from the results (plugin names, messages, environment) is escaped.

It lays out report_tables' sections, then charts per task. Charts of one kind share their axis
scale across tasks (log or linear decided once over every task's values) and, where the figures are
comparable across tasks (speedups; the same metric), their range. In a sweep the charts show each
backend setting's fastest configuration, as the overview does, and at most MAX_LINES curves.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from harness.report.format import fmt_seconds
from harness.report.plots import Line, bar_chart, esc, line_chart, wants_log
from harness.report.summary import ENV_FIELDS, varying_keys
from harness.report.tables import Report, Section, constant_settings, results_section, single_repeat_share

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
EAGER = "eager"
MAX_LINES = 8  # curves per chart; in a sweep, those that reached the target first
DIRECT = "compile (direct)"
ESTIMATE = "1st-epoch excess (estimate)"
STEADY = "steady-state epoch"
ONE_REPEAT = ("Dashed outline: the bar rests on one repeat, so this machine's run-to-run noise is not measured "
              "(run with --repeat 3 or more).")

STYLE = """
body { font-family: sans-serif; margin: 24px; color: #222; background: #fff; }
h1 { font-size: 22px; margin-bottom: 4px; }
h2 { font-size: 18px; margin-top: 32px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
h3 { font-size: 15px; margin: 20px 0 8px; }
table { border-collapse: collapse; font-size: 12px; margin: 8px 0; }
th, td { border: 1px solid #ddd; padding: 3px 6px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.num { text-align: right; white-space: nowrap; }
td.name { white-space: nowrap; }
tr.failed td { background: #fdecee; }
tr.skipped td { background: #f6f6f6; color: #666; }
tr.partial td { background: #fff6e0; }
div.wide { max-width: 100%; overflow-x: auto; }
.charts { display: flex; flex-wrap: wrap; gap: 12px; }
.chart { border: 1px solid #e5e5e5; }
.note { font-size: 12px; color: #555; max-width: 1300px; }
.warning { font-size: 13px; color: #6b4500; background: #fff6e0; border: 1px solid #e6c98a; padding: 6px 10px;
           max-width: 1300px; }
.missing { font-size: 12px; color: #b00020; }
code { font-size: 12px; }
"""


def render_html(report: Report) -> str:
    """The page for a built report (report_tables.build)."""
    runs = ", ".join(e["run_id"] for e in report.environments) or "none"
    body = [f"<h1>bench report</h1><p class=\"note\">Runs shown: {esc(report.runs)}. Medians over repeats; "
            "every number comes from the result files of these runs.</p>"]
    warnings = [esc(report.busy), esc(report.machine), _differences(report.differences), esc(report.digest_note),
                esc(_noise_note(report.s))]
    body += [f"<p class=\"warning\">{warning}</p>" for warning in warnings if warning]
    if report.s.empty and report.inference.empty:
        body.append("<p>No records: no cell of these runs has finished yet.</p>")
    else:
        for section in report.sections:
            body.append(_section(report, section))
    if not report.s.empty:  # the charts are of training; inference cells have their table only
        scales = Scales.of(report)
        for task, group in report.shown.groupby("task", sort=True):
            body.append(_task_section(str(task), group, report.records[report.records["task"] == task], scales))
    body.append("<h2>Environment</h2>" + _devices(report.records) + _environment(report.environments))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>bench report: {esc(runs)}</title><style>{STYLE}</style></head>"
            f"<body>{''.join(body)}</body></html>\n")


def _differences(differences: dict[str, list[str]]) -> str:
    """The environments' differences as HTML (escaped), or '' when there are none."""
    if not differences:
        return ""
    items = "; ".join(f"<b>{esc(label)}</b> ({esc(', '.join(values))})" for label, values in differences.items())
    return ("These records come from more than one environment; they differ in: " + items
            + ". Compare figures across them with care.")


def _noise_note(s: pd.DataFrame) -> str:
    single, measured = single_repeat_share(s) if not s.empty else (0, 0)
    if not single:
        return ""
    share = "All" if single == measured else f"{single} of {measured}"
    return (f"{share} configurations rest on one repeat ('1 repeat' in the spread column, a dashed outline in the "
            "charts): their figures include this machine's run-to-run noise, which one repeat cannot measure. "
            "Run with --repeat 3 or more to see it.")


# -- tables --------------------------------------------------------------------------------

def _row_class(status: str, ok: int, repeats: int) -> str:
    if ok == repeats:
        return "ok"
    if status == "skipped":
        return "skipped"
    return "partial" if ok else "failed"


def _table(section: Section, classes: list[str] | None = None) -> str:
    css = section.kind or "extra"
    out = [f"<table class=\"{esc(css)}\"><thead><tr>", *(f"<th>{esc(h)}</th>" for h in section.header),
           "</tr></thead><tbody>"]
    for n, row in enumerate(section.rows):
        cells = "".join(f"<td class=\"{_cell_class(section, i)}\">{esc(c)}</td>" for i, c in enumerate(row))
        out.append(f"<tr class=\"{classes[n]}\">{cells}</tr>" if classes else f"<tr>{cells}</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _cell_class(section: Section, i: int) -> str:
    return "num" if i in section.numeric else "name" if i in section.names else "text"


def _drop_constant_names(section: Section) -> Section:
    """Without the name columns (task, device...) that hold one value in every row: the heading says it."""
    keep = [i for i in range(len(section.header))
            if i not in section.names or len({row[i] for row in section.rows}) > 1 or section.header[i] == "backend"]
    where = {old: new for new, old in enumerate(keep)}
    return Section(section.title, [section.header[i] for i in keep], [[row[i] for i in keep] for row in section.rows],
                   section.note, frozenset(where[i] for i in section.names if i in where),
                   frozenset(where[i] for i in section.numeric if i in where),
                   frozenset(where[i] for i in section.wrap if i in where), section.kind)


def _per_task(report: Report, title: str) -> list[str]:
    """The results table one task at a time, the settings a task's rows share in its heading, so that the
    table keeps to the figures and fits a 1400 px page."""
    parts = [f"<h2>{esc(title)}</h2>"]
    for task, rows in report.listed.groupby("task", sort=True):
        section = _drop_constant_names(results_section(rows))
        classes = [_row_class(st, ok, n) for st, ok, n in zip(rows["status"], rows["ok"], rows["repeats"])]
        devices = rows["device"].dropna().astype(str).unique()
        shared = "; ".join(p for p in (constant_settings(rows), f"device {devices[0]}" if len(devices) == 1 else "")
                           if p)
        parts.append(f"<h3>{esc(str(task))}{esc('; ' + shared) if shared else ''}</h3>"
                     f"<div class=\"wide\">{_table(section, classes)}</div>")
    return parts


def _section(report: Report, section: Section) -> str:
    if section.kind == "results":
        parts = _per_task(report, section.title)
    else:
        parts = [f"<h2>{esc(section.title)}</h2>", f"<div class=\"wide\">{_table(section)}</div>"]
    if section.note:
        parts.append(f"<p class=\"note\">{esc(section.note)}</p>")
    if section.kind == "results":
        if report.compile_sources:
            items = "".join(f"<li>{esc(source)}</li>" for source in report.compile_sources)
            parts.append(f"<p class=\"note\">Compile measured by:</p><ul class=\"note\">{items}</ul>")
        items = "".join(f"<li><code>{esc(task)}</code>: {esc(target)}</li>" for task, target in report.targets.items())
        if items:
            parts.append(f"<p class=\"note\">Quality targets:</p><ul class=\"note\">{items}</ul>")
    return "".join(parts)


def _environment(envs: list[dict[str, Any]]) -> str:
    if not envs:
        return "<p>No runs.</p>"
    fields = [("first", "first record"), ("last", "last record"), ("records", "records"), *ENV_FIELDS]
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


# -- shared scales -------------------------------------------------------------------------

@dataclass
class Scales:
    """Per chart kind, decided once over every task: log axis or not, and the range where tasks compare."""

    train_log: bool
    compile_log: bool
    speedup_log: bool
    speedups: list[float]
    metric_ranges: dict[str, list[float]]

    @classmethod
    def of(cls, report: Report) -> "Scales":
        shown = report.shown[report.shown["ok"] > 0]
        train = [*_floats(shown["train_s"]), *_floats(shown["train_s_min"]), *_floats(shown["train_s_max"])]
        compile_values = [*_floats(shown["compile_s"]), *(v for v in _floats(shown["first_epoch_excess_s"]) if v >= 0),
                          *_floats(shown["steady_epoch_s"])]
        speedups = [v for task, group in shown.groupby("task") for v in _speedups(group, _extra(group)).values()]
        ranges: dict[str, list[float]] = {}
        for metric, group in shown.groupby("metric"):
            ranges[str(metric)] = [*_floats(group["metric_value"]), *_curve_values(report.records, str(metric))]
        return cls(wants_log(train), wants_log(compile_values), wants_log(speedups + [1.0]), speedups, ranges)


def _floats(values: pd.Series) -> list[float]:
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    return numbers[np.isfinite(numbers)].tolist()


def _curve_values(records: pd.DataFrame, metric: str) -> list[float]:
    """Every value of `metric` on the curves of ok records (so tasks sharing a metric share its axis)."""
    ok = records[(records["status"] == "ok") & (records["metric"] == metric)]
    return [p[metric] for curve in ok["curve"] if isinstance(curve, list) for p in curve
            if isinstance(p, dict) and isinstance(p.get(metric), (int, float)) and math.isfinite(p[metric])]


# -- charts per task -----------------------------------------------------------------------

def _label(record: dict[str, Any], parts: list[str]) -> str:
    return " ".join(str(record[p]) for p in parts)


def _extra(s: pd.DataFrame) -> list[str]:
    return [k for k in varying_keys(s) if k not in ("task", "backend", "mode")]


def _task_section(task: str, s: pd.DataFrame, records: pd.DataFrame, scales: Scales) -> str:
    """The charts of one task; each chart appears only where its data exist."""
    s = s.reset_index(drop=True)
    extra = _extra(s)
    charts = [_training_time(task, s, extra, scales), _time_to_accuracy(task, s, records, scales),
              _compile_vs_steady(task, s, extra, scales), _eager_speedup(task, s, extra, scales),
              _cpu_vs_gpu(task, s, extra, scales)]
    shown = "".join(c for c in charts if c)
    if not shown:
        shown = ("<p class=\"missing\">No charts: no cell of this task finished ok "
                 "(see the failed and skipped cells).</p>")
    return f"<h2>Task {esc(task)}</h2><div class=\"charts\">{shown}</div>"


def _training_time(task: str, s: pd.DataFrame, extra: list[str], scales: Scales) -> str:
    """Median training time per backend (bars per mode), whiskers from fastest to slowest repeat."""
    records = s.to_dict("records")
    categories = list(dict.fromkeys(_label(r, ["backend", *extra]) for r in records))
    modes = sorted(dict.fromkeys(str(r["mode"]) for r in records), key=lambda m: m != EAGER)  # eager first
    values, spread, notes, single = {}, {}, {}, set()
    for r in records:
        key = (_label(r, ["backend", *extra]), str(r["mode"]))
        if r["ok"]:
            values[key] = r["train_s"]
            if r["ok"] > 1:
                spread[key] = (r["train_s_min"], r["train_s_max"])
            else:
                single.add(key)
        else:
            notes[key] = r["status"]
    if not values:
        return ""
    return bar_chart(f"{task}: training time (median; whiskers: min to max over repeats)", categories, modes,
                     values, "training time (s)", spread=spread, notes=notes, value_format=_seconds,
                     log=scales.train_log, dashed=single, footnote=ONE_REPEAT if single else "")


def _seconds(value: float) -> str:
    return fmt_seconds(value).replace(" ", "\u00a0")


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


def _time_to_accuracy(task: str, s: pd.DataFrame, records: pd.DataFrame, scales: Scales) -> str:
    metric = next((m for m in s["metric"].dropna()), None)
    ok = records[records["status"] == "ok"]
    if ok.empty or not metric:
        return ""
    extra = [k for k in varying_keys(s) if k not in ("task", "backend")]
    candidates = s[s["ok"] > 0].sort_values(["time_to_target_s", "train_s"], kind="stable", na_position="last")
    drawn = candidates.head(MAX_LINES)
    configs = ok["cell_id"].astype(str).str.replace(r"-r\d+$", "", regex=True)
    keys = pd.Series(list(zip(ok["run_id"].astype(str), configs)), index=ok.index)
    wanted = keys.isin(set(zip(drawn["run"].astype(str), drawn["config"].astype(str))))
    groups = dict(list(ok[wanted].groupby(keys[wanted])))
    lines = []
    for r in drawn.to_dict("records"):
        group = groups.get((str(r["run"]), str(r["config"])))
        xs, ys = _median_curve(group, metric) if group is not None else ([], [])
        if xs:
            lines.append(Line(_label(r, ["backend", *extra]), xs, ys, dashed=str(r["mode"]) == EAGER))
    if not lines:
        return ""
    more = len(candidates) - len(lines)
    title = f"{task}: {metric} against training time (median over repeats, per epoch)"
    target = _target_line(next((t for t in s["target"].dropna()), None), metric)
    return line_chart(title, lines, "cumulative training time (s)", f"test {metric}", hline=target, log_x=False,
                      y_domain=scales.metric_ranges.get(str(metric), []),
                      footnote=(f"{len(lines)} of {len(candidates)} curves: those that reached the target first."
                                if more > 0 else ""))


def _compile_vs_steady(task: str, s: pd.DataFrame, extra: list[str], scales: Scales) -> str:
    """Per backend and mode: compile as the framework reports it, the first-epoch excess (an estimate),
    and a steady epoch, so the direct figure and the estimate can be compared."""
    records = [r for r in s.to_dict("records") if r["ok"] and not (pd.isna(r["steady_epoch_s"])
                                                                    and pd.isna(r["compile_s"]))]
    if not records:
        return ""
    categories = [_label(r, ["backend", "mode", *extra]) for r in records]
    values: dict[tuple[str, str], float | None] = {}
    for c, r in zip(categories, records):
        values[(c, DIRECT)] = None if pd.isna(r["compile_s"]) else r["compile_s"]
        excess = r["first_epoch_excess_s"]
        # A negative excess is noise, not a compile time: left as a gap with its value, never a bar below
        # zero stretching every task's axis.
        values[(c, ESTIMATE)] = None if pd.isna(excess) or excess < 0 else excess
        values[(c, STEADY)] = None if pd.isna(r["steady_epoch_s"]) else r["steady_epoch_s"]
    series = [name for name in (DIRECT, ESTIMATE, STEADY) if any(values.get((c, name)) is not None
                                                                  for c in categories)]
    notes = {(c, DIRECT): "not reported" for c in categories if values[(c, DIRECT)] is None and DIRECT in series}
    notes.update({(c, ESTIMATE): f"{_seconds(r['first_epoch_excess_s'])} (noise)" for c, r in zip(categories, records)
                  if not pd.isna(r["first_epoch_excess_s"]) and r["first_epoch_excess_s"] < 0})
    explained = []
    if DIRECT in series:
        sources = [f"{c}: {r['compile_source']}" for c, r in zip(categories, records)
                   if isinstance(r["compile_source"], str)]
        explained.append("compile (direct): the framework's own compile timing, measured by " + "; ".join(sources)
                         + ".")
    if ESTIMATE in series:
        explained.append("1st-epoch excess: first epoch minus the median later one, an estimate that noise can "
                         "make negative.")
    return bar_chart(f"{task}: compile (direct and estimated) versus steady-state epoch time", categories, series,
                     values, "seconds", notes=notes, value_format=_seconds, log=scales.compile_log,
                     footnote=" ".join(explained))


def _speedups(s: pd.DataFrame, extra: list[str]) -> dict[tuple[str, str], float]:
    """Per backend, steady epoch time in eager mode divided by that of each other mode."""
    records = [r for r in s.to_dict("records") if r["ok"] and not pd.isna(r["steady_epoch_s"])]
    eager = {_label(r, ["backend", *extra]): r["steady_epoch_s"] for r in records if r["mode"] == EAGER}
    values: dict[tuple[str, str], float] = {}
    for r in records:
        group = _label(r, ["backend", *extra])
        if r["mode"] != EAGER and group in eager and r["steady_epoch_s"] > 0:
            values[(group, str(r["mode"]))] = eager[group] / r["steady_epoch_s"]
    return values


def _eager_speedup(task: str, s: pd.DataFrame, extra: list[str], scales: Scales) -> str:
    values = _speedups(s, extra)
    if not values:
        return ""
    categories = list(dict.fromkeys(c for c, _ in values))
    modes = list(dict.fromkeys(m for _, m in values))
    return bar_chart(f"{task}: speedup over eager (steady epoch, eager time / mode time)", categories, modes,
                     values, "speedup (×)", reference=(1.0, "1× = as fast as eager"),
                     value_format=lambda v: f"{v:.2f}×", log=scales.speedup_log, domain=scales.speedups,
                     footnote="Same axis for every task.")


def _cpu_vs_gpu(task: str, s: pd.DataFrame, extra: list[str], scales: Scales) -> str:
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
                     value_format=_seconds, log=scales.train_log)
