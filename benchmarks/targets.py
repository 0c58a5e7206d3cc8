"""Where each task's quality target sits in the distribution a correct implementation reaches.

  python -m benchmarks.targets RUN_OR_FOLDER...      # runs of the task defaults over many seeds and backends

Per task: how many cells (seed x backend), the headline metric's mean, standard deviation, minimum, 5th
percentile and median, the share that meets the task's current target, and the target a correct
implementation meets in at least 95% of runs: the lower 1st percentile of a normal fit (mean - 2.33 sd), rounded
outwards to the task's precision, which the observed minimum must not undercut by much. A target set there is
met by a correct backend in about 99% of runs, so a miss says something is wrong rather than that the seed was
unlucky.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from harness import results
from harness.plugins.registry import build_registry

Z_99 = 2.326


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", help="run folders, or folders of runs")
    args = parser.parse_args(argv)
    runs = [run for p in map(Path, args.paths)
            for run in ([p] if (p / results.RECORDS).exists() else results.run_dirs(p))]
    if not runs:
        print("targets: no runs found", file=sys.stderr)
        return 2
    df = results.load(runs)
    df = df[(df["status"] == "ok") & (df["phase"].fillna("train") == "train")]
    tasks = build_registry()[0].tasks
    rows = []
    for task, group in df.groupby("task"):
        values = pd.to_numeric(group["metric_value"], errors="coerce").dropna().to_numpy()
        cls = tasks[task]
        higher = next(t for t in cls.targets if t.metric == cls.metric).op == ">="
        mean, sd = float(values.mean()), float(values.std(ddof=1))
        bound = mean - Z_99 * sd if higher else mean + Z_99 * sd
        step = 0.001 if higher else 0.0001
        proposed = math.floor(bound / step) * step if higher else math.ceil(bound / step) * step
        rows.append({"task": task, "cells": len(values), "backends": group["backend"].nunique(),
                     "seeds": group["seed"].nunique(), "mean": mean, "sd": sd, "min": values.min(),
                     "p5": np.percentile(values, 5 if higher else 95), "median": np.median(values),
                     "meets now": float(np.mean([cls.target_met({**m, cls.metric: v}) for m, v in
                                                 zip(group["metrics"], group["metric_value"]) if isinstance(m, dict)])),
                     "current": cls.target_text(), "proposed": round(proposed, 4)})
    print(pd.DataFrame(rows).to_string(index=False, float_format="{:.4f}".format))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
