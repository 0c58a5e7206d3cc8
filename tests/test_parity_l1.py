"""Parity with an L1 penalty (issue 22): from the task's initial weights every backend's initial objective (the
data loss plus l1 * ||w||_1) agrees with the float64 NumPy reference within 1e-5, and after one epoch of the
MLP in the same batch order, with L1 in every update, the native and Keras backends' test accuracies agree
within half a percentage point. One `bench run` of the six backends, each cell in its own process."""

from __future__ import annotations

import importlib.util
import os

import pytest

from harness import results
from tests.conftest import bench

BACKENDS = ("torch", "tensorflow", "jax", "keras-tensorflow", "keras-jax", "keras-torch")
L1 = 1e-4  # the README table's middle strength: its penalty (~0.4 at the start) is a sixth of the MLP's loss
TRAIN, TEST = 6144, 2000  # as test_parity.py: 48 steps of Adam, well past the first few where rounding flips many

FRAMEWORKS = ("torch", "tensorflow", "jax", "keras")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(any(importlib.util.find_spec(m) is None for m in FRAMEWORKS),
                                 reason="L1 parity needs torch, tensorflow, jax and keras installed")]


@pytest.fixture(scope="module")
def with_l1(tmp_path_factory):
    out = tmp_path_factory.mktemp("parity-l1")
    env = dict(os.environ, BENCH_DISABLE_PLUGIN_AUTOLOAD="1")
    done = bench("run", "--backend", ",".join(BACKENDS), "--task", "mnist_mlp", "--mode", "eager", "--quick",
                 "--l1", str(L1), "--train-size", str(TRAIN), "--test-size", str(TEST), "--out", str(out), env=env,
                 timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    df = results.load(root=out)
    assert set(df["status"]) == {"ok"} and sorted(df["backend"]) == sorted(BACKENDS)
    assert set(df["l1"]) == {L1}
    return df.set_index("backend")


def test_every_backends_initial_objective_with_l1_agrees_with_the_reference(with_l1):
    for backend, row in with_l1.iterrows():
        assert abs(row.initial_loss - row.initial_loss_ref) <= 1e-5 * row.initial_loss_ref, \
            (backend, row.initial_loss, row.initial_loss_ref)
    ref = with_l1["initial_loss_ref"]
    assert ref.nunique() == 1 and ref.iloc[0] > 2.5  # the data loss (~2.3) and the penalty (~0.4): one reference


def test_accuracies_after_one_epoch_with_l1_agree_within_half_a_point(with_l1):
    accuracy = with_l1["metric_value"].to_dict()
    assert max(accuracy.values()) - min(accuracy.values()) <= 0.005, accuracy
    assert min(accuracy.values()) > 0.5, accuracy  # trained, not six copies of chance


def test_the_training_split_is_scored_in_every_backend_alike(with_l1):
    train = with_l1["train_metric_value"].to_dict()
    assert max(train.values()) - min(train.values()) <= 0.005, train
    assert set(with_l1["train_metrics"].map(lambda m: m["samples"])) == {TRAIN}
