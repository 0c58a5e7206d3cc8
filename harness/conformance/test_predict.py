"""The prediction path of inference cells (`Backend.predict_batch`): it computes what the float64 NumPy
reference computes, at batch 1 and beyond, `sync` waits for it, and an inference cell runs through the worker.

A backend without predict_batch has its inference cells skipped; these checks are skipped with it.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from harness.cell.worker import run_cell
from harness.conformance.support import Case, Subject, nonzero_bias_weights
from harness.measure import reference

TARGET_WINDOW_S = 0.3  # queued predictions: enough that hiding them can't pass for noise (as test_sync)
HIDDEN_FRACTION = 0.25
HIDDEN_FLOOR_S = 0.02
ATTEMPTS = 3
SYNC_BATCH = 256


def _predicting(subject: Subject) -> None:
    if not subject.backend.predicts_batches():
        pytest.skip(f"{subject.backend.name} has no predict_batch: its inference cells are skipped")


def _outputs_differ(backend, state, got, expected: np.ndarray) -> str:
    host = np.asarray(backend.outputs_to_host(state, got), dtype=np.float64)
    if host.size != expected.size:
        return f"predict_batch gave shape {host.shape}, expected {expected.shape}"
    host = host.reshape(expected.shape)
    scale = float(np.max(np.abs(expected))) or 1.0
    worst = float(np.max(np.abs(host - expected)))
    return ("" if worst <= 1e-4 * scale
            else f"outputs differ from the reference by up to {worst:.3g} (scale {scale:.3g})")


def test_predicted_batches_match_the_reference(subject: Subject, opened, case: Case):
    _predicting(subject)
    weights = nonzero_bias_weights(case.task, seed=6)
    cell = subject.cell(case, phase="inference")
    backend = opened(cell)
    data = subject.data(case.task)
    state = backend.build(case.task, cell, data, weights)
    for rows in (1, 5, 1):  # batch 1 twice: a compiled forward specialised on the 5-row shape must still be right
        x = np.ascontiguousarray(data.x_test[:rows], dtype=np.float32)
        before = x.copy()
        out = backend.predict_batch(state, x)
        backend.sync(state)
        problem = _outputs_differ(backend, state, out, reference.forward(case.task.model(), weights, before))
        assert not problem, f"batch of {rows}: {problem}"
        assert np.array_equal(x, before), "predict_batch changed its input array"


def _timed(backend, state, x, calls: int) -> tuple[float, float]:
    backend.sync(state)
    t0 = time.perf_counter()
    for _ in range(calls):
        out = backend.predict_batch(state, x)
    backend.sync(state)
    t1 = time.perf_counter()
    backend.outputs_to_host(state, out)
    t2 = time.perf_counter()
    backend.outputs_to_host(state, out)
    t3 = time.perf_counter()
    return t1 - t0, (t2 - t1) - (t3 - t2)


def test_sync_waits_for_predictions(subject: Subject, opened, mode: str):
    """After predict_batch calls + sync, copying the last outputs to the host should cost only a copy; if the
    first copy takes noticeably longer than a second, it was waiting for predictions sync said were done."""
    _predicting(subject)
    # The heaviest forward first: where a call's dispatch costs about what its compute does (the MLP on a
    # CPU), no queue builds up for a sync that does not wait to hide.
    case = subject.first_case(("mnist_cnn", "mnist_lstm", "mnist_mlp", "linear_regression"), mode)
    cell = subject.cell(case, phase="inference")
    backend = opened(cell)
    data = subject.data(case.task)
    state = backend.build(case.task, cell, data, case.task.init_weights(0))
    x = np.ascontiguousarray(np.take(data.x_test, np.arange(SYNC_BATCH) % len(data.x_test), axis=0), np.float32)
    costs = []
    for _ in range(3):  # the honest cost of one call, compile aside: the fastest of a few, each waited for
        backend.sync(state)
        t0 = time.perf_counter()
        backend.outputs_to_host(state, backend.predict_batch(state, x))
        costs.append(time.perf_counter() - t0)
    calls = int(min(4096, max(4, TARGET_WINDOW_S / max(min(costs), 1e-6))))
    attempts = []
    for _ in range(ATTEMPTS):
        window_s, hidden_s = _timed(backend, state, x, calls)
        attempts.append((window_s, hidden_s))
        if hidden_s <= max(HIDDEN_FRACTION * (window_s + hidden_s), HIDDEN_FLOOR_S):
            return
    pytest.fail(
        f"sync returns before the predictions are done ({case.id}, {calls} calls of batch {SYNC_BATCH}): in each of "
        f"{ATTEMPTS} tries the first copy of the outputs after predict_batch + sync waited for them: "
        + "; ".join(f"{w * 1e3:.1f} ms as timed, then {h * 1e3:.1f} ms more" for w, h in attempts), pytrace=False)


def test_an_inference_cell_runs_through_the_worker(available: Subject, mode: str):
    """An inference cell through harness.cell.worker.run_cell, with small windows: every figure present and
    ordered, the floors honoured."""
    _predicting(available)
    case = available.first_case(("mnist_mlp", "linear_regression", "mnist_cnn", "mnist_lstm"), mode)
    cell = available.cell(case, phase="inference", inference_s=0.05, inference_queries=5)
    out = run_cell(cell)
    if out["status"] == "skipped":
        pytest.skip(out["message"])
    assert out["status"] == "ok", f"{out['status']}: {out.get('message')} (traceback above, in the captured stderr)"
    assert out["infer_queries"] >= 5 and out["infer_window_s"] >= 0.05
    assert 0 < out["infer_ms_p50"] <= out["infer_ms_p90"] <= out["infer_ms_p99"]
    for batch in (1, 32, 256, 1024):
        assert out[f"infer_samples_per_s_b{batch}"] > 0, f"no throughput at batch {batch}"
    assert "epoch_s" not in out, "an inference cell trained"
