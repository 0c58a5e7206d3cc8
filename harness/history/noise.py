"""How much one point of a series (the median of a run's repeats, in log units) moves by chance.

Two sources, measured separately where the records allow:
- between processes within a run: the pooled spread of the repeats around their run's mean (each repeat
  is its own process). A point that is the median of k repeats has that variance times MEDIAN_FACTOR[k];
- between runs: what moves every repeat of a run together (machine state, drift over hours), the part of
  the series' own run-to-run variance (from successive differences, which a few steps barely move) that
  the repeats do not explain.
A calibrated figure for the machine (`bench calibrate`'s per-process noise, when the store has one, or
--noise) stands in for the within-run spread where the records have too few repeats to measure it.
A point's variance is the sum, and never below FLOOR (0.5%: clock and scheduler jitter no record shows).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

FLOOR = 0.005
MIN_WITHIN_DF = 5  # degrees of freedom of the pooled repeats before they are trusted over a calibrated figure
# Variance of the median of k normal draws over the variance of one draw (k = 2: the mean); beyond, pi/(2k).
MEDIAN_FACTOR = {1: 1.0, 2: 0.5, 3: 0.449, 4: 0.343, 5: 0.287}
CLIP = 3.0  # successive differences beyond this many robust SDs are clipped (a step, a one-off spike)
CLIPPED_SHARE = 0.9733  # E[min(Z^2, CLIP^2)] for a standard normal Z: undoes the clipping's bias


_FACTORS = np.array([1.0, *(MEDIAN_FACTOR[k] for k in sorted(MEDIAN_FACTOR))])  # index k, k = 0 read as 1


def median_factor(repeats: np.ndarray) -> np.ndarray:
    """Variance of a point resting on k repeats over that of one process, for each point's k."""
    k = np.maximum(np.asarray(repeats, dtype=float), 1.0)
    table = _FACTORS[np.minimum(k, len(_FACTORS) - 1).astype(int)]
    return np.where(k < len(_FACTORS), table, math.pi / (2 * k))


@dataclass(frozen=True)
class Noise:
    per_point: np.ndarray  # variance of each point (log units)
    run_to_run: float  # SD (log units) of a typical point, as the series shows it
    within: float | None  # SD of one process within a run (log units), measured or calibrated
    source: str  # where `within` came from: "repeats", "calibrated", or "" (not known)


def successive_variance(y: np.ndarray) -> float | None:
    """Variance of one point from the differences of neighbours: robust to a few steps and spikes."""
    diffs = np.diff(y)
    if len(diffs) < 2:
        return None
    scale = 1.4826 * float(np.median(np.abs(diffs)))
    if scale > 0:
        diffs = np.clip(diffs, -CLIP * scale, CLIP * scale)
        return float(np.mean(diffs**2)) / 2 / CLIPPED_SHARE
    return float(np.mean(diffs**2)) / 2


def estimate(y: np.ndarray, repeats: np.ndarray, within_ss: float = 0.0, within_df: int = 0,
             calibrated: float | None = None) -> Noise:
    """The noise of each point of one series: `y` the log medians in time order, `repeats` how many repeats
    each rests on, `within_ss`/`within_df` the pooled sum of squares of repeats around their run's mean (log)
    and its degrees of freedom, `calibrated` the machine's per-process SD (log units) if one is known."""
    factor = median_factor(repeats)
    if within_df >= MIN_WITHIN_DF or (within_df and calibrated is None):
        within, source = math.sqrt(within_ss / within_df), "repeats"
    elif calibrated is not None:
        within, source = float(calibrated), "calibrated"
    else:
        within, source = None, ""
    total = successive_variance(np.asarray(y, dtype=float))
    if within is None:
        per_point = np.full(len(y), total if total is not None else FLOOR**2)
    else:
        between = max(0.0, (total or 0.0) - within**2 * float(np.mean(factor)))
        per_point = between + within**2 * factor
    per_point = np.maximum(per_point, FLOOR**2)
    return Noise(per_point, math.sqrt(float(np.median(per_point))), within, source)
