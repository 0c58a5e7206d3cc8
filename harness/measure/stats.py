"""Statistics of a cell's samples (epochs, steps, repeats) as the reports and the worker summarise them."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np


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


def bootstrap_ci(
    values: Sequence[float], level: float = 0.95, resamples: int = 2000, seed: int = 0
) -> tuple[float, float] | None:
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
