"""L1 beside coupled L2 (issue 22): the rule and objective in harness.api.Hyperparams, both penalties as grid
axes with cell ids of their own, refused (never ignored) where a backend does not declare them, recorded in
every record, and the trained model's training-split metrics beside the test ones (the train-test gap).

The backends' own L1 updates are checked against the NumPy rule by the conformance suite
(harness/conformance/test_optimizers.py; its negative controls are in test_conformance.py), their objectives
with both penalties by test_weights.py, and their accuracy with L1 after one MLP epoch by test_parity_l1.py."""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import pytest

from harness import results
from harness.api import Cell, Hyperparams, class_ref
from harness.cell.worker import run_cell
from harness.cell.worker_phases import TRAIN_EVAL_SAMPLES
from harness.cli.main import main
from harness.conformance.update_rules import ReferenceOptimizer
from harness.measure import metrics
from harness.report.summary import summary, varying_keys
from harness.run.runner import make_record
from tasks.linear_regression import LinearRegression
from tasks.mnist_tasks import MnistMLP
from tests.test_numpy_plugin import EXAMPLE

if str(EXAMPLE) not in sys.path:
    sys.path.insert(0, str(EXAMPLE))
from bench_numpy.backend import NumpyBackend  # noqa: E402  (needs the path above)


def mlp_cell(**hp) -> Cell:
    return Cell("torch", "mnist_mlp", "eager", "cpu", MnistMLP().hyperparams(**hp))


# -- the rule and the objective ----------------------------------------------------------------------

def test_the_reference_rule_adds_l1_sign_with_sign_of_zero_zero():
    """One SGD step from w = (0, 2, -3) with a zero gradient: only the L1 and L2 terms move it, and the weight
    at exactly 0 stays there (sign(0) = 0)."""
    hp = Hyperparams(optimizer="sgd", lr=0.1, l1=0.5, weight_decay=0.2)
    w = {"kernel": np.array([0.0, 2.0, -3.0])}
    new = ReferenceOptimizer(hp, w).step(w, {"kernel": np.zeros(3)})
    assert new["kernel"] == pytest.approx([0.0, 2.0 - 0.1 * (0.5 + 0.4), -3.0 - 0.1 * (-0.5 - 0.6)])


def test_the_penalty_is_l1_norm_plus_half_weight_decay_squared_norm_over_every_parameter():
    weights = [{}, {"kernel": np.array([[1.0, -2.0]], np.float32), "bias": np.array([0.0, 3.0], np.float32)}]
    assert metrics.penalty(weights, l1=0.1, weight_decay=0.0) == pytest.approx(0.1 * 6)
    assert metrics.penalty(weights, l1=0.0, weight_decay=0.2) == pytest.approx(0.1 * 14)
    assert metrics.penalty(weights, l1=0.1, weight_decay=0.2) == pytest.approx(0.6 + 1.4)
    assert metrics.penalty(weights, 0.0, 0.0) == 0.0


# -- cells, ids, the grid ------------------------------------------------------------------------------

def test_ids_without_penalties_are_as_before_and_each_penalty_gets_its_own():
    assert mlp_cell().cell_id == "torch-mnist_mlp-eager-cpu-fp32-adam-b128-e5-lr0.001-s0-r0"  # older runs resume
    assert mlp_cell(weight_decay=1e-4, l1=1e-5).cell_id == \
        "torch-mnist_mlp-eager-cpu-fp32-adam-b128-e5-lr0.001-wd0.0001-l11e-05-s0-r0"
    ids = {mlp_cell(weight_decay=wd, l1=l1).cell_id for wd in (0.0, 1e-4) for l1 in (0.0, 1e-4)}
    assert len(ids) == 4


def test_a_backend_that_does_not_declare_l1_refuses_its_cells():
    cell = Cell("numpy", "mnist_mlp", "eager", "cpu", MnistMLP().hyperparams(l1=1e-4))

    class Older(NumpyBackend):  # written before L1: the default declaration
        penalties = frozenset({"weight_decay"})

    assert NumpyBackend.unsupported_reason(MnistMLP(), cell) is None
    assert Older.unsupported_reason(MnistMLP(), cell).startswith("penalty l1 not implemented")
    assert Older.unsupported_reason(MnistMLP(), mlp_cell(weight_decay=1e-3)) is None


def test_both_penalties_are_grid_axes_and_a_backend_without_l1_skips_its_cells(tmp_path, capsys, fake_plugin):
    out = tmp_path / "results"
    code = main(["run", "--backend", "fake", "--task", "linear_regression", "--mode", "eager", "--epochs", "1",
                 "--weight-decay", "0,1e-3", "--l1", "0,1e-4", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    df = results.load(root=out)
    assert len(df) == 4 and df["cell_id"].nunique() == 4
    assert sorted(zip(df["weight_decay"], df["l1"])) == [(0.0, 0.0), (0.0, 1e-4), (1e-3, 0.0), (1e-3, 1e-4)]
    skipped = df[df["l1"] > 0]
    assert set(skipped["status"]) == {"skipped"}  # the fake declares coupled L2 only
    assert all(m.startswith("penalty l1 not implemented") for m in skipped["message"])
    assert set(df[df["l1"] == 0]["status"]) == {"ok"}


@pytest.mark.parametrize("args,message", [
    (["--l1=-1e-4"], "--l1 must be a number >= 0, not '-1e-4'"),
    (["--l1", "nan"], "--l1 must be a number >= 0, not 'nan'"),
    (["--l1", "1e-4,1e-4"], "--l1 lists 0.0001 twice"),
    (["--weight-decay", "0,,1"], "--weight-decay takes a comma-separated list without empty items"),
    (["--weight-decay", "-1"], "--weight-decay must be a number >= 0, not '-1'"),
])
def test_bad_penalties_are_one_line_exit_2(args, message, tmp_path, capsys, fake_plugin):
    out = tmp_path / "results"
    assert main(["run", "--backend", "fake", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bench: error: ") and message in err and err.count("\n") == 1
    assert not out.exists()


# -- records and reports ---------------------------------------------------------------------------

def _record(l1: float, repeat: int = 0, run: str = "run-a") -> dict:
    cell = Cell("torch", "mnist_mlp", "eager", "cpu", MnistMLP().hyperparams(l1=l1), repeat=repeat)
    return results.flatten(make_record(run, cell, {}, {"status": "ok", "train_s": 1.0, "metric_value": 0.97,
                                                       "train_metric_value": 0.99}, "1"))


def test_records_carry_l1_and_reports_keep_configurations_apart():
    s = summary(pd.DataFrame([_record(l1, r) for l1 in (0.0, 1e-4) for r in (0, 1)]))
    assert sorted(s["l1"]) == [0.0, 1e-4] and list(s["repeats"]) == [2, 2]
    assert "l1" in varying_keys(s) and "weight_decay" not in varying_keys(s)
    assert "l1" not in varying_keys(summary(pd.DataFrame([_record(0.0)])))


def test_records_written_before_l1_existed_read_as_l1_zero(tmp_path):
    run = tmp_path / "old-run"
    run.mkdir()
    old = {k: v for k, v in _record(0.0).items() if k not in ("l1", "train_metrics", "train_metric_value")}
    (run / results.RECORDS).write_text(json.dumps(old) + "\n")
    df = results.load([run])
    assert df["l1"].tolist() == [0.0] and df["train_metric_value"].isna().all()


# -- a real cell: the objective's parity check with both penalties, and the training split's metrics -----

def numpy_cell(task, **hp) -> Cell:
    return Cell("numpy", task.name, "eager", "cpu", task().hyperparams(epochs=1, **hp), train_size=512,
                test_size=256, latency_steps=0, backend_ref=class_ref(NumpyBackend), task_ref=class_ref(task))


def test_a_cell_checks_its_objective_with_both_penalties_and_scores_the_training_split():
    out = run_cell(numpy_cell(MnistMLP, l1=1e-3, weight_decay=1e-2))
    assert out["status"] == "ok", out.get("message")
    plain = run_cell(numpy_cell(MnistMLP))
    weights = MnistMLP().init_weights(0)
    penalty = metrics.penalty(weights, 1e-3, 1e-2)
    assert penalty > 1.0  # large beside the data loss (~2.3): a reference without it could not agree
    assert out["initial_loss_ref"] == pytest.approx(plain["initial_loss_ref"] + penalty, rel=1e-12)
    assert out["initial_loss"] == pytest.approx(out["initial_loss_ref"], rel=1e-5)
    train = out["train_metrics"]
    assert train["samples"] == min(512, TRAIN_EVAL_SAMPLES) and out["train_metric_value"] == train["accuracy"]
    assert 0 <= train["accuracy"] <= 1 and train["loss"] > 0 and out["train_eval_s"] >= 0


def test_the_training_split_score_is_the_trained_models():
    out = run_cell(numpy_cell(LinearRegression, optimizer="sgd"))
    assert out["status"] == "ok", out.get("message")
    assert out["train_metrics"]["samples"] == 512 and out["train_metric_value"] == out["train_metrics"]["mse"]
    data = LinearRegression().load(512, 256)
    w = LinearRegression().init_weights(0)[0]
    untrained = metrics.mean_squared_error(data.x_train @ w["kernel"] + w["bias"], data.y_train)
    assert out["train_metric_value"] < untrained / 10, (out["train_metric_value"], untrained)


def test_the_documented_table_is_what_the_reference_runs_give():
    """docs/regularisation.md's table, row for row, from the committed records (benchmarks/regularisation_table)."""
    from benchmarks.regularisation_table import markdown, table
    from tests.conftest import REPO

    runs = sorted((REPO / "results" / "reference-regularisation-cpu-20261204").glob("*/records.jsonl"))
    assert len(runs) == 6
    rows = markdown(table(results.load([r.parent for r in runs]))).splitlines()
    doc = (REPO / "docs" / "regularisation.md").read_text().splitlines()
    assert len(rows) == 9 and all(row in doc for row in rows), [row for row in rows if row not in doc]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["torch", "tensorflow", "jax"])
def test_native_backend_follows_the_l1_rule_and_adds_both_penalties_to_its_loss(backend, tmp_path):
    """The conformance suite's L1 and objective checks on a built-in native backend, in every mode (the Keras
    backends get them in test_conformance.py, the whole suite with BENCH_CONFORMANCE_BUILTINS=1)."""
    from harness.plugins.registry import build_registry
    from tests.test_conformance import conformance, failed

    registry, _ = build_registry()
    if backend not in registry.backends or not registry.backends[backend].availability().ok:
        pytest.skip(f"{backend} is not available here")
    code, outcomes, output = conformance(backend, tmp_path, "test_optimizers", "test_weights",
                                         select="l1 or penalties")
    assert code == 0, output
    assert not failed(outcomes)
    assert sum(o == "passed" for o in outcomes.values()) == 2 * 5 + 2 * 4, output  # 2 modes: 5 optimizers, 4 tasks
