"""Records folded into series: per machine and cell configuration (backend, task, mode, device and every
hyperparameter: the cell id without its repeat), one point per run, in the order the runs started.

A point is the median of the metric over the run's repeats that finished ok, with its spread (lowest and
highest repeat), how many repeats it rests on, and the run's git commit and framework version, so a
change can be read against what changed. Runs whose repeats all failed stay in the series without a
value (shown as gaps; the detector skips them). All with whole-column pandas operations: 48,000 records
fold in well under a second.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.history import changepoints, noise
from harness.run.estimate import config_key
from harness.store import record


def _time_metrics() -> tuple[str, ...]:
    """The record's time columns (seconds, or milliseconds per step): lower is better for all of them. Read off
    the schema rather than from bench compare's list, which would import scipy (a second of start-up)."""
    def is_time(name: str) -> bool:
        return ((name.endswith("_s") and not name.endswith(("_per_s", "_excess_s"))) or "_ms" in name)

    return tuple(c.name for c in record.COLUMNS if c.kind in (record.NUMBER, record.NUMBER_OR_NULL) and is_time(c.name))


TIME_METRICS = _time_metrics()
KEYS = ["machine", "config"]
CELL_COLUMNS = ["backend", "task", "mode", "device", "precision", "optimizer", "batch_size", "epochs", "lr"]
POINT_COLUMNS = ["run_id", "started", "value", "low", "high", "repeats", "records", "status", "commit",
                 "framework_version", "time_to_target_s", "metric_value"]
NEEDED = ["machine", "config", "cell_id", "run_id", "run_started", "timestamp", "status", "env_git_commit",
          "framework_version", "time_to_target_s", "metric_value", "metric", "machine_host", "machine_cpu",
          "machine_gpu", *CELL_COLUMNS]


@dataclass
class Series:
    machine: str
    config: str
    cell: dict  # backend, task, mode, device, ... and metric (the quality metric's name)
    points: pd.DataFrame  # POINT_COLUMNS, oldest first
    verdict: changepoints.Verdict
    noise: noise.Noise | None

    @property
    def valued(self) -> pd.DataFrame:
        return self.points[self.points["value"].notna()]


def points(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One row per machine, configuration and run: the point of that run (POINT_COLUMNS) and, for the noise,
    the sum of squares of its repeats' logs around their mean ("ss"), sorted by machine, configuration and
    start. Whole-column operations only: the per-group text of failures is built for failed groups alone."""
    def plain(column: str) -> np.ndarray:
        return df[column].astype(object).to_numpy() if column in df else np.full(len(df), None, dtype=object)

    configs = df["config"] if "config" in df else df["cell_id"].map(config_key)
    started = pd.to_datetime(df["run_started"], utc=True)
    unknown = started.isna()
    if unknown.any():  # a run published without its start: its records' own times (parsing all costs 0.1 s)
        started = started.where(~unknown, pd.to_datetime(df["timestamp"].where(unknown), utc=True, errors="coerce"))
    status = df["status"].astype(str).to_numpy(dtype=object)
    ok = status == "ok"
    value = pd.to_numeric(df[metric], errors="coerce").to_numpy(dtype=float)
    value = np.where(ok & np.isfinite(value) & (value > 0), value, np.nan)
    frame = pd.DataFrame({
        "machine": df["machine"].astype(str).to_numpy(dtype=object),
        "config": configs.astype(str).to_numpy(dtype=object),
        "run_id": df["run_id"].fillna("?").astype(str).to_numpy(dtype=object),
        "started": started.to_numpy(), "value": value, "log": np.log(value),
        "commit": plain("env_git_commit"), "framework_version": plain("framework_version"),
        "time_to_target_s": np.where(ok, pd.to_numeric(df["time_to_target_s"], errors="coerce"), np.nan),
        "metric_value": np.where(ok, pd.to_numeric(df["metric_value"], errors="coerce"), np.nan),
    })
    keys = ["machine", "config", "run_id"]
    groups = frame.groupby(keys, sort=False)
    out = groups.agg(started=("started", "min"), value=("value", "median"), low=("value", "min"),
                     high=("value", "max"), repeats=("value", "count"), records=("value", "size"),
                     commit=("commit", "first"), framework_version=("framework_version", "first"),
                     time_to_target_s=("time_to_target_s", "median"), metric_value=("metric_value", "median"))
    frame["_ss"] = (frame["log"] - groups["log"].transform("mean")) ** 2
    out["ss"] = frame.groupby(keys, sort=False)["_ss"].sum()
    out["status"] = "ok"
    failed = frame[~ok].assign(status=status[~ok])
    if len(failed):
        counts = failed.groupby([*keys, "status"], sort=False).size().rename("n").reset_index()
        counts["text"] = counts["status"] + " " + counts["n"].astype(str)
        texts = counts.groupby(keys, sort=False)["text"].agg(", ".join)
        flagged = out.index.isin(texts.index)
        out.loc[flagged, "status"] = texts.reindex(out.index[flagged]).to_numpy()
        partial = flagged & (out["repeats"] > 0).to_numpy()
        out.loc[partial, "status"] = "ok " + out.loc[partial, "repeats"].astype(str) + ", " + out.loc[partial, "status"]
    out = out.reset_index()
    return out.sort_values(["machine", "config", "started", "run_id"], kind="stable").reset_index(drop=True)


def build(df: pd.DataFrame, metric: str, threshold: float, calibrated: dict[str, float] | None = None,
          z_crit: float = changepoints.Z_CRIT) -> list[Series]:
    """Every series of the records `df` (as Store.read returns them), each judged for change points.
    `calibrated`: per machine id, its per-process noise (SD of log values) where one was measured."""
    if df.empty:
        return []
    table = points(df, metric)
    configs = df["config"] if "config" in df else df["cell_id"].map(config_key)
    info = df[[*CELL_COLUMNS, "metric"]].assign(machine=df["machine"].astype(str).to_numpy(dtype=object),
                                                 config=configs.astype(str).to_numpy(dtype=object))
    firsts = info.groupby(["machine", "config"], sort=False).first()
    cells = {key: {k: _plain(v) for k, v in row.items()} for key, row in zip(firsts.index, firsts.to_dict("records"))}
    machines, configs_sorted = table["machine"].to_numpy(), table["config"].to_numpy()
    edges = np.flatnonzero((machines[1:] != machines[:-1]) | (configs_sorted[1:] != configs_sorted[:-1])) + 1
    bounds = [0, *edges.tolist(), len(table)]
    values, repeats, ss = (table[c].to_numpy() for c in ("value", "repeats", "ss"))
    shown = table[POINT_COLUMNS]
    out = []
    for a, b in zip(bounds, bounds[1:]):
        machine, config = str(machines[a]), str(configs_sorted[a])
        has = ~np.isnan(values[a:b])
        y = np.log(values[a:b][has])
        k = repeats[a:b][has]
        est = noise.estimate(y, k, float(ss[a:b][has].sum()), int(np.maximum(k - 1, 0).sum()),
                             (calibrated or {}).get(machine)) if len(y) else None
        verdict = (changepoints.judge(y, est.per_point, threshold, z_crit) if est is not None else
                   changepoints.Verdict("not decidable", note="no run finished ok"))
        out.append(Series(machine, config, cells[(machine, config)], shown.iloc[a:b].reset_index(drop=True),
                          verdict, est))
    return out


def _plain(value: object) -> object:
    if isinstance(value, (np.floating, np.integer)):
        value = value.item()
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else value


def step_rows(series: Series) -> list[dict]:
    """Each step of a series with the runs on either side: the last run before it and the first after, their
    times, commits and framework versions."""
    valued = series.valued.reset_index(drop=True)
    rows = []
    for step in series.verdict.steps:
        before, after = valued.iloc[step.index - 1], valued.iloc[step.index]
        rows.append({"step": step, "before": before.to_dict(), "after": after.to_dict()})
    return rows
