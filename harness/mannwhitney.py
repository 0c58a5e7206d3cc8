"""The two-sided Mann-Whitney U test, in numpy alone (scipy is not a dependency).

Same conventions as scipy.stats.mannwhitneyu(x, y, alternative="two-sided", method="auto"):
the exact null distribution of U when there are no ties and either sample has at most 8
values; otherwise the normal approximation with tie correction and continuity correction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np

EXACT_MAX = 8  # scipy's 'auto' switches to the normal approximation when both samples are larger


@dataclass(frozen=True)
class MannWhitney:
    u: float  # U statistic of the first sample
    p: float  # two-sided p-value
    method: str  # "exact" or "asymptotic"


def midranks(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ranks 1..n with ties given their average rank, and the size of each group of ties."""
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    counts = np.diff(np.r_[starts, len(values)])
    average = starts + (counts + 1) / 2.0  # the mean of ranks start+1 .. start+count
    ranks = np.empty(len(values))
    ranks[order] = np.repeat(average, counts)
    return ranks, counts


@lru_cache(maxsize=256)
def _u_counts(n1: int, n2: int) -> tuple[int, ...]:
    """How many of the C(n1+n2, n1) orderings give each U = 0 .. n1*n2 (exact integers).

    Recurrence on the largest value: it belongs to the first sample (adding n2 to U) or to
    the second (adding nothing): N(u; n1, n2) = N(u - n2; n1 - 1, n2) + N(u; n1, n2 - 1).
    """
    if n1 == 0 or n2 == 0:
        return (1,)
    with_first = _u_counts(n1 - 1, n2)
    without = _u_counts(n1, n2 - 1)
    counts = [0] * (n1 * n2 + 1)
    for u, c in enumerate(without):
        counts[u] += c
    for u, c in enumerate(with_first):
        counts[u + n2] += c
    return tuple(counts)


def exact_sf(u: int, n1: int, n2: int) -> float:
    """P(U >= u) under the null hypothesis, without ties."""
    counts = _u_counts(min(n1, n2), max(n1, n2))  # the distribution is symmetric in n1, n2
    return sum(counts[max(u, 0):]) / math.comb(n1 + n2, n1)


def smallest_p(n1: int, n2: int) -> float:
    """The smallest two-sided p-value the exact test can give with these sample sizes."""
    if n1 == 0 or n2 == 0:
        return 1.0
    return min(1.0, 2.0 / math.comb(n1 + n2, n1))


def _normal_sf(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def mann_whitney(x: Sequence[float], y: Sequence[float]) -> MannWhitney:
    """Two-sided test that x and y come from the same distribution. Needs at least one value in each."""
    a = np.asarray(x, dtype=float)
    b = np.asarray(y, dtype=float)
    n1, n2 = len(a), len(b)
    if n1 == 0 or n2 == 0:
        raise ValueError("Mann-Whitney needs at least one value in each sample")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("Mann-Whitney needs finite values")
    ranks, ties = midranks(np.concatenate([a, b]))
    u1 = float(ranks[:n1].sum() - n1 * (n1 + 1) / 2)
    u = max(u1, n1 * n2 - u1)
    if (n1 <= EXACT_MAX or n2 <= EXACT_MAX) and not (ties > 1).any():
        p = 2.0 * exact_sf(int(round(u)), n1, n2)
        return MannWhitney(u1, min(1.0, p), "exact")
    n = n1 + n2
    tie_term = float((ties**3 - ties).sum()) / (n * (n - 1))
    sigma = math.sqrt(n1 * n2 / 12.0 * ((n + 1) - tie_term))
    if sigma == 0.0:  # every value equal: no evidence of any difference
        return MannWhitney(u1, 1.0, "asymptotic")
    z = (u - n1 * n2 / 2.0 - 0.5) / sigma
    return MannWhitney(u1, min(1.0, 2.0 * _normal_sf(z)), "asymptotic")
