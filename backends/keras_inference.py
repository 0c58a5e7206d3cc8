"""How a Keras user predicts, and what each way costs per call.

Keras offers three ways to get a model's outputs: `model(x)` (the layers called directly: Keras's docs advise
it for inputs that fit in one batch), `model.predict_on_batch(x)` (the compiled predict function, one call)
and `model.predict(x)` (the same function behind Keras's data adapter, callbacks and progress machinery:
what the docs present as *the* inference API). An inference cell times one of them, named in details
(CALLS); `compare_calls` times all three at batch 1 afterwards, so a record shows what the others would
have cost. Imported only inside a worker, after Keras.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

COMPARE_CALLS = 20  # timed calls of each way, after one untimed (compiling) call
CALLS = {
    "eager": "model(x, training=False) per call (Keras's layers called directly, op by op), under the engine's "
             "no-grad context where it has one; outputs left where the engine computed them",
    "compiled": "model.predict(x, batch_size=len(x), verbose=0) per call (Keras's predict function, "
                "jit_compile=True); returns NumPy, so the copy to the host is in each call",
    "default": "model.predict(x, batch_size=len(x), verbose=0) per call (Keras's predict function as compile() "
               "without arguments resolves it); returns NumPy, so the copy to the host is in each call",
}


def call_way(model: Any, mode: str, no_grad: Callable[[], Any]) -> Callable[[np.ndarray], Any]:
    """What an inference cell of `mode` calls per batch (CALLS says which)."""
    if mode == "eager":
        def direct(x: np.ndarray) -> Any:
            with no_grad():
                return model(x, training=False)
        return direct
    return lambda x: model.predict(x, batch_size=len(x), verbose=0)


def compare_calls(model: Any, x: np.ndarray, no_grad: Callable[[], Any]) -> dict[str, Any]:
    """Median ms of one batch-1 call each way, each call with its outputs copied to the host (so every way
    includes the wait for its result); measured by the backend with time.perf_counter, not the harness's
    clock."""
    from keras import ops

    def direct(x: np.ndarray) -> Any:
        with no_grad():
            return model(x, training=False)

    ways = {"model(x, training=False)": direct,
            "model.predict_on_batch(x)": model.predict_on_batch,
            "model.predict(x, verbose=0)": lambda x: model.predict(x, batch_size=len(x), verbose=0)}
    found: dict[str, Any] = {}
    for name, call in ways.items():
        ops.convert_to_numpy(call(x))
        times = []
        for _ in range(COMPARE_CALLS):
            started = time.perf_counter()
            ops.convert_to_numpy(call(x))
            times.append((time.perf_counter() - started) * 1e3)
        found[name] = round(float(np.median(times)), 4)
    return {"batch1_ms_median": found,
            "how": f"{COMPARE_CALLS} calls each way at batch 1 after the harness's phases, outputs copied to the "
                   "host in each, timed by the backend (time.perf_counter)"}
