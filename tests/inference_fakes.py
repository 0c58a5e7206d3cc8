"""Fake backends for inference cells: the tests' NumPy fake with a prediction path, and one whose batch-1
calls take scripted times (a slow warm-up, then a known cycle), each call's own duration kept, so a test can
check that a record's percentiles come from the timed queries and from nothing else."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import ClassVar

from harness import hookimpl
from harness.cell.worker_inference import WARMUP_CALLS
from tests.fakes import FakeBackend


class PredictingFake(FakeBackend):
    """The NumPy fake, with predict_batch (the host is its device: nothing to copy or wait for)."""

    name = "predicting"

    def predict_batch(self, state, x):
        return self._forward(state, x)[-1]


class ScriptedLatency(PredictingFake):
    """Batch-1 calls sleep WARMUP_S for the harness's warm-up, then CYCLE_S in turn; larger batches don't sleep.
    `calls` keeps (rows, seconds) of every call, timed inside the call."""

    name = "scripted"
    WARMUP_S = 0.04
    CYCLE_S = (0.002, 0.004, 0.008)
    calls: ClassVar[list[tuple[int, float]]] = []

    def predict_batch(self, state, x):
        started = time.perf_counter()
        ones = sum(1 for rows, _ in ScriptedLatency.calls if rows == 1)
        if len(x) == 1:
            time.sleep(self.WARMUP_S if ones < WARMUP_CALLS else self.CYCLE_S[(ones - WARMUP_CALLS) % 3])
        out = super().predict_batch(state, x)
        ScriptedLatency.calls.append((len(x), time.perf_counter() - started))
        return out


class QueuedPredictions(PredictingFake):
    """Predicts on a background thread, the way an accelerator queues work; its sync waits for the last
    prediction, and reading the outputs waits for them (an honest asynchronous backend)."""

    name = "queued"

    def import_framework(self, cell) -> None:
        super().import_framework(cell)
        self._queue = ThreadPoolExecutor(max_workers=1)
        self._last = None

    def predict_batch(self, state, x):
        self._last = self._queue.submit(self._slow_forward, state, x)
        return self._last

    def _slow_forward(self, state, x):
        time.sleep(0.002)  # enough queued work that a sync which does not wait shows
        return PredictingFake.predict_batch(self, state, x)

    def sync(self, state) -> None:
        if self._last is not None:
            self._last.result()

    def outputs_to_host(self, state, outputs):
        return outputs.result()


class QueuedLyingSync(QueuedPredictions):
    """As QueuedPredictions, but its sync returns at once: the clock would stop while predictions still run."""

    name = "queued-lying"

    def sync(self, state) -> None:
        return None


class OffByBias(PredictingFake):
    """Predicts with the last layer's bias left out: outputs no longer the reference's."""

    name = "off-by-bias"

    def predict_batch(self, state, x):
        return super().predict_batch(state, x) - state["w"][-1]["bias"]  # every task it runs ends in a Dense


@hookimpl
def bench_backends():
    return [PredictingFake, ScriptedLatency]
