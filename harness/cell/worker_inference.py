"""The worker's inference path: prediction timed instead of training (docs/inference-and-energy.md).

The model is built from the task's initial weights and never trained: a forward pass costs the same whatever
the weights' values, so training first would only make the cell longer. Then, each call one
`Backend.predict_batch` on host inputs from the test split, each timed between two syncs like every phase:

1. a warm-up of WARMUP_CALLS batch-1 calls (the compiled forward compiles at the first: `infer_first_ms`);
2. single-stream: batch-1 queries, one after another, until both `cell.inference_s` seconds and
   `cell.inference_queries` queries have passed; p50, p90 and p99 of their latencies;
3. offline: for each of INFERENCE_BATCHES, THROUGHPUT_WARMUP_CALLS calls (a compiled forward compiles once
   per shape), one more to size the window, then a window of back-to-back calls with one sync at its end,
   at least THROUGHPUT_SHARE of `inference_s` and THROUGHPUT_MIN_CALLS calls long (a window that came out
   shorter is run again with more calls: the last one is recorded); samples/s over it.

Batches wrap around the test split when larger than it. Energy (harness.measure.energy) is read right after
the syncs that bound each window, where the cell's device has a counter.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.api import INFERENCE_BATCHES
from harness.measure.clock import clock
from harness.measure.stats import percentile

if TYPE_CHECKING:
    from harness.cell.worker_phases import Measurement

WARMUP_CALLS = 10
THROUGHPUT_WARMUP_CALLS = 2
THROUGHPUT_MIN_CALLS = 3
THROUGHPUT_SHARE = 0.1  # of the single-stream floor: 1 s per batch size by default
THROUGHPUT_MAX_CALLS = 100_000  # bounds a window of a backend whose sizing call was a fluke


def wrapped_rows(x: np.ndarray, n: int) -> np.ndarray:
    """`n` rows of `x` from its first, starting again at the first when `x` has fewer (contiguous float32)."""
    return np.ascontiguousarray(np.take(x, np.arange(n) % len(x), axis=0), dtype=np.float32)


def latency_figures(samples_ms: list[float]) -> dict[str, float | None]:
    """The single-stream figures of the timed queries' latencies (never the warm-up's)."""
    return {"infer_ms_p50": percentile(samples_ms, 50), "infer_ms_p90": percentile(samples_ms, 90),
            "infer_ms_p99": percentile(samples_ms, 99)}


def _reader(m: Measurement) -> Callable[[], Any]:
    return m.energy.read if m.energy is not None else (lambda: None)


def _joules(m: Measurement, readings: tuple[Any, Any]) -> tuple[float | None, bool]:
    if m.energy is None:
        return None, False
    found = m.energy.window(*readings)
    return found.joules, found.short


def single_stream(m: Measurement, x_test: np.ndarray) -> dict[str, Any]:
    """Batch-1 queries until both floors are passed; the figures and the window's record."""
    backend, cell = m.backend, m.cell
    samples_ms: list[float] = []
    rows = len(x_test)

    def queries() -> None:
        started = clock()
        while len(samples_ms) < cell.inference_queries or clock() - started < cell.inference_s:
            i = len(samples_ms) % rows
            _, seconds = m.phases.run(lambda q=x_test[i:i + 1]: backend.predict_batch(m.phases.state, q))
            samples_ms.append(seconds * 1e3)

    _, window_s, readings = m.phases.run_metered(queries, _reader(m))
    joules, short = _joules(m, readings)
    return {**latency_figures(samples_ms), "infer_queries": len(samples_ms), "infer_window_s": window_s,
            "window": {"view": "single-stream", "batch": 1, "calls": len(samples_ms), "seconds": window_s,
                       "samples_per_s": len(samples_ms) / window_s if window_s > 0 else None, "joules": joules,
                       "short": short}}


def offline(m: Measurement, x_test: np.ndarray, batch: int) -> dict[str, Any]:
    """One batch size's throughput window."""
    backend = m.backend
    x = wrapped_rows(x_test, batch)
    for _ in range(THROUGHPUT_WARMUP_CALLS):
        m.phases.run(lambda: backend.predict_batch(m.phases.state, x))
    _, one = m.phases.run(lambda: backend.predict_batch(m.phases.state, x))
    target = THROUGHPUT_SHARE * m.cell.inference_s
    calls = min(THROUGHPUT_MAX_CALLS, max(THROUGHPUT_MIN_CALLS, math.ceil(target / max(one, 1e-9))))

    def back_to_back() -> None:
        state = m.phases.state
        for _ in range(calls):
            backend.predict_batch(state, x)

    while True:  # a lone call is slower than one of many back to back: grow the window until it is long enough
        _, seconds, readings = m.phases.run_metered(back_to_back, _reader(m))
        if seconds >= target or calls >= THROUGHPUT_MAX_CALLS:
            break
        calls = min(THROUGHPUT_MAX_CALLS, math.ceil(calls * 1.2 * target / max(seconds, 1e-9)))
    joules, short = _joules(m, readings)
    return {"view": "offline", "batch": batch, "calls": calls, "seconds": seconds,
            "samples_per_s": calls * batch / seconds if seconds > 0 else None, "joules": joules, "short": short}


def infer(m: Measurement) -> None:
    """The inference phase: warm-up, single-stream, then offline at each batch size."""
    m.phase("inference")
    v, backend = m.values, m.backend
    x_test = np.ascontiguousarray(m.data.x_test, dtype=np.float32)
    first = x_test[:1]
    warm_started = clock()
    for i in range(WARMUP_CALLS):
        _, seconds = m.phases.run(lambda: backend.predict_batch(m.phases.state, first))
        if i == 0:
            v["infer_first_ms"] = seconds * 1e3
    v["infer_warmup_s"] = clock() - warm_started
    stream = single_stream(m, x_test)
    windows = [stream.pop("window")]
    v.update(stream)
    for batch in INFERENCE_BATCHES:
        found = offline(m, x_test, batch)
        windows.append(found)
        v[f"infer_samples_per_s_b{batch}"] = found["samples_per_s"]
        joules = found["joules"]
        v[f"infer_samples_per_j_b{batch}"] = found["calls"] * batch / joules if joules else None
    v["infer_windows"] = windows
    v.update(status="ok", message="")
