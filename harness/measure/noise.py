"""How much this machine's timings move: between processes of one cell (each repeat is its own process) and
between the steady epochs within one process. The first is what a comparison of two runs has to beat; on a
shared virtual machine it is often ten times the second."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Sequence

# A process slower than this many times the median of its cell's ran in the machine's slow mode: on a shared 2-core
# VM whole processes of an unchanged cell run 1.8-1.9x slower (their CPU time too), in bursts, 10-45% of them
# (benchmarks/compare_power.py). They measure the machine, not the code; docs/repeats-and-compare.md.
SLOW_MODE = 1.3


def fast_mode(values: Sequence[float], slow_mode: float = SLOW_MODE) -> tuple[list[float], int]:
    """The values up to `slow_mode` times their (lower) median, and how many were set aside. Only the slow side
    is cut: interference slows a process down and nothing makes one faster than the code allows. Relative to
    the median, not the fastest, so that a side whose processes spread broadly keeps most of them. Positive
    values only: for a metric that can be 0 or negative every value is kept."""
    values = list(values)
    if not values or min(values) <= 0:
        return values, 0
    kept = [v for v in values if v <= slow_mode * statistics.median_low(values)]
    return kept, len(values) - len(kept)


def agreeing_pairs(a: Sequence[float], b: Sequence[float], slow_mode: float = SLOW_MODE,
                   ) -> tuple[list[float], list[float], int]:
    """The pairs (a[i], b[i]) whose ratio b/a lies within `slow_mode` times, either way, of the median ratio, and
    how many were set aside: processes that took turns (lockstep) share the machine's slow stretches, so a pair
    far from the others is one where a single process ran in the slow mode. Every pair is kept when fewer than two
    would be, or a value is not positive."""
    a, b = list(a), list(b)
    if len(a) < 3 or min(a + b) <= 0:
        return a, b, 0
    logs = [math.log(y / x) for x, y in zip(a, b)]
    centre = statistics.median(logs)
    keep = [i for i, v in enumerate(logs) if abs(v - centre) <= math.log(slow_mode)]
    if len(keep) < 2:
        return a, b, 0
    return [a[i] for i in keep], [b[i] for i in keep], len(a) - len(keep)


def cv_of_logs(values: Sequence[float]) -> float | None:
    """The coefficient of variation of positive values, from the spread of their logarithms (what a ratio of
    geometric means, as bench compare takes, is sensitive to); None for fewer than two."""
    logs = [math.log(v) for v in values if v and v > 0 and math.isfinite(v)]
    if len(logs) < 2:
        return None
    mean = sum(logs) / len(logs)
    sd = math.sqrt(sum((x - mean) ** 2 for x in logs) / (len(logs) - 1))
    return math.sqrt(math.expm1(sd * sd))


def sd_log_of(cv: float) -> float:
    """The standard deviation of log values whose coefficient of variation is `cv` (a log-normal spread): the
    inverse of cv_of_logs."""
    return math.sqrt(math.log1p(cv * cv))


@dataclass(frozen=True)
class Spread:
    processes: int
    between: float | None  # CV of the median steady epochs of the processes in the fast mode
    slow: int  # processes set aside as the machine's slow mode
    within: float | None  # median over processes of the CV of each one's steady epochs
    medians: tuple[float, ...]


def spread(epochs_per_process: Sequence[Sequence[float]]) -> Spread:
    """From each process's epoch times (the first epoch, which compiles, left out)."""
    steady = [e[1:] for e in epochs_per_process if len(e) > 2]
    medians = tuple(statistics.median(s) for s in steady)
    within = sorted(c for c in (cv_of_logs(s) for s in steady) if c is not None)
    fast, slow = fast_mode(medians)
    return Spread(len(steady), cv_of_logs(fast), slow, within[len(within) // 2] if within else None, medians)
