"""Which change-point method `bench history` uses, by measurement on synthetic histories.

    python -m benchmarks.history_changepoints                 # the tables in docs/history.md
    python -m benchmarks.history_changepoints --trials 100    # quicker

Three methods over the same seeded series (one point per run: the median of its repeats, each repeat its
own process, log-normal with the given per-process coefficient of variation):
- lookback-z: Conbench's lookback z-score, as its docs and code define it: each point against the mean
  and standard deviation of up to 100 earlier points (at least 2), a change where z > 5 (its default);
- asv: asv's own step detection (asv.step_detect.detect_steps, then detect_regressions with a 5%
  threshold), the library itself (a test dependency);
- segmentation: bench's method (harness.history.changepoints): binary segmentation with a z test between
  the two sides, each point weighted by the noise its repeats and the series show.
Tables: a +15% step after run 25 of 50 (found at that run, within one run, found at all); flat histories
of 50 runs (any change reported = a false alarm); a +5% step under the noise (what each method says).
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from harness.history import changepoints, noise
from harness.measure.noise import sd_log_of

N, AT = 50, 25
NOISES = ((1, 0.05), (3, 0.05), (1, 0.15), (3, 0.15), (5, 0.15), (3, 0.25), (5, 0.35))  # (repeats, per-process CV)
LOOKBACK, CONBENCH_Z = 100, 5.0
THRESHOLD = 0.05


def draw(rng: np.random.Generator, n: int, repeats: int, cv: float, step: float = 1.0, at: int = AT,
         spikes: float = 0.0) -> np.ndarray:
    """(n, repeats) values around 1.0; from run `at` on, `step` times slower; a share `spikes` of runs
    slower by 20-60% as a whole (a busy machine)."""
    sd = sd_log_of(cv)
    logs = rng.normal(0.0, sd, (n, repeats))
    logs[at:] += math.log(step)
    if spikes:
        hit = rng.random(n) < spikes
        logs[hit] += np.log(rng.uniform(1.2, 1.6, int(hit.sum())))[:, None]
    return np.exp(logs)


def lookback_z(values: np.ndarray) -> list[int]:
    """Conbench: runs whose per-run value lies more than CONBENCH_Z SDs above its lookback distribution;
    the first of each streak is where the change is reported."""
    points = np.median(values, axis=1)
    found, flagged_before = [], False
    for i in range(2, len(points)):
        past = points[max(0, i - LOOKBACK):i]
        sd = past.std(ddof=1)
        flagged = sd > 0 and (points[i] - past.mean()) / sd > CONBENCH_Z
        if flagged and not flagged_before:
            found.append(i)
        flagged_before = flagged
    return found


def asv_steps(values: np.ndarray) -> list[int]:
    from asv import step_detect

    points = list(np.median(values, axis=1))
    _, _, regressions = step_detect.detect_regressions(step_detect.detect_steps(points), threshold=THRESHOLD)
    return [after for _, after, _, _ in regressions or []]


def segmentation(values: np.ndarray) -> list[int]:
    return [s.index for s in _verdict(values).steps if s.ratio > 1]


def _verdict(values: np.ndarray) -> changepoints.Verdict:
    logs = np.log(values)
    y = np.median(logs, axis=1)
    ss = float(((logs - logs.mean(axis=1, keepdims=True)) ** 2).sum())
    est = noise.estimate(y, np.full(len(y), values.shape[1]), ss, values.size - len(y))
    return changepoints.judge(y, est.per_point, THRESHOLD)


METHODS = {"lookback-z": lookback_z, "asv": asv_steps, "segmentation": segmentation}


def step_table(trials: int, seed: int) -> list[str]:
    lines = ["| repeats, CV | method | at run 25 | within 1 run | any change reported |", "|---|---|---:|---:|---:|"]
    for repeats, cv in NOISES:
        draws = [draw(np.random.default_rng([seed, t]), N, repeats, cv, 1.15) for t in range(trials)]
        for name, method in METHODS.items():
            found = [method(v) for v in draws]
            exact = np.mean([AT in f for f in found])
            near = np.mean([any(abs(i - AT) <= 1 for i in f) for f in found])
            some = np.mean([bool(f) for f in found])
            lines.append(f"| {repeats}, {cv:.2f} | {name} | {exact:.0%} | {near:.0%} | {some:.0%} |")
    return lines


def flat_table(trials: int, seed: int, spikes: float) -> list[str]:
    """Share of flat histories with any change reported, and (segmentation) with a regression verdict: what
    fails `bench history --fail-on-regression` (a transient, a step up then down, is a change, not that)."""
    lines = ["| repeats, CV | " + " | ".join(METHODS) + " | segmentation: regression verdict |",
             "|---|" + "---:|" * (len(METHODS) + 1)]
    for repeats, cv in NOISES:
        draws = [draw(np.random.default_rng([seed, 10_000 + t]), N, repeats, cv, spikes=spikes) for t in range(trials)]
        rates = [np.mean([bool(method(v)) for v in draws]) for method in METHODS.values()]
        rates.append(np.mean([_verdict(v).state == "regression" for v in draws]))
        lines.append(f"| {repeats}, {cv:.2f} | " + " | ".join(f"{r:.1%}" for r in rates) + " |")
    return lines


def small_step_table(trials: int, seed: int) -> list[str]:
    lines = ["| repeats, CV | lookback-z: flagged | asv: flagged | segmentation: regression / not decidable / steady |",
             "|---|---:|---:|---|"]
    for repeats, cv in NOISES:
        draws = [draw(np.random.default_rng([seed, 20_000 + t]), N, repeats, cv, 1.05) for t in range(trials)]
        flagged = [np.mean([bool(m(v)) for v in draws]) for m in (lookback_z, asv_steps)]
        states = [_verdict(v).state for v in draws]
        share = {s: states.count(s) / len(states) for s in ("regression", "not decidable", "steady")}
        lines.append(f"| {repeats}, {cv:.2f} | {flagged[0]:.0%} | {flagged[1]:.0%} | {share['regression']:.0%} / "
                     f"{share['not decidable']:.0%} / {share['steady']:.0%} |")
    return lines


def speed_table(seed: int) -> list[str]:
    values = draw(np.random.default_rng(seed), 1000, 3, 0.15, 1.15, 500)
    lines = ["| method | one series of 1,000 runs |", "|---|---:|"]
    for name, method in METHODS.items():
        start = time.perf_counter()
        method(values)
        lines.append(f"| {name} | {1000 * (time.perf_counter() - start):.1f} ms |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(f"A +15% step after run {AT} of {N} ({args.trials} histories per row):")
    print("\n".join(step_table(args.trials, args.seed)))
    print(f"\nFlat histories of {N} runs: share with any change reported ({args.trials} per row):")
    print("\n".join(flat_table(args.trials, args.seed, 0.0)))
    print("\nThe same with 5% of runs slowed by 20-60% as a whole (a busy machine):")
    print("\n".join(flat_table(args.trials, args.seed, 0.05)))
    print(f"\nA +5% step after run {AT} of {N}, under the noise:")
    print("\n".join(small_step_table(args.trials, args.seed)))
    print("\nTime per series:")
    print("\n".join(speed_table(args.seed)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
