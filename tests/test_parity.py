"""The three frameworks at parity: from the task's initial weights, torch, tensorflow and jax compute the same
initial loss (1e-5 relative) on every task, and after one epoch in the same batch order their test accuracies
agree within half a percentage point. One `bench run` of the three backends, each cell in its own process;
another of the three Keras backends on the MLP, which must agree with them the same way."""

from __future__ import annotations

import importlib.util
import itertools
import os

import pytest

from harness import results
from tests.conftest import bench

BACKENDS = {"torch": "torch", "tensorflow": "tensorflow", "jax": "jax"}
KERAS = ("keras-tensorflow", "keras-jax", "keras-torch")
MNIST = ("mnist_mlp", "mnist_cnn", "mnist_lstm")
# A subset keeps the eager LSTM of JAX (op by op) to seconds; 48 steps of Adam is well past the first
# few where rounding could flip many predictions.
TRAIN, TEST = 6144, 2000

pytestmark = [pytest.mark.slow,  # a bench run of every backend and task: minutes; CI's second step
              pytest.mark.skipif(any(importlib.util.find_spec(m) is None for m in BACKENDS.values()),
                                reason="parity needs torch, tensorflow and jax installed")]


@pytest.fixture(scope="module")
def one_epoch(tmp_path_factory):
    out = tmp_path_factory.mktemp("parity")
    env = dict(os.environ, BENCH_DISABLE_PLUGIN_AUTOLOAD="1")
    # --quick for its 5 latency steps; the sizes given win over its own.
    done = bench("run", "--backend", ",".join(BACKENDS), "--mode", "eager", "--quick", "--train-size",
                 str(TRAIN), "--test-size", str(TEST), "--out", str(out), env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    df = results.load(root=out)
    assert set(df["status"]) == {"ok"} and len(df) == len(BACKENDS) * 4
    return df.set_index(["task", "backend"])


@pytest.fixture(scope="module")
def keras_one_epoch(tmp_path_factory):
    if importlib.util.find_spec("keras") is None:
        pytest.skip("the Keras backends need keras installed")
    out = tmp_path_factory.mktemp("parity-keras")
    env = dict(os.environ, BENCH_DISABLE_PLUGIN_AUTOLOAD="1")
    done = bench("run", "--backend", ",".join(KERAS), "--task", "mnist_mlp", "--mode", "eager", "--quick",
                 "--train-size", str(TRAIN), "--test-size", str(TEST), "--out", str(out), env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    df = results.load(root=out)
    assert set(df["status"]) == {"ok"} and len(df) == len(KERAS)
    return df.set_index(["task", "backend"])


def test_keras_and_native_backends_agree_after_one_epoch_of_the_mlp(one_epoch, keras_one_epoch):
    both = [one_epoch.loc[("mnist_mlp", b)] for b in BACKENDS] + [keras_one_epoch.loc[("mnist_mlp", b)] for b in KERAS]
    accuracy = {row.name[1]: row.metric_value for row in both}
    assert max(accuracy.values()) - min(accuracy.values()) <= 0.005, accuracy
    assert min(accuracy.values()) > 0.5, accuracy
    losses = {row.name[1]: row.initial_loss for row in both}
    for a, b in itertools.combinations(losses, 2):
        assert losses[a] == pytest.approx(losses[b], rel=1e-5), losses


@pytest.mark.parametrize("task", ["linear_regression", *MNIST])
def test_initial_losses_agree_within_1e5(one_epoch, task):
    losses = {b: one_epoch.loc[(task, b), "initial_loss"] for b in BACKENDS}
    for a, b in itertools.combinations(BACKENDS, 2):
        assert losses[a] == pytest.approx(losses[b], rel=1e-5), losses


@pytest.mark.parametrize("task", MNIST)
def test_accuracies_after_one_epoch_agree_within_half_a_point(one_epoch, task):
    accuracy = {b: one_epoch.loc[(task, b), "metric_value"] for b in BACKENDS}
    assert max(accuracy.values()) - min(accuracy.values()) <= 0.005, accuracy
    assert min(accuracy.values()) > 0.5, accuracy  # trained, not three copies of chance


# What a one-epoch CPU cell can't have: no steady epoch after the first (so no throughput or first-epoch
# excess), no accelerator memory, and no time-to-target when one epoch on a subset stays under the target;
# run here, it has no GPU (gpu_uuid) and no cluster job (job_id).
NOT_APPLICABLE = {"steady_epoch_s", "first_epoch_excess_s", "samples_per_s", "peak_device_mb", "time_to_target_s",
                  "epochs_to_target", "gpu_uuid", "job_id",
                  # one epoch: no steady epoch to time, alone or in blocks; bench's own interpreter, no --python,
                  # so no lockstep group (tests/test_lockstep.py fills those)
                  "steady_epoch_method", "steady_epoch_blocks_s", "python", "lockstep", "lockstep_wait_s",
                  # an inference cell's columns (docs/inference-and-energy.md), and energy: no RAPL or NVML here
                  *(c for c in results.SCHEMA if c.startswith("infer_")), "energy_j", "epoch_j", "samples_per_j"}
ENVIRONMENT = ("env_cpu_model", "env_usable_cores", "env_ram_gb", "env_os", "env_python", "env_harness_version",
               "env_git_commit", "env_gpu_count", "version_numpy")


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_real_cell_fills_every_schema_column(one_epoch, backend):
    row = one_epoch.loc[("mnist_mlp", backend)]
    assert row.name == ("mnist_mlp", backend)  # task and backend are the fixture's index
    empty = {c for c in results.SCHEMA if c not in ("env", "task", "backend") and (row[c] is None or row[c] != row[c])}
    assert empty <= NOT_APPLICABLE, sorted(empty - NOT_APPLICABLE)
    assert row.status == "ok" and row.metric == "accuracy" and 0.5 < row.metric_value <= 1
    versions = [c for c in row.index if c.startswith("version_") and backend in c]
    assert versions, "the framework's version is not in the environment"
    for column in (*ENVIRONMENT, *versions):
        assert row[column] is not None and row[column] == row[column], column
    assert row.train_s > 0 and row.first_epoch_s > 0 and row.import_s > 0 and row.initial_loss_s > 0
