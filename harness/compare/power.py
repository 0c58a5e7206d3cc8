"""What `bench compare --fail-above` decides at a given spread between processes, by simulation through the
gate's own interval (`ratio_test`) and rule (`interval_against`): how many repeats a side tell an unchanged
cell from a slower one on a machine whose processes differ by a measured coefficient of variation, and of
whose processes a measured share run in the machine's slow mode (`SLOW_RATIO` times slower), set aside as
compare sets them aside (harness.measure.noise.fast_mode).

A decision at a slowdown S is `--fail-above` at 1 + 0.4 S, i.e. 1.10 for 25% and 1.04 for 10%: an
unchanged cell passes in at least PASS of the simulated pairs with false alarms in at most FALSE_ALARM, and a
cell S slower is caught in at least CAUGHT.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.compare.paired import interval_against, ratio_test
from harness.measure.noise import SLOW_MODE, fast_mode, sd_log_of

PASS, FALSE_ALARM, CAUGHT = 0.80, 0.05, 0.90
TRIALS = 200
MAX_REPEATS = 30
SLOW_RATIO = 1.85  # a slow-mode process against a fast one, measured on this repository's VM (1.8-1.9x)


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
             seed: int = 0, alpha: float = 0.05, slow_share: float = 0.0) -> Outcomes:
    """Shares of pass, fail and undecided over `trials` seeded pairs of `repeats` processes a side, each process
    log-normal with `sd_log`, B `scale` times slower than A, and each, with probability `slow_share`, in the
    slow mode; compare's cut applied to each side before the test."""
    rng = np.random.default_rng(seed)
    counts = {"pass": 0, "fail": 0, "undecided": 0}
    for _ in range(trials):
        sides = []
        for level in (1.0, scale):
            drawn = level * np.exp(rng.normal(0.0, sd_log, repeats))
            drawn = np.where(rng.random(repeats) < slow_share, drawn * SLOW_RATIO, drawn)
            sides.append(np.array(fast_mode(drawn, SLOW_MODE)[0]))
        a, b = sides
        if min(len(a), len(b)) < 2:  # compare: too few repeats left to test
            counts["undecided"] += 1
            continue
        test = ratio_test(a, b, alpha)
        above, straddles = interval_against(test["ci_low"], test["ci_high"], fail_above)
        counts["fail" if above else "undecided" if straddles else "pass"] += 1
    return Outcomes(counts["pass"] / trials, counts["fail"] / trials, counts["undecided"] / trials)


def decides(sd_log: float, repeats: int, slowdown: float, trials: int = TRIALS, slow_share: float = 0.0) -> bool:
    fail_above = fail_above_for(slowdown)
    same = simulate(sd_log, repeats, 1.0, fail_above, trials, seed=repeats, slow_share=slow_share)
    slower = simulate(sd_log, repeats, 1.0 + slowdown, fail_above, trials, seed=10_000 + repeats,
                      slow_share=slow_share)
    return same.passed >= PASS and same.failed <= FALSE_ALARM and slower.failed >= CAUGHT


def repeats_needed(cv: float, slowdown: float, trials: int = TRIALS, slow_share: float = 0.0) -> int | None:
    """The fewest repeats a side (2 to MAX_REPEATS) at which the gate decides a `slowdown` at this spread and
    share of slow-mode processes; None when even MAX_REPEATS do not."""
    sd_log = sd_log_of(cv)
    return next((n for n in range(2, MAX_REPEATS + 1) if decides(sd_log, n, slowdown, trials, slow_share)), None)

