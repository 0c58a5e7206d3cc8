"""Clocks and statistics. Every clock read in a cell is preceded by the backend's sync."""

from __future__ import annotations

import math
import time
from typing import Any, Callable, Sequence, TypeVar

import numpy as np

clock: Callable[[], float] = time.monotonic  # CLOCK_MONOTONIC: comparable across processes
T = TypeVar("T")


class PhaseClock:
    """Times the phases of one cell. Every clock read is preceded by the backend's sync of the current
    state, so device work queued by a phase is counted in that phase and in no other."""

    def __init__(self, sync: Callable[[Any], None]):
        self._sync = sync
        self.state: Any = None  # the backend's state, once built

    def _synced(self) -> None:
        if self.state is not None:
            self._sync(self.state)

    def run(self, fn: Callable[[], T], new_state: bool = False) -> tuple[T, float]:
        """Run fn between two synced clock reads; with new_state, its result becomes the state."""
        self._synced()
        start = clock()
        result = fn()
        if new_state:
            self.state = result
        self._synced()
        return result, clock() - start


def percentile(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if len(values) else None


def median(values: Sequence[float]) -> float | None:
    return percentile(values, 50)


def iqr(values: Sequence[float]) -> float | None:
    return float(np.percentile(values, 75) - np.percentile(values, 25)) if len(values) else None


def cv(values: Sequence[float]) -> float | None:
    """Coefficient of variation (sample std / mean); None for fewer than two values."""
    if len(values) < 2:
        return None
    mean = float(np.mean(values))
    return float(np.std(values, ddof=1) / mean) if mean else None


def bootstrap_ci(values: Sequence[float], level: float = 0.95, resamples: int = 2000, seed: int = 0) -> tuple[float, float] | None:
    """Percentile bootstrap confidence interval of the median."""
    if len(values) < 2:
        return None
    rng = np.random.default_rng(seed)
    data = np.asarray(values, dtype=float)
    medians = np.median(rng.choice(data, size=(resamples, len(data)), replace=True), axis=1)
    alpha = (1 - level) / 2
    return float(np.quantile(medians, alpha)), float(np.quantile(medians, 1 - alpha))


def finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)
