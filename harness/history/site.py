"""`bench publish --site DIR`: the store as a static site that works offline from files.

DIR/
  index.html                    the machines, grouped by hardware
  machines/<machine>.html       its leaderboard (frameworks x tasks), its cells and its runs
  cells/<machine>/<cell>.html   the trend of one cell over runs, change points marked; each point links to its run
  runs/<machine>/<run>.html     the run's page: its full `bench report` page, or a light page from the store
  bench-site.json               marks the folder as a site, and which run pages are full reports (for reuse)

A full report (harness.report.render, HTML) of a 48-record run takes ~0.4 s on a 2-core machine, too much for
every run of a long history (1,000 runs: ~7 minutes). So each run gets a light page (every cell it measured with its
figures, its commit, versions and origin: a few milliseconds), and the full report is rendered for the runs a
reader opens from a change: the newest run of each machine and the runs either side of each change point, or
for every run with `full_reports="all"`. A full report already rendered for the same records (same digest)
is reused from the previous build, so after the first build only new runs cost anything.

The site is built in a folder beside DIR and swapped in whole; DIR is replaced only when it is a site this
module made (or an empty folder), never any other folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from harness.history import HistoryError, site_pages
from harness.history.columns import to_records_frame
from harness.history.series import NEEDED, Series, build, step_rows
from harness.history.store import Store

MARKER = "bench-site.json"
FORMAT = "bench-site"
FULL_CHOICES = ("changes", "all", "none")
VERSIONS_SHOWN = ("torch", "tensorflow", "tensorflow-cpu", "jax", "keras")


@dataclass
class Built:
    pages: int = 0
    full_reports: int = 0
    reused: int = 0
    machines: int = 0
    cells: int = 0
    runs: int = 0
    seconds: dict[str, float] = field(default_factory=dict)


def _check_target(out: Path) -> dict[str, Any]:
    """The previous build's manifest ({} for a new or empty folder); HistoryError for any other folder."""
    if out.is_file():
        raise HistoryError(f"{out} is a file: --site takes a folder")
    if not out.exists() or not any(out.iterdir()):
        return {}
    try:
        manifest = json.loads((out / MARKER).read_text())
    except (OSError, ValueError):
        manifest = None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise HistoryError(f"{out} is not empty and not a bench history site (no {MARKER}): "
                           "choose a new or empty folder for --site")
    return manifest


def _versions(text: Any) -> str:
    try:
        versions = json.loads(text) if isinstance(text, str) else {}
    except ValueError:
        return ""
    return ", ".join(f"{k} {versions[k]}" for k in VERSIONS_SHOWN if k in versions)


def _runs(df: pd.DataFrame) -> pd.DataFrame:
    frame = df.assign(_ok=df["status"].eq("ok").astype(int))
    runs = frame.groupby(["machine", "run_id"], sort=False).agg(
        started=("run_started", "min"), records=("status", "size"), ok=("_ok", "sum"),
        commit=("env_git_commit", "first"), source=("source", "first"), versions=("env_versions", "first"))
    keys = frame.groupby(["machine", "run_id"], sort=False)["record_key"].agg(lambda k: ",".join(sorted(k)))
    runs["digest"] = [hashlib.blake2b(k.encode(), digest_size=12).hexdigest() for k in keys.reindex(runs.index)]
    runs["versions"] = runs["versions"].map(_versions)
    return runs.reset_index()


def _machines(df: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    first = df.groupby("machine", sort=True)[["machine_host", "machine_cpu", "machine_gpu"]].first()
    spans = runs.groupby("machine").agg(runs=("run_id", "size"), first=("started", "min"), last=("started", "max"))
    newest = runs.sort_values("started").groupby("machine")["commit"].last()
    out = first.join(spans).join(newest.rename("commit")).reset_index()
    out = out.rename(columns={"machine_host": "host", "machine_cpu": "cpu", "machine_gpu": "gpu"})
    out["gpu"] = out["gpu"].where(out["gpu"].notna(), "")
    out["hardware"] = [f"{c} + {g}" if g else str(c) for c, g in zip(out["cpu"], out["gpu"])]
    return out


def _full_report_runs(series: list[Series], runs: pd.DataFrame, choice: str) -> set[tuple[str, str]]:
    if choice == "none":
        return set()
    if choice == "all":
        return set(zip(runs["machine"], runs["run_id"]))
    chosen = set()
    newest = runs.sort_values("started").groupby("machine")["run_id"].last()
    chosen.update(newest.items())
    for s in series:
        for row in step_rows(s):
            chosen.add((s.machine, row["before"]["run_id"]))
            chosen.add((s.machine, row["after"]["run_id"]))
    return chosen


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _render_full(store: Store, wanted: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """The `bench report` HTML page of each (machine, run), from the store's records; a run whose report fails
    to render is left out (it keeps its light page) rather than stopping the site."""
    from harness.report.render import render

    if not wanted:
        return {}
    df = store.read(machines=sorted({m for m, _ in wanted}), run_ids=sorted({r for _, r in wanted}))
    pages = {}
    for (machine, run_id), group in df.groupby(["machine", "run_id"], sort=False):
        if (machine, run_id) not in wanted:
            continue
        try:
            text = render(to_records_frame(group.reset_index(drop=True)), "html")
        except Exception:  # noqa: BLE001 - one run's odd records must not cost the whole site
            continue
        pages[(str(machine), str(run_id))] = site_pages.with_nav(text, str(machine), str(run_id))
    return pages


def build_site(store: Store, out: Path, metric: str = "steady_epoch_s", threshold: float = 0.05,
               full_reports: str = "changes", calibrated: dict[str, float] | None = None) -> Built:
    """Build the site of `store` into `out` (see the module docstring)."""
    out = Path(out)
    old_manifest = _check_target(out)
    built = Built()
    clock = time.perf_counter()
    columns = list(dict.fromkeys([*NEEDED, metric, "source", "env_versions", "record_key"]))
    df = store.read(columns=columns)
    if df.empty:
        raise HistoryError(f"the store {store.path} holds no records yet: bench publish RUN... --to {store.path}")
    series = build(df, metric, threshold, calibrated)
    runs = _runs(df)
    machines = _machines(df, runs)
    built.seconds["read and analyse"] = time.perf_counter() - clock

    clock = time.perf_counter()
    staging = out.parent / f".{out.name}.building-{secrets.token_hex(4)}"
    staging.mkdir(parents=True)
    try:
        by_machine: dict[str, list[Series]] = {}
        for s in series:
            by_machine.setdefault(s.machine, []).append(s)
        _write(staging / "index.html", site_pages.index_page(machines, series, metric))
        for info in machines.to_dict("records"):
            mine = by_machine.get(info["machine"], [])
            _write(staging / site_pages.machine_path(info["machine"]),
                   site_pages.machine_page(info, mine, runs[runs["machine"] == info["machine"]], metric))
            for s in mine:
                _write(staging / site_pages.cell_path(s.machine, s.config), site_pages.cell_page(s, metric, threshold))
        built.seconds["index, machines, cells"] = time.perf_counter() - clock

        clock = time.perf_counter()
        full = _full_report_runs(series, runs, full_reports)
        digests = {(m, r): d for m, r, d in zip(runs["machine"], runs["run_id"], runs["digest"])}
        cached = old_manifest.get("full_reports", {}) if isinstance(old_manifest.get("full_reports"), dict) else {}
        reports: dict[tuple[str, str], str] = {}
        fresh = []
        for key in sorted(full):
            path = site_pages.run_path(*key)
            if cached.get(path) == digests[key] and (out / path).is_file():
                (staging / path).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(out / path, staging / path)
                reports[key] = ""
                built.reused += 1
            else:
                fresh.append(key)
        rendered = _render_full(store, fresh)
        for key, text in rendered.items():
            _write(staging / site_pages.run_path(*key), text)
            reports[key] = text
        built.full_reports = len(rendered)
        built.seconds["full reports"] = time.perf_counter() - clock

        clock = time.perf_counter()
        points_of: dict[tuple[str, str], list[tuple[Series, dict[str, Any]]]] = {}
        for s in series:
            for p in s.points.to_dict("records"):
                points_of.setdefault((s.machine, p["run_id"]), []).append((s, p))
        light_note = ("This is the run's light page, from the store. Its full report: bench report RUN on the "
                      "machine that ran it, or bench publish --to STORE --site DIR --full-reports all.")
        for run in runs.to_dict("records"):
            key = (run["machine"], run["run_id"])
            if key in reports:
                continue
            _write(staging / site_pages.run_path(*key),
                   site_pages.run_page(run["machine"], run, points_of.get(key, []), metric, light_note))
        built.seconds["light run pages"] = time.perf_counter() - clock

        manifest = {"format": FORMAT, "metric": metric, "threshold": threshold,
                    "full_reports": {site_pages.run_path(*k): digests[k] for k in reports}}
        _write(staging / MARKER, json.dumps(manifest, indent=1, sort_keys=True))
        _swap(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    built.machines, built.cells, built.runs = len(machines), len(series), len(runs)
    built.pages = 1 + len(machines) + len(series) + len(runs)
    return built


def _swap(staging: Path, out: Path) -> None:
    """Put the new site in place of the old in two renames; the old one is removed after."""
    if out.exists():
        old = out.parent / f".{out.name}.old-{secrets.token_hex(4)}"
        os.rename(out, old)
        os.rename(staging, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(staging, out)
