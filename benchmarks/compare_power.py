"""Does `bench compare --fail-above 1.10` decide on this machine? Real pairs of runs, not simulations.

  python -m benchmarks.compare_power collect --pairs 21 --repeat 5 --out /tmp/power-ls   # ~2 min a pair
  python -m benchmarks.compare_power analyse /tmp/power-ls

`collect` makes each pair of runs as one `bench run`: the same interpreter under two labels (`--python
a=PY,b=PY`, an unchanged backend against itself) and two training sizes (N and 1.25 N: a 25% slowdown made of
more steps of the same work), `--repeat` processes of each. By default the four cells of each repeat run in
lockstep (`--lockstep python,train_size`: live processes taking turns epoch by epoch); `--lockstep none` runs
them one after another, as bench did before. `analyse` then plays `bench compare` on each pair, through
compare's own functions, two ways:

- unchanged: a at N (A) against b at N (B): should pass;
- slowdown: a at N (A) against b at 1.25 N (B): should fail;

and for compare's default and each candidate way of taking a process's figure and of testing the two sides (the
per-process median steady epoch, its minimum, its CPU time; Welch's test on independent sides, or the paired
test on processes matched by repeat), prints how often an unchanged cell passes, raises a false alarm or stays
undecided, and how often the slowdown is caught, with the spread each way leaves for a difference to beat:
between the processes of a side, or, for lockstep pairs, between the groups' ratios.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from harness import results
from harness.compare import paired as compare
from harness.measure.noise import cv_of_logs

SLOWDOWN = 1.25


def collect(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    sizes = f"{args.train_size},{int(args.train_size * SLOWDOWN)}"
    for pair in range(args.pairs):
        command = [py, "-m", "harness", "run", "--backend", args.backend, "--task", args.task, "--mode", args.mode,
                   "--epochs", str(args.epochs), "--train-size", sizes, "--test-size", "1000", "--repeat",
                   str(args.repeat), "--python", f"a={py},b={py}", "--lockstep", args.lockstep, "--out", str(out),
                   *args.extra]
        if args.threads:
            command += ["--threads", str(args.threads)]
        done = subprocess.run(command, capture_output=True, text=True)
        print(f"pair {pair + 1}/{args.pairs}: exit {done.returncode}", file=sys.stderr, flush=True)
        if done.returncode not in (0, 1):
            print(done.stderr[-2000:], file=sys.stderr)
            return done.returncode
    return 0


def _statistic(row: pd.Series, how: str) -> float:
    epochs = row["epoch_s"] if isinstance(row["epoch_s"], list) else []
    steady = epochs[1:]
    if how == "median":
        return float(row["steady_epoch_s"])
    if how == "min":
        return float(min(steady)) if steady else math.nan
    if how == "cpu":  # the process's own CPU time per steady epoch (every thread)
        cpu = [e.get("cpu_s") for e in (row["interference"] or [])[1:] if isinstance(e, dict)]
        return float(np.median(cpu)) if cpu else math.nan
    raise ValueError(how)


def _side(df: pd.DataFrame, label: str, size: int, how: str, lockstep: bool = False) -> pd.DataFrame:
    """One side's ok records with the figure `how` as its steady epoch; without `lockstep`, as if its cells had
    run alone (compare then pairs, when asked, by repeat and on that figure, not turn by turn)."""
    side = df[(df["python"] == label) & (df["train_size"] == size) & (df["status"] == "ok")].copy()
    side["steady_epoch_s"] = [_statistic(r, how) for _, r in side.iterrows()]
    side["cell_id"] = [f"x-r{r}" for r in side["repeat"]]  # one configuration a side, the repeat kept
    if not lockstep:
        side["lockstep"] = None
    return side.sort_values("repeat")


def _pair_ratios(a: pd.DataFrame, b: pd.DataFrame) -> list[float]:
    """B/A of each lockstep group, turn by turn, as compare takes it (none for cells that ran alone)."""
    pairs = compare.matched(a, b, "steady_epoch_s", "lockstep")
    return [] if pairs is None else list(pairs[1] / pairs[0])


def outcome(a: pd.DataFrame, b: pd.DataFrame, paired: bool | None, slow_mode: float | None = None) -> str:
    table = compare.compare(compare.Side("A", a), compare.Side("B", b), paired=paired, slow_mode=slow_mode)
    failing, undecided = compare.gate(table, 1.10)
    return "fail" if len(failing) else "undecided" if len(undecided) else "pass"


def analyse(args: argparse.Namespace) -> int:
    runs = [p for p in results.run_dirs(Path(args.folder))]
    if not runs:
        print(f"compare_power: no runs in {args.folder}", file=sys.stderr)
        return 2
    rows = []
    ways = [("median", None, compare.SLOW_MODE)]  # bench compare's default
    ways += [(how, paired, None) for how in ("median", "min", "cpu") for paired in (False, True)]
    ways += [(how, False, compare.SLOW_MODE) for how in ("median", "cpu")]
    for how, paired, slow_mode in ways:
        same, slow, spreads = [], [], []
        for run in runs:
            df = results.load([run])
            sizes = sorted(df["train_size"].dropna().unique())
            if len(sizes) != 2:
                continue
            small, large = (int(s) for s in sizes)
            a, b, b_slow = (_side(df, label, size, how, lockstep=paired is None)
                            for label, size in (("a", small), ("b", small), ("b", large)))
            if min(len(a), len(b), len(b_slow)) < 2 or a["steady_epoch_s"].isna().any():
                continue
            same.append(outcome(a, b, paired, slow_mode))
            slow.append(outcome(a, b_slow, paired, slow_mode))
            ratios = _pair_ratios(a, b) if paired is None else None
            spreads.append(cv_of_logs(ratios) if ratios else cv_of_logs(list(a["steady_epoch_s"])))
        if not same:
            continue
        n = len(same)
        test = ("default (lockstep groups paired, else Welch, slow mode aside)" if paired is None
                else "paired by repeat" if paired
                else "Welch" + (f", slow mode set aside (>{slow_mode:g}x)" if slow_mode else ""))
        rows.append({"figure": how, "test": test, "pairs": n,
                     "unchanged: pass": same.count("pass") / n, "false alarm": same.count("fail") / n,
                     "undecided": same.count("undecided") / n, "25% slower: caught": slow.count("fail") / n,
                     "spread to beat (median CV)": float(np.median(spreads))})
    table = pd.DataFrame(rows)
    print(table.to_string(index=False, formatters={c: "{:.0%}".format for c in table.columns
                                                   if c not in ("figure", "test", "pairs")}))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("collect")
    c.add_argument("--pairs", type=int, default=20)
    c.add_argument("--repeat", type=int, default=5)
    c.add_argument("--backend", default="jax")
    c.add_argument("--task", default="mnist_mlp")
    c.add_argument("--mode", default="compiled")
    c.add_argument("--epochs", type=int, default=6)
    c.add_argument("--train-size", type=int, default=16384)
    c.add_argument("--threads", type=int)
    c.add_argument("--lockstep", default="python,train_size", help="bench run --lockstep (none: each cell alone)")
    c.add_argument("--out", required=True)
    c.add_argument("extra", nargs="*", help="more bench run options, after --")
    a = sub.add_parser("analyse")
    a.add_argument("folder")
    args = parser.parse_args(argv)
    return collect(args) if args.command == "collect" else analyse(args)


if __name__ == "__main__":
    raise SystemExit(main())
