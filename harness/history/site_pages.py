"""The pages of the history site, as HTML text: the index of machines, a machine's leaderboard and cells,
a cell's trend, a run's light page. Same look and the same rules as the HTML report (harness.report.html):
inline CSS and SVG, no script, a Content-Security-Policy that forbids every remote load, every string from
the records escaped. Links are relative (the site works from file://); `root` is the way up to the site's
top from the page being written."""

from __future__ import annotations

import functools
import hashlib
import math
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

import pandas as pd

from harness.history import leaderboard
from harness.history.render import _date, _short, change_text
from harness.history.series import Series, step_rows
from harness.history.trend_chart import Change, Point, trend_chart
from harness.report.format import fmt_seconds, missing
from harness.report.html import CSP, STYLE
from harness.report.plots import esc

EXTRA_STYLE = """
p.nav { font-size: 13px; margin: 0 0 12px; }
td.best { font-weight: bold; background: #eef6ee; }
td small, th small { color: #666; font-weight: normal; }
tr.regression td { background: #fdecee; }
tr.undecided td { background: #fff6e0; }
"""
POINTS_LISTED = 50  # a cell page lists its newest runs; the chart has them all


@functools.cache
def slug(text: str) -> str:
    """`text` as a file name: unchanged when it is one already, else cleaned and told apart by a hash."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:100].lstrip(".") or "_"
    if safe != text:
        safe += "-" + hashlib.blake2b(text.encode(), digest_size=4).hexdigest()
    return safe


def machine_path(machine: str) -> str:
    return f"machines/{slug(machine)}.html"


@functools.cache
def cell_path(machine: str, config: str) -> str:
    return f"cells/{slug(machine)}/{slug(config)}.html"


@functools.cache
def run_path(machine: str, run_id: str) -> str:
    return f"runs/{slug(machine)}/{slug(run_id)}.html"


@functools.cache
def href(root: str, path: str) -> str:
    return root + quote(path)


def page(title: str, nav: list[tuple[str, str | None]], body: str) -> str:
    crumbs = " › ".join(f'<a href="{esc(link)}">{esc(label)}</a>' if link else esc(label) for label, link in nav)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{esc(title)}</title><style>{STYLE}{EXTRA_STYLE}</style></head>"
            f"<body><p class=\"nav\">{crumbs}</p><h1>{esc(title)}</h1>{body}</body></html>\n")


def table(header: Iterable[str], rows: Iterable[Iterable[str]], classes: Iterable[str] = ()) -> str:
    """Header and cells are HTML already (escaped by the caller); `classes`: one CSS class per row, or ''."""
    head = "".join(f"<th>{h}</th>" for h in header)
    css = list(classes)
    body = "".join((f"<tr class=\"{css[i]}\">" if i < len(css) and css[i] else "<tr>") + "".join(row) + "</tr>"
                   for i, row in enumerate(rows))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def td(text: Any, css: str = "") -> str:
    return f"<td class=\"{css}\">{text}</td>" if css else f"<td>{text}</td>"


def link(root: str, path: str, label: str) -> str:
    return f'<a href="{esc(href(root, path))}">{esc(label)}</a>'


def _metric(value: Any, name: Any) -> str:
    return "-" if missing(value) else f"{esc(name or 'metric')} {float(value):.4g}"


def _state_class(state: str) -> str:
    return {"regression": "regression", "not decidable": "undecided"}.get(state, "")


# -- index ---------------------------------------------------------------------------------

def index_page(machines: pd.DataFrame, series: list[Series], metric: str) -> str:
    """`machines`: one row per machine (machine, host, cpu, gpu, hardware, runs, first, last, commit)."""
    states: dict[str, dict[str, int]] = {}
    for s in series:
        counts = states.setdefault(s.machine, {})
        counts[s.verdict.state] = counts.get(s.verdict.state, 0) + 1
    rows, classes = [], []
    for m in machines.sort_values(["hardware", "host", "machine"]).to_dict("records"):
        counts = states.get(m["machine"], {})
        rows.append([td(esc(m["hardware"])), td(link("", machine_path(m["machine"]), m["machine"])), td(esc(m["host"])),
                     td(m["runs"], "num"), td(sum(counts.values()), "num"), td(esc(_date(m["first"]))),
                     td(esc(_date(m["last"]))), td(esc(_short(m["commit"]))),
                     td(counts.get("regression", 0), "num"), td(counts.get("not decidable", 0), "num")])
        classes.append("regression" if counts.get("regression") else "")
    body = (f"<p class=\"note\">Every machine the store holds runs of, grouped by hardware (CPU, and GPU where there "
            f"is one). Figures of two machines are never pooled, even of the same hardware. Changes are of "
            f"{esc(metric)}.</p>"
            + table(["hardware", "machine", "host", "runs", "cells", "first run", "newest run", "newest commit",
                     "regressions", "not decidable"], rows, classes))
    return page("bench history", [("history", None)], body)


# -- a machine -----------------------------------------------------------------------------

def machine_page(info: dict[str, Any], series: list[Series], runs: pd.DataFrame, metric: str) -> str:
    root = "../"
    board = leaderboard.build(series)
    header = ["framework"] + [esc(board.label(c)) for c in board.columns]
    rows = []
    for backend in board.backends:
        row = [td(esc(backend), "name")]
        for column in board.columns:
            entry = board.entries.get((backend, column))
            if entry is None:
                row.append(td("-"))
                continue
            s = entry.series
            if entry.value is None:
                text = f"{esc(entry.mode)}: {esc(entry.status)}"
            else:
                reached = "not reached" if entry.time_to_target_s is None else fmt_seconds(entry.time_to_target_s)
                text = (f"<b>{esc(entry.mode)}</b> {esc(fmt_seconds(entry.value))}<br><small>to target "
                        f"{esc(reached)}; {_metric(entry.metric_value, s.cell.get('metric'))}; "
                        f"{esc(_date(entry.started))}</small>")
            row.append(td(f'<a href="{esc(href(root, cell_path(s.machine, s.config)))}">{text}</a>',
                          "best" if board.best.get(column) == backend else ""))
        rows.append(row)
    board_html = table(header, rows) if rows else "<p>No cells.</p>"
    cells = []
    classes = []
    for s in sorted(series, key=lambda s: (str(s.cell.get("task")), str(s.cell.get("backend")),
                                           str(s.cell.get("mode")), s.config)):
        valued = s.valued
        latest = fmt_seconds(valued["value"].iloc[-1]) if len(valued) else "-"
        visible = "-" if not math.isfinite(s.verdict.resolution) else f"{s.verdict.resolution:.0%}"
        changes = "; ".join(f"{r['step'].ratio - 1:+.0%} from {_date(r['after']['started'])}" for r in step_rows(s))
        cells.append([td(link(root, cell_path(s.machine, s.config), s.config), "name"),
                      td(esc(s.cell.get("backend"))), td(esc(s.cell.get("task"))), td(esc(s.cell.get("mode"))),
                      td(f"{len(valued)}/{len(s.points)}", "num"), td(esc(latest), "num"), td(esc(visible), "num"),
                      td(esc(s.verdict.state)), td(esc(changes or s.verdict.note or "-"))])
        classes.append(_state_class(s.verdict.state))
    run_rows = []
    for r in runs.sort_values("started", ascending=False).to_dict("records"):
        run_rows.append([td(link(root, run_path(info["machine"], r["run_id"]), r["run_id"]), "name"),
                         td(esc(_date(r["started"]))), td(r["records"], "num"), td(r["ok"], "num"),
                         td(esc(_short(r["commit"]))), td(esc(r["versions"])), td(esc(r["source"]))])
    body = (f"<p class=\"note\">Host {esc(info['host'])}; CPU {esc(info['cpu'])}; GPU {esc(info['gpu'] or 'none')}. "
            f"{info['runs']} runs from {esc(_date(info['first']))} to {esc(_date(info['last']))}.</p>"
            f"<h2>Leaderboard</h2><p class=\"note\">Each framework's best mode on each task, as its newest run "
            f"measured it: {esc(metric)} (median over repeats), time to target and the task's quality metric. "
            "Bold: the fastest at that setting. Each entry links to its trend.</p>"
            f"<div class=\"wide\">{board_html}</div>"
            f"<h2>Cells</h2>" + table(["configuration", "backend", "task", "mode", "runs", f"newest {esc(metric)}",
                                       "visible step", "verdict", "changes"], cells, classes)
            + "<h2>Runs</h2>" + table(["run", "started", "records", "ok", "commit", "frameworks", "published from"],
                                      run_rows))
    return page(f"{info['machine']}: {info['hardware']}", [("history", "../index.html"), (info["machine"], None)], body)


# -- a cell --------------------------------------------------------------------------------

def cell_page(s: Series, metric: str, threshold: float) -> str:
    root = "../../"
    valued = s.valued.reset_index(drop=True)
    steps = step_rows(s)
    position = {run_id: i for i, run_id in enumerate(s.points["run_id"])}
    points = []
    for p in s.points.to_dict("records"):
        value = None if missing(p["value"]) else float(p["value"])
        tip = (f"{_date(p['started'])} run {p['run_id']}: " + (fmt_seconds(value) if value is not None else p["status"])
               + f" (n={p['repeats']}), commit {_short(p['commit'])}, {s.cell.get('backend')} {p['framework_version']}")
        low = None if missing(p["low"]) else float(p["low"])
        high = None if missing(p["high"]) else float(p["high"])
        target = href(root, run_path(s.machine, p["run_id"]))
        points.append(Point(_date(p["started"])[:10], value, low, high, target, tip))
    changes = [Change(position[r["after"]["run_id"]], f"{r['step'].ratio - 1:+.0%}") for r in steps]
    bounds = [0, *(st.index for st in s.verdict.steps), len(valued)]
    levels = []
    for a, b in zip(bounds, bounds[1:]):
        if b > a:
            level = math.exp(float(pd.Series(valued["value"].iloc[a:b]).apply(math.log).mean()))
            levels.append((position[valued["run_id"].iloc[a]], position[valued["run_id"].iloc[b - 1]] + 1, level))
    title = f"{s.cell.get('backend')} {s.cell.get('task')} {s.cell.get('mode')} {s.cell.get('device')}: {metric}"
    chart = trend_chart(title, points, changes, levels, f"{metric} (s)")
    change_rows = [[td(esc(f"{r['step'].ratio - 1:+.0%}"), "num"),
                    td(esc(f"{r['step'].low:.2f}-{r['step'].high:.2f}x"), "num"),
                    td(link(root, run_path(s.machine, r["before"]["run_id"]), r["before"]["run_id"]), "name"),
                    td(link(root, run_path(s.machine, r["after"]["run_id"]), r["after"]["run_id"]), "name"),
                    td(esc(change_text(r, str(s.cell.get("backend")))))] for r in steps]
    noise = s.noise
    noise_text = ("" if noise is None else
                  f" A run's point moves by about ±{math.expm1(noise.run_to_run):.0%} by chance here"
                  + (f" (one process: ±{math.expm1(noise.within):.0%}, from {noise.source})" if noise.within else "")
                  + ".")
    visible = s.verdict.resolution
    verdict = (f"<p class=\"{'warning' if s.verdict.state in ('regression', 'not decidable') else 'note'}\">"
               f"Verdict: <b>{esc(s.verdict.state)}</b>{esc(': ' + s.verdict.note) if s.verdict.note else ''}. "
               f"Threshold {threshold:.0%};"
               + (f" steps of {visible:.0%} or more are found 9 times in 10 at this noise." if math.isfinite(visible)
                  else " too few runs to find a step.") + esc(noise_text) + "</p>")
    listed = s.points.iloc[::-1].head(POINTS_LISTED).to_dict("records")
    point_rows = [[td(link(root, run_path(s.machine, p["run_id"]), p["run_id"]), "name"), td(esc(_date(p["started"]))),
                   td(esc(fmt_seconds(p["value"])), "num"),
                   td(esc(_range(p)), "num"),
                   td(p["repeats"], "num"), td(esc(p["status"])), td(esc(_short(p["commit"]))),
                   td(esc(p["framework_version"]))] for p in listed]
    body = (f"<p class=\"note\">Machine {esc(s.machine)}; configuration <code>{esc(s.config)}</code>. One point per "
            "run: the median over its repeats that finished ok (whisker: fastest to slowest repeat; ×: no repeat "
            "finished ok); black lines: the level between change points; red dashed rules: the change points. Every "
            f"point links to its run.</p>{verdict}<div class=\"charts\">{chart}</div>"
            + ("<h2>Changes</h2>" + table(["step", "95% interval", "last run before", "first run after",
                                           "what changed"], change_rows) if change_rows else "")
            + "<h2>Newest runs</h2>" + table(["run", "started", esc(metric), "repeats' range", "repeats", "status",
                                               "commit", f"{esc(s.cell.get('backend'))} version"], point_rows))
    return page(title, [("history", root + "index.html"), (s.machine, href(root, machine_path(s.machine))),
                        (s.config, None)], body)


def _range(point: dict[str, Any]) -> str:
    """Fastest to slowest repeat of a point, where it rests on two or more."""
    if missing(point["low"]) or point["repeats"] < 2:
        return "-"
    return f"{fmt_seconds(point['low'])} - {fmt_seconds(point['high'])}"


# -- a run (light page) --------------------------------------------------------------------

def run_page(machine: str, run: dict[str, Any], cells: list[tuple[Series, dict[str, Any]]], metric: str,
             full_note: str) -> str:
    """A run's own page from the store: every cell it measured on this machine with its figures, and where
    the run came from. `cells`: (series, that run's point) pairs."""
    root = "../../"
    rows, classes = [], []
    for s, p in sorted(cells, key=lambda c: (str(c[0].cell.get("task")), str(c[0].cell.get("backend")),
                                             str(c[0].cell.get("mode")), c[0].config)):
        reached = "-" if missing(p["time_to_target_s"]) else fmt_seconds(p["time_to_target_s"])
        rows.append([_cell_columns(s.machine, s.config, *(str(s.cell.get(k)) for k in ("task", "backend", "mode",
                                                                                        "device"))),
                     td(esc(p["status"])), td(p["repeats"], "num"), td(esc(fmt_seconds(p["value"])), "num"),
                     td(esc(reached), "num"), td(_metric(p["metric_value"], s.cell.get("metric")), "num")])
        classes.append("" if p["status"] == "ok" else "failed")
    body = (f"<p class=\"note\">Machine {esc(machine)}; started {esc(_date(run['started']))}; commit "
            f"{esc(run['commit'] or '?')}; frameworks {esc(run['versions'] or '?')}; published from "
            f"{esc(run['source'])}.</p><p class=\"note\">{esc(full_note)}</p>"
            + table(["task", "backend", "mode", "device", "configuration", "status", "repeats ok", esc(metric),
                     "time to target", "quality"], rows, classes))
    return page(f"run {run['run_id']}", [("history", root + "index.html"), (machine, href(root, machine_path(machine))),
                                          (f"run {run['run_id']}", None)], body)


@functools.lru_cache(maxsize=4096)
def _cell_columns(machine: str, config: str, task: str, backend: str, mode: str, device: str) -> str:
    """The cells naming a cell configuration in a run page's row: the same on every run page."""
    return (td(esc(task)) + td(esc(backend)) + td(esc(mode)) + td(esc(device))
            + td(link("../../", cell_path(machine, config), config), "name"))


def with_nav(report_html: str, machine: str, run_id: str) -> str:
    """A full `bench report` page with the site's way back put at the top of its body."""
    root = "../../"
    nav = (f"<p class=\"nav\" style=\"font-size:13px\"><a href=\"{esc(root + 'index.html')}\">history</a> › "
           f"<a href=\"{esc(href(root, machine_path(machine)))}\">{esc(machine)}</a> › run {esc(run_id)}</p>")
    return report_html.replace("<body>", "<body>" + nav, 1)
