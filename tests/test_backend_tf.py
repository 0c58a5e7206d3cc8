"""The TensorFlow backend: every task and mode end to end, exact weight layouts, the initial loss
against the float64 NumPy reference, and each optimizer's update rule against NumPy."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from harness.api import Cell, Hyperparams, class_ref
from harness.cell.worker import run_cell
from harness.measure import metrics as m
from harness.measure import reference
from tasks.linear_regression import LinearRegression
from tasks.mnist_tasks import MnistCNN, MnistLSTM, MnistMLP
from tests.compile_checks import assert_compile_measured, assert_nothing_compiled

tf = pytest.importorskip("tensorflow")

from backends.tf_backend import TensorFlowBackend  # noqa: E402  (after the skip)

TASKS = (LinearRegression, MnistMLP, MnistCNN, MnistLSTM)
MODES = ("eager", "compiled")


def make_cell(task_cls, mode, hp=None, device="cpu", precision="fp32", train_size=512, test_size=256, **kw) -> Cell:
    return Cell("tensorflow", task_cls.name, mode, device, hp or task_cls().hyperparams(epochs=1),
                precision=precision, train_size=train_size, test_size=test_size, threads=1, latency_steps=0,
                backend_ref=class_ref(TensorFlowBackend), task_ref=class_ref(task_cls), **kw)


@pytest.fixture(scope="module")
def backend() -> TensorFlowBackend:
    b = TensorFlowBackend()
    b.import_framework(make_cell(LinearRegression, "eager"))  # one import, shared by every test here
    return b


def build(backend, task_cls, mode, weights=None, hp=None, train_size=64, test_size=32):
    task = task_cls()
    cell = make_cell(task_cls, mode, hp, train_size=train_size, test_size=test_size)
    data = task.load(train_size, test_size)
    weights = weights if weights is not None else task.init_weights(0)
    return backend.build(task, cell, data, weights), task, data


def random_weights(task, seed: int = 1):
    """The task's shapes filled with non-trivial values, biases included."""
    rng = np.random.default_rng(seed)
    return [{k: (rng.standard_normal(v.shape) * 0.2).astype(np.float32) for k, v in layer.items()}
            for layer in task.init_weights(0)]


# -- contract -----------------------------------------------------------------


def test_module_does_not_import_tensorflow():
    code = "import sys, backends.tf_backend; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_registered_as_builtin():
    from harness.plugins.registry import build_registry

    registry, _ = build_registry()
    assert registry.backends["tensorflow"] is TensorFlowBackend


def test_reduced_precision_offered_on_cuda_only():
    task = MnistMLP()
    assert "cuda only" in TensorFlowBackend.unsupported_reason(task, make_cell(MnistMLP, "eager", precision="tf32"))
    assert TensorFlowBackend.unsupported_reason(task, make_cell(MnistMLP, "eager", device="cuda",
                                                                precision="bf16")) is None


def test_configure_sets_tensorflows_variables_and_keeps_the_users(monkeypatch):
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    cpu = TensorFlowBackend().configure(make_cell(MnistMLP, "eager"))
    assert cpu == {"TF_CPP_MIN_LOG_LEVEL": "0", "TF_ENABLE_ONEDNN_OPTS": "1"}
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL")
    cuda = TensorFlowBackend().configure(make_cell(MnistMLP, "compiled", device="cuda"))
    assert cuda["TF_CPP_MIN_LOG_LEVEL"] == "2" and cuda["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"


# -- end to end through the worker ---------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("task_cls", TASKS, ids=lambda t: t.name)
def test_one_epoch_through_the_worker(backend, task_cls, mode):
    result = run_cell(make_cell(task_cls, mode))
    assert result["status"] == "ok", result.get("message")
    assert result["initial_loss"] == pytest.approx(result["initial_loss_ref"], rel=1e-5)
    assert np.isfinite(result["metrics"]["loss"]) and result["metrics"]["loss"] < result["initial_loss_ref"]
    if task_cls.metric == "accuracy":
        assert result["metrics"]["accuracy"] > 0.2  # well above chance after one small epoch
    details = result["details"]
    assert details["intra_op_threads"] == 1 and details["tf32_enabled"] is False
    assert ("op by op" in details["compiled"]) == (mode == "eager")
    if mode == "eager":
        assert_nothing_compiled(result)
    else:
        assert_compile_measured(result)
        assert "tracing only" in result["compile_source"]


def test_compile_time_leaves_out_what_scoring_traces(backend):
    """predict and loss trace their own tf.functions: TF's counter moves, the cell's compile time does not."""
    from backends.tf_backend import tracing_seconds_reader

    state, _, _ = build(backend, MnistMLP, "compiled", train_size=256)
    backend.train_epoch(state, np.arange(256).reshape(2, 128).astype(np.int64))
    trained, _ = backend.compile_time(state)
    tracing = tracing_seconds_reader()
    before = tracing()
    backend.predict(state, "test")
    backend.loss(state, np.arange(16))
    assert tracing() > before  # scoring did trace
    assert backend.compile_time(state)[0] == trained > 0


# -- exactness -----------------------------------------------------------------


@pytest.mark.parametrize("task_cls", TASKS, ids=lambda t: t.name)
def test_weights_round_trip_exactly(backend, task_cls):
    weights = random_weights(task_cls())
    state, _, _ = build(backend, task_cls, "eager", weights)
    got = backend.get_weights(state)
    assert [sorted(layer) for layer in got] == [sorted(layer) for layer in weights]
    for mine, theirs in zip(got, weights):
        for key in theirs:
            assert mine[key].dtype == np.float32 and mine[key].shape == theirs[key].shape
            np.testing.assert_array_equal(mine[key], theirs[key])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("task_cls", TASKS, ids=lambda t: t.name)
def test_initial_loss_and_outputs_match_the_float64_reference(backend, task_cls, mode):
    task = task_cls()
    weights = random_weights(task, seed=2)
    state, _, data = build(backend, task_cls, mode, weights)
    indices = np.arange(16) * 3
    ref_out = reference.forward(task.model(), weights, data.x_train[indices])
    ref_loss = m.loss_value(task.loss, ref_out, data.y_train[indices])
    assert backend.loss(state, indices) == pytest.approx(ref_loss, rel=1e-5)
    outputs = backend.predict(state, "test")
    np.testing.assert_allclose(outputs, reference.forward(task.model(), weights, data.x_test), rtol=1e-4, atol=1e-4)


def test_predict_covers_a_split_larger_than_one_batch(backend):
    state, task, data = build(backend, MnistMLP, "eager", train_size=64, test_size=2345)
    outputs = backend.predict(state, "test")
    assert outputs.shape == (2345, 10)
    np.testing.assert_allclose(outputs, reference.forward(task.model(), task.init_weights(0), data.x_test),
                               rtol=1e-4, atol=1e-4)


# -- optimizers against NumPy ---------------------------------------------------

# Far from every framework default, and eps large enough that its placement changes the result.
SPEC = dict(weight_decay=0.05, momentum=0.8, beta1=0.8, beta2=0.95, eps=1e-2, rho=0.8, initial_accumulator=0.3)


def numpy_step(hp: Hyperparams, params: list[np.ndarray], grads: list[np.ndarray], slots: dict, t: int) -> None:
    """One step of harness.api.Hyperparams' update rules, in float64, in place."""
    for i, (w, g) in enumerate(zip(params, grads)):
        g = g + hp.weight_decay * w
        if hp.optimizer == "sgd":
            w -= hp.lr * g
        elif hp.optimizer == "momentum":
            v = slots.setdefault(("v", i), np.zeros_like(w))
            v[...] = hp.momentum * v + g
            w -= hp.lr * v
        elif hp.optimizer == "adam":
            mo = slots.setdefault(("m", i), np.zeros_like(w))
            v = slots.setdefault(("v", i), np.zeros_like(w))
            mo[...] = hp.beta1 * mo + (1 - hp.beta1) * g
            v[...] = hp.beta2 * v + (1 - hp.beta2) * g * g
            w -= hp.lr * (mo / (1 - hp.beta1**t)) / (np.sqrt(v / (1 - hp.beta2**t)) + hp.eps)
        elif hp.optimizer == "rmsprop":
            s = slots.setdefault(("s", i), np.zeros_like(w))
            s[...] = hp.rho * s + (1 - hp.rho) * g * g
            w -= hp.lr * g / (np.sqrt(s) + hp.eps)
        elif hp.optimizer == "adagrad":
            a = slots.setdefault(("a", i), np.full_like(w, hp.initial_accumulator))
            a += g * g
            w -= hp.lr * g / (np.sqrt(a) + hp.eps)


def linear_grads(params, x, y):
    kernel, bias = params
    d = 2 * (x @ kernel + bias - y) / y.size
    return [x.T @ d, d.sum(0)]


def mlp_grads(params, x, y):
    w1, b1, w2, b2 = params
    x = x.reshape(len(x), -1)
    h = x @ w1 + b1
    a = np.maximum(h, 0)
    z = a @ w2 + b2
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    d = p
    d[np.arange(len(y)), y] -= 1
    d /= len(y)
    dh = (d @ w2.T) * (h > 0)
    return [x.T @ dh, dh.sum(0), a.T @ d, d.sum(0)]


def check_against_numpy(backend, task_cls, mode, optimizer, grads_fn, batch_size, steps, lr):
    task = task_cls()
    hp = task.hyperparams(optimizer=optimizer, lr=lr, batch_size=batch_size, **SPEC)
    weights = random_weights(task, seed=3)
    state, _, data = build(backend, task_cls, mode, weights, hp, train_size=batch_size * steps)
    order = np.random.default_rng(0).permutation(batch_size * steps).reshape(steps, batch_size).astype(np.int64)
    backend.train_epoch(state, order)
    backend.sync(state)
    got = [v for layer in backend.get_weights(state) for v in layer.values()]

    start = [v.astype(np.float64) for layer in weights for v in layer.values()]
    params = [w.copy() for w in start]
    slots: dict = {}
    for t, idx in enumerate(order, start=1):
        numpy_step(hp, params, grads_fn(params, data.x_train[idx].astype(np.float64), data.y_train[idx]), slots, t)
    for mine, want, w0 in zip(got, params, start):
        moved = np.abs(want - w0).max()
        assert moved > 1e-4  # the steps really changed this parameter
        assert np.abs(mine - want).max() <= 1e-4 * moved


OPTIMIZERS = ("sgd", "momentum", "adam", "rmsprop", "adagrad")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_optimizer_matches_numpy_on_linear_regression(backend, optimizer, mode):
    check_against_numpy(backend, LinearRegression, mode, optimizer, linear_grads, batch_size=8, steps=4, lr=0.05)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_optimizer_matches_numpy_on_mlp(backend, optimizer):
    check_against_numpy(backend, MnistMLP, "eager", optimizer, mlp_grads, batch_size=16, steps=3, lr=0.01)


def test_compiled_mlp_adam_matches_numpy(backend):
    check_against_numpy(backend, MnistMLP, "compiled", "adam", mlp_grads, batch_size=16, steps=3, lr=0.01)


# -- GPU (run by hand on a machine with a CUDA build of TensorFlow) --------------


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ("fp32", "tf32", "bf16"))
def test_mlp_on_cuda(backend, precision):
    result = run_cell(make_cell(MnistMLP, "compiled", device="cuda", precision=precision))
    if result["status"] == "skipped":
        pytest.skip(result["message"])
    assert result["status"] == "ok", result.get("message")
    assert result["details"]["device"] == "/GPU:0"
    assert result["details"]["tf32_enabled"] is (precision == "tf32")
    assert result["peak_device_mb"] > 0
    assert_compile_measured(result)
    if precision == "fp32":
        assert result["initial_loss"] == pytest.approx(result["initial_loss_ref"], rel=1e-5)


@pytest.mark.gpu
def test_peak_device_memory_leaves_out_the_staged_data(backend):
    """8x the data on the device, the same training: the peak counts training's memory, not the dataset's."""
    small, large = (run_cell(make_cell(MnistMLP, "compiled", device="cuda", train_size=n)) for n in (4096, 32768))
    if small["status"] == "skipped":
        pytest.skip(small["message"])
    assert small["status"] == large["status"] == "ok", (small.get("message"), large.get("message"))
    assert small["peak_device_mb"] > 0
    grew = large["peak_device_mb"] - small["peak_device_mb"]
    assert abs(grew) < 0.25 * (large["data_mb"] - small["data_mb"]), (small["peak_device_mb"], large["peak_device_mb"])


# -- paths this CPU doesn't time, checked for correctness ------------------------


@pytest.mark.parametrize("strategy", ("xla_epoch", "xla_step", "graph_epoch", "graph_step"))
def test_every_compiled_strategy_trains_like_eager(backend, strategy):
    class Pinned(TensorFlowBackend):
        @classmethod
        def compiled_strategy(cls, task_name, device):
            return strategy

    pinned = Pinned()
    hp = LinearRegression().hyperparams(optimizer="adam", lr=0.05, batch_size=8, **SPEC)
    order = np.random.default_rng(1).permutation(64).reshape(8, 8).astype(np.int64)
    results = []
    for b, mode in ((backend, "eager"), (pinned, "compiled")):
        state, _, _ = build(b, LinearRegression, mode, hp=hp)
        assert mode == "eager" or state.facts["strategy"] == strategy
        b.train_epoch(state, order)
        b.train_epoch(state, order[:3])  # a second, shorter epoch: no stale trace
        b.sync(state)
        results.append(b.get_weights(state)[0])
    for key in results[0]:
        np.testing.assert_allclose(results[1][key], results[0][key], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("task_cls", (MnistMLP, MnistCNN, MnistLSTM), ids=lambda t: t.name)
def test_bf16_compute_keeps_fp32_master_weights(backend, task_cls):
    """The cuda bf16 path's casts, run on the CPU kernels: loss close to fp32, weights and grads fp32."""
    task = task_cls()
    cell = make_cell(task_cls, "eager", precision="bf16", train_size=64, test_size=32)
    data = task.load(64, 32)
    state = backend.build(task, cell, data, task.init_weights(0))
    assert state.facts["compute_dtype"] == "bfloat16"
    fp32_state, _, _ = build(backend, task_cls, "eager")
    indices = np.arange(16)
    assert backend.loss(state, indices) == pytest.approx(backend.loss(fp32_state, indices), rel=2e-2)
    backend.train_epoch(state, np.arange(16).reshape(1, 16).astype(np.int64))
    assert all(v.dtype == tf.float32 for v in state.net.variables_in_order)
    assert all(np.isfinite(w).all() for layer in backend.get_weights(state) for w in layer.values())
