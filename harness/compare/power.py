"""What `bench compare --fail-above` decides at a given spread between processes, by simulation through the
gate's own interval (`ratio_test`, or `paired_ratio_test` for cells that ran in lockstep) and rule
(`interval_against`): how many repeats a side tell an unchanged cell from a slower one on a machine whose
processes differ by a measured coefficient of variation, and of whose processes a measured share run in the
machine's slow mode (`SLOW_RATIO` times slower), set aside as compare sets them aside
(harness.measure.noise.fast_mode; for lockstep pairs, agreeing_pairs).

A decision at a slowdown S is `--fail-above` at 1 + 0.4 S, i.e. 1.10 for 25% and 1.04 for 10%: an
unchanged cell passes in at least PASS of the simulated pairs with false alarms in at most FALSE_ALARM, and a
cell S slower is caught in at least CAUGHT.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.compare.paired import interval_against, paired_ratio_test, ratio_test
from harness.measure.noise import SLOW_MODE, agreeing_pairs, fast_mode, sd_log_of

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
             seed: int = 0, alpha: float = 0.05, slow_share: float = 0.0, paired: bool = False) -> Outcomes:
    """Shares of pass, fail and undecided over `trials` seeded pairs of `repeats` processes a side, each process
    log-normal with `sd_log`, B `scale` times slower than A, and each, with probability `slow_share`, in the
    slow mode; compare's cut applied to each side before the test. `paired`: lockstep pairs instead, whose log
    ratio has the spread `sd_log`, a share `slow_share` of them with one process alone in the slow mode."""
    rng = np.random.default_rng(seed)
    counts = {"pass": 0, "fail": 0, "undecided": 0}
    for _ in range(trials):
        test = (_drawn_pairs if paired else _drawn_sides)(rng, sd_log, repeats, scale, alpha, slow_share)
        if test is None:  # compare: too few repeats left to test
            counts["undecided"] += 1
            continue
        above, straddles = interval_against(test["ci_low"], test["ci_high"], fail_above)
        counts["fail" if above else "undecided" if straddles else "pass"] += 1
    return Outcomes(counts["pass"] / trials, counts["fail"] / trials, counts["undecided"] / trials)


def _drawn_sides(rng: np.random.Generator, sd_log: float, repeats: int, scale: float, alpha: float,
                 slow_share: float) -> dict[str, float] | None:
    """Welch's test on two drawn sides, each cut as compare cuts it; None when a side has under two left."""
    sides = []
    for level in (1.0, scale):
        drawn = level * np.exp(rng.normal(0.0, sd_log, repeats))
        drawn = np.where(rng.random(repeats) < slow_share, drawn * SLOW_RATIO, drawn)
        sides.append(np.array(fast_mode(drawn, SLOW_MODE)[0]))
    a, b = sides
    return ratio_test(a, b, alpha) if min(len(a), len(b)) >= 2 else None


def _drawn_pairs(rng: np.random.Generator, sd_log: float, repeats: int, scale: float, alpha: float,
                 slow_share: float) -> dict[str, float]:
    """The paired test on drawn lockstep pairs (sd_log: the spread of a pair's log ratio; slow_share: pairs with
    one process alone in the slow mode), the pairs cut as compare cuts them."""
    d = np.log(scale) + rng.normal(0.0, sd_log, repeats)
    lone = rng.random(repeats) < slow_share
    d = np.where(lone, d + np.log(SLOW_RATIO) * rng.choice([-1.0, 1.0], repeats), d)
    a, b, _ = agreeing_pairs(np.ones(repeats), np.exp(d), SLOW_MODE)
    return paired_ratio_test(np.asarray(a), np.asarray(b), alpha)


def decides(sd_log: float, repeats: int, slowdown: float, trials: int = TRIALS, slow_share: float = 0.0,
            paired: bool = False) -> bool:
    fail_above = fail_above_for(slowdown)
    same = simulate(sd_log, repeats, 1.0, fail_above, trials, seed=repeats, slow_share=slow_share, paired=paired)
    slower = simulate(sd_log, repeats, 1.0 + slowdown, fail_above, trials, seed=10_000 + repeats,
                      slow_share=slow_share, paired=paired)
    return same.passed >= PASS and same.failed <= FALSE_ALARM and slower.failed >= CAUGHT


def repeats_needed(cv: float, slowdown: float, trials: int = TRIALS, slow_share: float = 0.0,
                   paired: bool = False) -> int | None:
    """The fewest repeats a side (2 to MAX_REPEATS) at which the gate decides a `slowdown` at this spread and
    share of slow-mode processes (`paired`: of lockstep pairs, at this spread of their ratios and share of pairs
    with one process alone in the slow mode); None when even MAX_REPEATS do not."""
    sd_log = sd_log_of(cv)
    return next((n for n in range(2, MAX_REPEATS + 1)
                 if decides(sd_log, n, slowdown, trials, slow_share, paired)), None)

