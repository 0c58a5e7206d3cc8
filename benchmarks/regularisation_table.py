"""The regularisation table of docs/regularisation.md: per penalty setting, the trained model's accuracy on the
test split and on the first 10,000 training samples, and the gap between them, from the records of runs made
with `bench run --l1 ... / --weight-decay ...` (harness/cell/worker_phases.py scores the training samples).

    python -m benchmarks.regularisation_table RUN [RUN ...] [--out results]

A RUN is a run id, a run folder, or a folder of run folders (results/reference-regularisation-cpu-20261204).
One row per (weight_decay, l1); where several seeds ran, each figure is their mean with the seeds' range.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from harness import results


def table(df: pd.DataFrame) -> pd.DataFrame:
    """Mean and range over seeds of test accuracy, train accuracy and train - test, per penalty setting."""
    ok = df[df["status"] == "ok"].copy()
    ok["gap"] = ok["train_metric_value"] - ok["metric_value"]
    ok["test_loss"] = ok["metrics"].map(lambda m: m.get("loss") if isinstance(m, dict) else None)
    grouped = ok.groupby(["weight_decay", "l1"])
    out = grouped.agg(seeds=("seed", "nunique"), test=("metric_value", "mean"), test_min=("metric_value", "min"),
                      test_max=("metric_value", "max"), train=("train_metric_value", "mean"),
                      gap=("gap", "mean"), gap_min=("gap", "min"), gap_max=("gap", "max"),
                      test_loss=("test_loss", "mean"), samples=("train_metrics", lambda m: m.iloc[0]["samples"]))
    return out.reset_index().sort_values(["l1", "weight_decay"], key=lambda c: c.astype(float))


def _points(value: float) -> str:
    return f"{100 * value:.2f}"


def markdown(t: pd.DataFrame) -> str:
    rows = ["| penalty | test accuracy % | train accuracy % | train − test (points) | test loss |",
            "|---|---:|---:|---:|---:|"]
    for r in t.to_dict("records"):
        name = ("none" if not r["l1"] and not r["weight_decay"] else
                " + ".join(part for part in (f"L1 {r['l1']:g}" if r["l1"] else "",
                                             f"L2 (weight decay) {r['weight_decay']:g}" if r["weight_decay"] else "")
                           if part))
        spread = r["seeds"] > 1
        test = _points(r["test"]) + (f" ({_points(r['test_min'])}–{_points(r['test_max'])})" if spread else "")
        gap = _points(r["gap"]) + (f" ({_points(r['gap_min'])}–{_points(r['gap_max'])})" if spread else "")
        rows.append(f"| {name} | {test} | {_points(r['train'])} | {gap} | {r['test_loss']:.4f} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run ids or folders")
    parser.add_argument("--out", default="results", help="results root the run ids are in")
    args = parser.parse_args(argv)
    runs = []
    for run in args.runs:
        inner = sorted(p for p in Path(run).glob("*/") if (p / results.RECORDS).is_file())
        runs += [str(p) for p in inner] if Path(run).is_dir() and not (Path(run) / results.RECORDS).exists() else [run]
    t = table(results.load(runs, root=args.out))
    print(markdown(t))
    print(f"\n{int(t['seeds'].max())} seed(s) per row; train accuracy on the first {int(t['samples'].iloc[0])} "
          "training samples")


if __name__ == "__main__":
    main()
