"""How many repeats `bench compare --fail-above` needs on this machine, from a run measured here.

  python -m benchmarks.repeats_needed RUN                    # RUN: a run with --repeat 3 or more
  python -m benchmarks.repeats_needed RUN --cell mnist_mlp-compiled --slowdown 1.25 --fail-above 1.10

First table: per cell configuration of RUN, the spread between its repeats (each repeat is its own
process), as the coefficient of variation of the per-repeat values. Second table: with the largest of
those spreads, what the gate does for 2..N repeats a side, over seeded pairs of simulated runs drawn
with that spread through bench's own compare and gate: how often an unchanged backend passes (and how
often it is a false alarm) and how often a slowdown by --slowdown fails the gate.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from harness import results
from harness.compare import paired as compare
from harness.compare import power


def synthetic_side(label: str, values: list[float], metric: str = "steady_epoch_s") -> compare.Side:
    """One cell configuration with one record per value, as compare reads a run."""
    rows = [{"cell_id": f"x-linear_regression-eager-cpu-r{i}", "backend": "x", "task": "linear_regression",
             "mode": "eager", "device": "cpu", "precision": "fp32", "optimizer": "sgd", "batch_size": 32,
             "status": "ok", "message": "", metric: v} for i, v in enumerate(values)]
    return compare.Side(label, pd.DataFrame(rows))


def gate_outcome(a: list[float], b: list[float], fail_above: float, metric: str = "steady_epoch_s") -> str:
    """pass, fail or undecided: what `bench compare A B --fail-above` would exit with (0, 1, 3)."""
    table = compare.compare(synthetic_side("a", a, metric), synthetic_side("b", b, metric), metric=metric)
    failing, undecided = compare.gate(table, fail_above)
    return "fail" if len(failing) else "undecided" if len(undecided) else "pass"


def spreads(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per configuration: repeats, geometric mean and the between-process spread of the metric."""
    ok = df[df["status"] == "ok"].assign(_value=lambda d: pd.to_numeric(d[metric], errors="coerce"))
    ok = ok[ok["_value"] > 0]
    ok = ok.assign(config=[compare.pair_key(c, b, False) for c, b in zip(ok["cell_id"], ok["backend"])],
                   _log=np.log(ok["_value"]))
    table = ok.groupby("config").agg(repeats=("_log", "size"), gmean=("_log", "mean"), sd_log=("_log", "std"))
    table["gmean"] = np.exp(table["gmean"])
    table["cv"] = np.sqrt(np.exp(table["sd_log"] ** 2) - 1)
    return table[table["repeats"] >= 3]


def simulate(sd_log: float, repeats: int, scale: float, fail_above: float, trials: int, seed: int) -> pd.Series:
    """Shares of pass/fail/undecided over `trials` seeded pairs of runs, B `scale` times slower than A
    (harness.compare.power: the gate's own interval and rule)."""
    found = power.simulate(sd_log, repeats, scale, fail_above, trials, seed)
    return pd.Series({"pass": found.passed, "fail": found.failed, "undecided": found.undecided})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="run id or folder, measured with --repeat 3 or more")
    parser.add_argument("--out", default="results", help="results folder (default ./results)")
    parser.add_argument("--metric", default="steady_epoch_s", choices=compare.METRICS)
    parser.add_argument("--cell", default="", help="only configurations whose id contains this text")
    parser.add_argument("--fail-above", type=float, default=1.10)
    parser.add_argument("--slowdown", type=float, default=1.25)
    parser.add_argument("--max-repeat", type=int, default=8)
    parser.add_argument("--trials", type=int, default=200)
    args = parser.parse_args(argv)
    try:
        run = results.resolve(args.run, Path(args.out))
    except results.ResultsError as exc:
        print(f"repeats_needed: {exc}", file=sys.stderr)
        return 2
    table = spreads(results.load([run]), args.metric)
    table = table[table.index.str.contains(args.cell, regex=False)]
    if table.empty:
        print(f"repeats_needed: no configuration in {run.name} matching {args.cell!r} has 3 ok repeats of "
              f"{args.metric}", file=sys.stderr)
        return 2
    print(f"{args.metric} in {run.name}, spread between repeats (each its own process):")
    print(table.to_string(formatters={"gmean": "{:.4g}".format, "sd_log": "{:.4f}".format, "cv": "{:.1%}".format}))
    sd_log = float(table["sd_log"].max())
    print(f"\nsimulated with the largest spread (cv {math.sqrt(math.exp(sd_log ** 2) - 1):.1%}), {args.trials} "
          f"seeded pairs per row, --fail-above {args.fail_above:g}:")
    rows = []
    for n in range(2, args.max_repeat + 1):
        same = simulate(sd_log, n, 1.0, args.fail_above, args.trials, seed=n)
        slow = simulate(sd_log, n, args.slowdown, args.fail_above, args.trials, seed=1000 + n)
        rows.append({"repeats": n, "unchanged: pass": same["pass"], "unchanged: false alarm": same["fail"],
                     "unchanged: undecided": same["undecided"], f"x{args.slowdown:g}: caught": slow["fail"]})
    print(pd.DataFrame(rows).to_string(index=False, float_format="{:.0%}".format))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
