"""benchmarks/raw: the hand-written loops train the tasks' own models from the tasks' own weights in the
harness's batch order, report sane epoch times, and the compare script builds its ratio table.
Behaviour only: no test looks at how fast anything is. Each framework runs in its own process."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks.raw import common, compare_harness
from harness.api import Cell, class_ref
from harness.cell.worker import run_cell
from harness.measure import metrics, reference
from tasks.linear_regression import LinearRegression
from tests.fakes import FakeBackend

REPO = Path(__file__).resolve().parent.parent
FRAMEWORKS = {"torch": ("torch", "raw_torch"), "tensorflow": ("tensorflow", "raw_tf"), "jax": ("jax", "raw_jax")}


def needs(backend: str):
    module = FRAMEWORKS[backend][0]
    return pytest.mark.skipif(importlib.util.find_spec(module) is None, reason=f"{module} is not installed")


def python(args: list[str], timeout: float = 240) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


class OrderSpy(FakeBackend):
    """The fake NumPy backend, remembering every order the harness hands it."""

    name = "order_spy"
    orders: list[np.ndarray] = []

    def train_epoch(self, state, order):
        OrderSpy.orders.append(np.array(order))
        return super().train_epoch(state, order)


def test_the_raw_loops_take_the_harness_batch_order():
    OrderSpy.orders.clear()
    hp = LinearRegression().hyperparams(epochs=3)
    cell = Cell(backend="order_spy", task="linear_regression", mode="eager", device="cpu", hp=hp, seed=7,
                train_size=200, test_size=50, latency_steps=0, backend_ref=class_ref(OrderSpy),
                task_ref=class_ref(LinearRegression))
    assert run_cell(cell)["status"] == "ok"
    # The three training epochs come first (the steady epoch's blocks, for epochs this short, train more after).
    assert len(OrderSpy.orders) >= 3
    for epoch, order in enumerate(OrderSpy.orders[:3]):
        np.testing.assert_array_equal(common.batch_order(7, epoch, 200, hp.batch_size), order)


# One process per framework trains every task for one epoch; the loss of the first batch before training
# checks that the raw model computes the task's network from the task's weights (layouts, LSTM gates, the
# flatten order after convolutions), against the harness's float64 NumPy reference. JAX runs compiled
# here (op-by-op JAX compiles every primitive of the LSTM on first use: slow); its eager loop is run below.
ALL_TASKS = """
import json, sys
from benchmarks.raw import {module} as raw
out = {{t: raw.run(t, {mode!r}, epochs=1, train_size=256, test_size=128, batch_size=64).__dict__
        for t in {tasks!r}}}
print("RESULT " + json.dumps(out))
"""
ALL_TASKS_MODE = {"torch": "eager", "tensorflow": "eager", "jax": "compiled"}


@pytest.mark.parametrize("backend", [pytest.param(b, marks=needs(b)) for b in FRAMEWORKS])
def test_each_raw_loop_computes_every_task_from_the_task_weights(backend):
    code = ALL_TASKS.format(module=FRAMEWORKS[backend][1], mode=ALL_TASKS_MODE[backend], tasks=common.TASKS)
    done = python(["-c", code])
    results = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))[7:])
    from tasks.builtin import bench_tasks

    for task_cls in bench_tasks():
        task = task_cls()
        result = results[task.name]
        data = task.load(256, 128)
        first = common.batch_order(0, 0, 256, 64)[0]
        expected = metrics.loss_value(task.loss, reference.forward(task.model(), task.init_weights(0),
                                                                   data.x_train[first]), data.y_train[first])
        assert result["initial_loss"] == pytest.approx(expected, rel=1e-4), task.name
        assert result["final_loss"] < result["initial_loss"], task.name
        assert len(result["epoch_s"]) == 1 and result["steady_epoch_s"] is None
        assert result["steps_per_epoch"] == 4 and result["train_size"] == 256 and result["test_size"] == 128


CLI_CELLS = [("torch", "linear_regression", "compiled"), ("tensorflow", "mnist_mlp", "compiled"),
             ("jax", "mnist_mlp", "eager")]


@pytest.mark.parametrize("backend,task,mode", [pytest.param(*c, marks=needs(c[0])) for c in CLI_CELLS])
def test_raw_loop_command_reports_epoch_times_and_a_sane_metric(backend, task, mode, tmp_path):
    out = tmp_path / "raw.json"
    done = python(["-m", f"benchmarks.raw.{FRAMEWORKS[backend][1]}", "--task", task, "--mode", mode,
                   "--epochs", "2", "--train-size", "512", "--test-size", "256", "--threads", "1",
                   "--json", str(out)])
    result = json.loads(out.read_text())
    assert result["framework"] == backend and result["task"] == task and result["mode"] == mode
    assert result["threads"] == 1 and result["steps_per_epoch"] == 512 // result["batch_size"]
    assert len(result["epoch_s"]) == 2 and all(math.isfinite(t) and t > 0 for t in result["epoch_s"])
    assert result["steady_epoch_s"] == result["epoch_s"][1]  # the median of the epochs after the first
    assert result["train_s"] == pytest.approx(sum(result["epoch_s"]))
    assert result["final_loss"] < result["initial_loss"]
    if task == "linear_regression":
        assert result["metrics"]["mse"] < 0.05  # the noise floor is 0.01; the initial mse is above 1
    else:
        assert result["metrics"]["accuracy"] > 0.3  # chance is 0.1
    assert "steady epoch" in done.stdout


def fake_side(steady: float, first: float, wall: float, metric: float):
    def run(backend, task, mode, args, work):
        calls.append(run)
        shared = {"steady_epoch_s": steady, "first_epoch_s": first, "train_s": first + steady, "wall_s": wall,
                  "import_s": 0.5, "load_s": 0.1, "setup_s": 0.1, "eval_s": 0.05}
        return {**shared, "variant": "fake loop", "metrics": {"accuracy": metric}, "step_ms_p50": 1.0,
                "metric_value": metric, "cli_wall_s": wall + 1.0}

    calls: list = []
    run.calls = calls
    return run


@pytest.mark.parametrize("raw_s,harness_s,note", [(0.1, 0.2, "raw < 0.5 s: target n/a"),
                                                  (1.0, 1.04, "within 1.05"), (1.0, 1.2, "OVER 1.05")])
def test_compare_marks_the_ratio_against_the_target(monkeypatch, raw_s, harness_s, note):
    raw, harness = fake_side(raw_s, 2.0, 5.0, 0.9), fake_side(harness_s, 2.5, 6.0, 0.91)
    monkeypatch.setattr(compare_harness, "run_raw", raw)
    monkeypatch.setattr(compare_harness, "run_harness", harness)
    args = compare_harness.parse_args(["--backend", "jax", "--task", "mnist_mlp", "--mode", "compiled",
                                       "--repeat", "3"])
    row = compare_harness.compare_cell("jax", "mnist_mlp", "compiled", args)
    assert len(raw.calls) == len(harness.calls) == 3
    assert row.ratio == pytest.approx(harness_s / raw_s)
    assert row.note == note
    assert row.raw_fixed_s == pytest.approx(5.0 - 2.0 - raw_s)
    assert row.harness_fixed_s == pytest.approx(6.0 - 2.5 - harness_s)
    assert row.harness_cli_s == pytest.approx(7.0 - 2.5 - harness_s)
    assert (row.raw_metric, row.harness_metric) == (0.9, 0.91)
    text = compare_harness.table([row])
    assert "harness/raw" in text and f"{harness_s / raw_s:.3f}" in text and note in text


def test_compare_reports_a_failing_side_as_an_error_row(monkeypatch):
    def broken(*args):
        raise RuntimeError("raw loop failed: boom")

    monkeypatch.setattr(compare_harness, "run_raw", broken)
    args = compare_harness.parse_args(["--backend", "torch", "--task", "mnist_mlp", "--mode", "eager"])
    row = compare_harness.compare_cell("torch", "mnist_mlp", "eager", args)
    assert row.note == "error: raw loop failed: boom" and row.ratio is None
    assert "error: raw loop failed: boom" in compare_harness.table([row])


@needs("jax")
def test_compare_runs_raw_and_bench_run_side_by_side(tmp_path, capsys):
    out = tmp_path / "rows.json"
    rows = compare_harness.main(["--backend", "jax", "--task", "linear_regression", "--mode", "compiled",
                                 "--epochs", "2", "--train-size", "512", "--test-size", "256", "--threads", "1",
                                 "--json", str(out)])
    assert len(rows) == 1
    row = rows[0]
    assert not row.note.startswith("error"), row.note
    assert row.ratio == pytest.approx(row.harness_steady_s / row.raw_steady_s)
    assert row.raw_fixed_s > 0 and row.harness_fixed_s > 0 and row.harness_cli_s >= row.harness_fixed_s
    # Same weights, same order, same optimizer: both sides end at (nearly) the same test mse.
    assert row.raw_metric == pytest.approx(row.harness_metric, rel=1e-3)
    table = capsys.readouterr().out
    assert "harness/raw" in table and "jax" in table and "linear_regression" in table
    assert json.loads(out.read_text())[0]["ratio"] == pytest.approx(row.ratio)
