"""A first-epoch check for keras-jax: a model that compiles on every batch has no steady state to time.

Keras's JAX LSTM under run_eagerly=True is one: each call runs lax.scan over a new closure, so XLA compiles
each layer's scan, forward and backward, on every batch (6 programs and 1.4-1.9 s a batch of 128 for the
MNIST LSTM on a 2-core CPU: benchmarks/keras_jax_eager_lstm.py), and the process runs out of memory maps
(vm.max_map_count) within the first epoch. Counting compiles at each batch's start costs a Python call and no host sync.
Imported only inside a worker, after Keras.
"""

from __future__ import annotations

from typing import Any, Callable

import keras

from harness.api import SkipCell

# Batches (0-based) that must not all compile: batch 0 compiles the train step (or, eagerly, each op once)
# and batch 1 may still compile a few ops; a healthy model compiles nothing after that.
CHECKED = range(2, 12)


class RecompileGuard(keras.callbacks.Callback):
    """Raises SkipCell at the start of batch CHECKED.stop when every one of the CHECKED batches compiled."""

    def __init__(self, compiles: Callable[[], int], why: str):
        super().__init__()
        self.compiles = compiles  # XLA programs compiled so far in this process
        self.why = why  # what in the model is known to do this, if anything
        self.started = compiles()
        self.per_batch: list[int] = []

    def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
        if batch > CHECKED.stop:
            return
        now = self.compiles()
        if batch:
            self.per_batch.append(now - self.started)  # what batch - 1 compiled
        self.started = now
        if batch == CHECKED.stop:
            counts = self.per_batch[CHECKED.start:]
            if all(counts):
                raise SkipCell(
                    f"Keras {keras.__version__} on JAX compiled XLA programs on every one of batches "
                    f"{CHECKED.start + 1}-{CHECKED.stop} ({_span(counts)} a batch){self.why}: there is "
                    "no steady state to time, and compiling through a whole epoch exhausts the process's memory "
                    "maps. Not timed")


def _span(counts: list[int]) -> str:
    low, high = min(counts), max(counts)
    return str(low) if low == high else f"{low}-{high}"
