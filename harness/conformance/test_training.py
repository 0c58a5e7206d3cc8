"""Training through the harness's own worker code: in this process, and in a worker subprocess."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import pytest

from harness import results
from harness.api import Cell
from harness.cell.worker import run_cell
from harness.conformance.support import Case, Subject
from harness.measure import metrics, reference
from harness.run import folders
from harness.run.plan import PlannedCell
from harness.run.runner import Runner


def test_a_cell_trains_through_the_worker(available: Subject, case: Case):
    """Two epochs through harness.cell.worker.run_cell: a complete record, reference parity, and learning."""
    cell = available.cell(case, hp=case.hp.replace(epochs=2), latency_steps=3)
    out = run_cell(cell)
    if out["status"] == "skipped":
        pytest.skip(out["message"])
    assert out["status"] == "ok", f"{out['status']}: {out.get('message')} (traceback above, in the captured stderr)"
    assert len(out["epoch_s"]) == 2 and all(t >= 0 for t in out["epoch_s"])
    assert math.isfinite(out["metric_value"])
    ref = out["initial_loss_ref"]
    assert abs(out["initial_loss"] - ref) <= 1e-5 * abs(ref), \
        f"initial loss {out['initial_loss']!r}, reference {ref!r}"
    assert isinstance(out["details"], dict)
    assert out["peak_device_mb"] is None or out["peak_device_mb"] >= 0
    assert out["step_ms_p50"] is not None and out["step_ms_p50"] > 0, "the latency steps were not measured"

    data = available.data(case.task)
    start = metrics.loss_value(case.task.loss,
                               reference.forward(case.task.model(), case.task.init_weights(0), data.x_test),
                               data.y_test)
    assert out["metrics"]["loss"] < start, \
        f"test loss {out['metrics']['loss']:.4g} after 2 epochs is not below the initial {start:.4g}: not learning"


def test_a_cell_runs_in_a_worker_subprocess(available: Subject):
    """The class reference must be importable in a fresh process, which is where bench runs every cell."""
    case = available.first_case(("linear_regression", "mnist_mlp"))
    assert case is not None, "no supported task"
    cell: Cell = available.cell(case, hp=case.hp.replace(epochs=1), latency_steps=2, timeout_s=600)
    with tempfile.TemporaryDirectory(prefix="bench-conformance-") as tmp:
        state = folders.create(Path(tmp), [PlannedCell(cell)], {}, ["conformance"])
        Runner().run(state)
        record = results.load([state.run_dir]).iloc[0]
        log = (state.run_dir / record.log).read_text() if record.log else ""
    assert record.status == "ok", f"{record.status}: {record.message}\n--- worker log ---\n{log[-4000:]}"
    assert np.isfinite(record.metric_value)
