"""Steps in one series, and what a series can and cannot decide.

The method (chosen by measurement on synthetic histories, docs/history.md): binary segmentation with a z
test between the two sides of each split, in log units, each point weighted by its own noise (noise.py:
its repeats, the run-to-run spread of the series, a calibrated machine figure). In a stretch of the series,
every split leaving at least MIN_SEGMENT points a side is scored by the difference of the weighted means
of its two sides over that difference's standard error; the best split counts as a step when its score
reaches Z_CRIT, and both sides are searched again. It is asv's model (a piecewise-constant series plus
noise) with the step's significance tested, as Conbench's lookback z-score tests a point, against the
noise the records measured.

What cannot be decided is said, never left out: a series too short to split, a noise under which a
step of the threshold could not be seen even at the best-placed split (`resolution`), and a split whose
estimated step reaches the threshold but whose score does not reach Z_CRIT.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

MIN_SEGMENT = 3  # points each side of a step: one odd run is a spike, not a step
Z_CRIT = 4.5  # the score a step needs; docs/history.md has how it was chosen (false alarms on flat series)
Z_HINT = 3.0  # below this a split's estimate is noise, whatever its size: the best of the splits of a flat
# series of 50 runs scores 1.8 in the median, over 3.5 once in 100 (benchmarks/history_changepoints.py)
POWER_Z = 1.2816  # `resolution` is the step found 9 times in 10 (z_crit + this many SEs)
CI_Z = 1.96  # the 95% interval of a step's ratio
SPIKE_WINDOW, SPIKE_CLIP = 5, 2.5  # a point further than 2.5 SDs from the median of its 5 neighbours is pulled in


@dataclass(frozen=True)
class Step:
    index: int  # the first point after the step
    ratio: float  # geometric mean after over before (adjacent segments)
    low: float
    high: float
    z: float


@dataclass
class Verdict:
    state: str  # STATES
    steps: list[Step] = field(default_factory=list)
    resolution: float = math.inf  # the smallest relative step a best-placed split would flag
    candidate: Step | None = None  # the strongest split below Z_CRIT, when its estimate reaches the threshold
    note: str = ""


STATES = ("regression", "faster", "changed", "steady", "not decidable")


def _prefix(y: np.ndarray, var: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    w = 1.0 / var
    return np.concatenate([[0.0], np.cumsum(w)]), np.concatenate([[0.0], np.cumsum(w * y)])


def _step(w_sum: np.ndarray, wy_sum: np.ndarray, a: int, i: int, b: int) -> Step:
    """The step at i between segments [a, i) and [i, b)."""
    left, right = w_sum[i] - w_sum[a], w_sum[b] - w_sum[i]
    d = (wy_sum[b] - wy_sum[i]) / right - (wy_sum[i] - wy_sum[a]) / left
    se = math.sqrt(1 / left + 1 / right)
    return Step(i, math.exp(d), math.exp(d - CI_Z * se), math.exp(d + CI_Z * se), float(d / se))


def best_split(w_sum: np.ndarray, wy_sum: np.ndarray, a: int, b: int, min_segment: int = MIN_SEGMENT) -> Step | None:
    """The split of [a, b) with the largest |z|, or None when the stretch is too short to split."""
    if b - a < 2 * min_segment:
        return None
    i = np.arange(a + min_segment, b - min_segment + 1)
    left, right = w_sum[i] - w_sum[a], w_sum[b] - w_sum[i]
    d = (wy_sum[b] - wy_sum[i]) / right - (wy_sum[i] - wy_sum[a]) / left
    z = d / np.sqrt(1 / left + 1 / right)
    return _step(w_sum, wy_sum, a, int(i[int(np.argmax(np.abs(z)))]), b)


def segment(y: np.ndarray, var: np.ndarray, z_crit: float = Z_CRIT, min_segment: int = MIN_SEGMENT) -> list[Step]:
    """The steps of a series (log values `y`, their variances `var`), each scored against its neighbours'
    segments, in time order."""
    y, var = np.asarray(y, dtype=float), np.asarray(var, dtype=float)
    w_sum, wy_sum = _prefix(y, var)
    cuts: list[int] = []
    stack = [(0, len(y))]
    while stack:
        a, b = stack.pop()
        split = best_split(w_sum, wy_sum, a, b, min_segment)
        if split is not None and abs(split.z) >= z_crit:
            cuts.append(split.index)
            stack += [(a, split.index), (split.index, b)]
    bounds = [0, *sorted(cuts), len(y)]
    return [_step(w_sum, wy_sum, bounds[k - 1], bounds[k], bounds[k + 1]) for k in range(1, len(bounds) - 1)]


def despike(y: np.ndarray, var: np.ndarray) -> np.ndarray:
    """`y` with each point held within SPIKE_CLIP SDs of the median of the SPIKE_WINDOW points around it: one
    run slowed by a busy machine moves a segment's mean as much as a step would, a step moves the median."""
    if len(y) < SPIKE_WINDOW:
        return y
    # At the ends the window stays whole, shifted inwards: padding with the last value would copy a spike there.
    medians = np.median(np.lib.stride_tricks.sliding_window_view(y, SPIKE_WINDOW), axis=1)
    start = np.clip(np.arange(len(y)) - SPIKE_WINDOW // 2, 0, len(y) - SPIKE_WINDOW)
    centre = medians[start]
    limit = SPIKE_CLIP * np.sqrt(var)
    return centre + np.clip(y - centre, -limit, limit)


def resolution(var: np.ndarray, z_crit: float = Z_CRIT, min_segment: int = MIN_SEGMENT) -> float:
    """The smallest relative step (e.g. 0.12 for +12%) the test finds 9 times in 10 at the best-placed split
    of a series with these point variances: how large a change must be before this history can show it."""
    var = np.asarray(var, dtype=float)
    if len(var) < 2 * min_segment:
        return math.inf
    w_sum = np.concatenate([[0.0], np.cumsum(1.0 / var)])
    i = np.arange(min_segment, len(var) - min_segment + 1)
    se = np.sqrt(1 / w_sum[i] + 1 / (w_sum[-1] - w_sum[i]))
    return math.exp((z_crit + POWER_Z) * float(se.min())) - 1


def judge(y: np.ndarray, var: np.ndarray, threshold: float, z_crit: float = Z_CRIT,
          min_segment: int = MIN_SEGMENT) -> Verdict:
    """The verdict on one series (lower is better): its steps, and whether a slowdown of `threshold` (e.g.
    0.05) or more is in effect now (regression), could be seen at all (resolution), or is possible but
    undecided (candidate)."""
    y, var = np.asarray(y, dtype=float), np.asarray(var, dtype=float)
    if len(y) < 2 * min_segment:
        return Verdict("not decidable", note=f"{len(y)} run(s) with a value: a step needs {min_segment} on each side")
    y = despike(y, var)
    steps = segment(y, var, z_crit, min_segment)
    limit = resolution(var, z_crit, min_segment)
    if steps:
        levels = _levels(y, var, steps)
        final = levels[-1]
        regressed = [s for k, s in enumerate(steps)
                     if s.ratio >= 1 + threshold and math.exp(final - levels[k]) >= 1 + threshold]
        if regressed:
            return Verdict("regression", steps, limit)
        if math.exp(final - levels[0]) <= 1 / (1 + threshold):
            return Verdict("faster", steps, limit)
        return Verdict("changed", steps, limit, note="steps under the threshold, or undone since")
    w_sum, wy_sum = _prefix(y, var)
    best = best_split(w_sum, wy_sum, 0, len(y), min_segment)
    if best is not None and abs(best.z) >= Z_HINT and abs(math.log(best.ratio)) >= math.log1p(threshold):
        return Verdict("not decidable", [], limit, best,
                       f"a possible {best.ratio - 1:+.0%} step (z {best.z:.1f}; a step needs {z_crit:g})")
    if limit > threshold:
        return Verdict("not decidable", [], limit, None,
                       f"noise hides steps under {limit:.0%} (threshold {threshold:.0%})")
    return Verdict("steady", [], limit)


def _levels(y: np.ndarray, var: np.ndarray, steps: list[Step]) -> list[float]:
    """The weighted mean (log) of each segment between steps."""
    bounds = [0, *(s.index for s in steps), len(y)]
    w = 1.0 / var
    return [float(np.sum(w[a:b] * y[a:b]) / np.sum(w[a:b])) for a, b in zip(bounds, bounds[1:])]
