"""What `bench compare --fail-above` decides at a given spread between processes, by simulation through the
gate's own interval (`ratio_test`) and rule (`interval_against`): how many repeats a side tell an unchanged
cell from a slower one on a machine whose processes differ by a measured coefficient of variation.

A decision at a slowdown S is `--fail-above` at 1 + 0.4 S, i.e. 1.10 for 25% and 1.04 for 10%: an
unchanged cell passes in at least PASS of the simulated pairs with false alarms in at most FALSE_ALARM, and a
cell S slower is caught in at least CAUGHT.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from harness.compare.paired import interval_against, ratio_test

PASS, FALSE_ALARM, CAUGHT = 0.80, 0.05, 0.90
TRIALS = 200
MAX_REPEATS = 30


def sd_log_of(cv: float) -> float:
    """The standard deviation of log values whose coefficient of variation is `cv` (a log-normal spread)."""
    return math.sqrt(math.log1p(cv * cv))


def fail_above_for(slowdown: float) -> float:
    """The gate that decides a slowdown: well above the noise of an unchanged cell, well below the slowdown."""
    return round(1 + 0.4 * slowdown, 3)


def slowdown_for(fail_above: float) -> float:
    return (fail_above - 1) / 0.4


@dataclass(frozen=True)
class Outcomes:
    passed: float
    failed: float
    undecided: float


def simulate(sd_log: float, repeats: int, scale: float, fail_above: float, trials: int = TRIALS,
             seed: int = 0, alpha: float = 0.05) -> Outcomes:
    """Shares of pass, fail and undecided over `trials` seeded pairs of `repeats` processes a side, each process
    log-normal with `sd_log`, B `scale` times slower than A."""
    rng = np.random.default_rng(seed)
    counts = {"pass": 0, "fail": 0, "undecided": 0}
    for _ in range(trials):
        a = np.exp(rng.normal(0.0, sd_log, repeats))
        b = scale * np.exp(rng.normal(0.0, sd_log, repeats))
        test = ratio_test(a, b, alpha)
        above, straddles = interval_against(test["ci_low"], test["ci_high"], fail_above)
        counts["fail" if above else "undecided" if straddles else "pass"] += 1
    return Outcomes(counts["pass"] / trials, counts["fail"] / trials, counts["undecided"] / trials)


def decides(sd_log: float, repeats: int, slowdown: float, trials: int = TRIALS) -> bool:
    fail_above = fail_above_for(slowdown)
    same = simulate(sd_log, repeats, 1.0, fail_above, trials, seed=repeats)
    slower = simulate(sd_log, repeats, 1.0 + slowdown, fail_above, trials, seed=10_000 + repeats)
    return same.passed >= PASS and same.failed <= FALSE_ALARM and slower.failed >= CAUGHT


def repeats_needed(cv: float, slowdown: float, trials: int = TRIALS) -> int | None:
    """The fewest repeats a side (2 to MAX_REPEATS) at which the gate decides a `slowdown` at this spread; None
    when even MAX_REPEATS do not."""
    sd_log = sd_log_of(cv)
    return next((n for n in range(2, MAX_REPEATS + 1) if decides(sd_log, n, slowdown, trials)), None)


def with_slow_mode(repeats: int | None, share: float) -> int | None:
    """Repeats to run so that `repeats` are left once the `share` of processes in the machine's slow mode is set
    aside (harness.measure.noise.fast_mode); None when half or more are: no count is to be relied on then."""
    if repeats is None or share >= 0.5:
        return None
    return math.ceil(repeats / (1 - share))
