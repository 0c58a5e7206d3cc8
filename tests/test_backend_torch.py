"""The PyTorch backend: every task and mode trains, weights round-trip, the forward pass and the
optimizers agree with float64 NumPy references of the spec."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from backends.torch_backend import TorchBackend  # noqa: E402
from harness.api import (
    Cell,  # noqa: E402
    class_ref,  # noqa: E402
)
from harness.cell.worker import run_cell  # noqa: E402
from harness.measure import (
    metrics,
    reference,  # noqa: E402
)
from tasks.linear_regression import LinearRegression  # noqa: E402
from tasks.mnist_tasks import MnistCNN, MnistLSTM, MnistMLP  # noqa: E402
from tests.compile_checks import assert_compile_measured, assert_nothing_compiled  # noqa: E402

pytestmark = pytest.mark.slow  # every task and mode through torch.compile; CI's second step

TASKS = (LinearRegression, MnistMLP, MnistCNN, MnistLSTM)


@pytest.fixture(scope="module", autouse=True)
def _private_compile_cache(tmp_path_factory):
    """Compiled cells write inductor's cache to a temporary folder, not the user's /tmp cache."""
    patch = pytest.MonkeyPatch()
    patch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path_factory.mktemp("inductor")))
    yield
    patch.undo()


def make_cell(task_cls, mode: str = "eager", train_size: int = 512, test_size: int = 256, device: str = "cpu",
              precision: str = "fp32", **hp) -> Cell:
    task = task_cls()
    return Cell("torch", task.name, mode, device, task.hyperparams(**hp), precision=precision,
                train_size=train_size, test_size=test_size, threads=1, latency_steps=2,
                backend_ref=class_ref(TorchBackend), task_ref=class_ref(task_cls))


def build(task_cls, weights=None, mode: str = "eager", train_size: int = 512, **hp):
    """(backend, state, data, weights) for a cell built in this process."""
    task = task_cls()
    cell = make_cell(task_cls, mode, train_size=train_size, **hp)
    backend = TorchBackend()
    backend.import_framework(cell)
    data = task.load(cell.train_size, cell.test_size)
    weights = weights if weights is not None else task.init_weights(0)
    return backend, backend.build(task, cell, data, weights), data, weights


def random_weights(task_cls, seed: int = 1, scale: float = 0.1):
    """Non-trivial weights: every parameter, biases included, gets random values."""
    rng = np.random.default_rng(seed)
    return [{k: (v + scale * rng.standard_normal(v.shape)).astype(np.float32) for k, v in layer.items()}
            for layer in task_cls().init_weights(seed)]


# -- the whole cell, as the worker runs it -----------------------------------------


@pytest.fixture(scope="module")
def cell_results():
    results = {}
    for task_cls in TASKS:
        for mode in TorchBackend.modes:
            results[task_cls.name, mode] = run_cell(make_cell(task_cls, mode, epochs=1))
    return results


@pytest.mark.parametrize("task_cls", TASKS, ids=lambda t: t.name)
@pytest.mark.parametrize("mode", TorchBackend.modes)
def test_one_epoch_of_every_task_and_mode(cell_results, task_cls, mode):
    r = cell_results[task_cls.name, mode]
    assert r["status"] == "ok", r.get("message")
    assert r["initial_loss"] == pytest.approx(r["initial_loss_ref"], rel=1e-5)
    assert np.isfinite(r["metric_value"])
    assert r["metrics"]["loss"] < r["initial_loss_ref"], "one epoch of training did not lower the test loss"
    assert r["details"]["torch_threads"] == 1
    assert r["details"]["tf32_matmul"] is False and r["details"]["matmul_precision"] == "highest"
    assert r["peak_device_mb"] is None
    assert len(r["epoch_s"]) == 1 and r["step_ms_p50"] > 0


@pytest.mark.parametrize("task_cls", TASKS, ids=lambda t: t.name)
@pytest.mark.parametrize("mode", TorchBackend.modes)
def test_compile_time_is_what_torch_compile_reports(cell_results, task_cls, mode):
    r = cell_results[task_cls.name, mode]
    if mode == "eager":
        assert_nothing_compiled(r)
    else:
        assert_compile_measured(r)
        assert r["compile_source"].startswith("torch._dynamo")
        assert r["compile_s"] < r["first_epoch_s"]  # torch.compile compiles at the first call; the toolchain
        # warm-up at setup is not this model's compile (details' inductor_toolchain_s)


@pytest.mark.parametrize("task_cls", TASKS, ids=lambda t: t.name)
def test_compiled_mode_computes_what_eager_computes(cell_results, task_cls):
    eager, compiled = cell_results[task_cls.name, "eager"], cell_results[task_cls.name, "compiled"]
    assert compiled["metrics"]["loss"] == pytest.approx(eager["metrics"]["loss"], rel=1e-4)


# -- weights and forward pass ----------------------------------------------------


@pytest.mark.parametrize("task_cls", TASKS, ids=lambda t: t.name)
def test_weights_round_trip_exactly(task_cls):
    weights = random_weights(task_cls)
    backend, state, _, _ = build(task_cls, weights)
    got = backend.get_weights(state)
    assert len(got) == len(weights)
    for want_layer, got_layer in zip(weights, got):
        assert set(got_layer) == set(want_layer)
        for name, want in want_layer.items():
            assert got_layer[name].dtype == np.float32 and got_layer[name].shape == want.shape
            np.testing.assert_array_equal(got_layer[name], want)


@pytest.mark.parametrize("task_cls", TASKS, ids=lambda t: t.name)
def test_initial_loss_and_outputs_match_the_float64_reference(task_cls):
    task = task_cls()
    weights = random_weights(task_cls, seed=3)
    backend, state, data, _ = build(task_cls, weights)
    idx = np.arange(0, 256, 2)
    want = metrics.loss_value(task.loss, reference.forward(task.model(), weights, data.x_train[idx]),
                              data.y_train[idx])
    assert backend.loss(state, idx) == pytest.approx(want, rel=1e-5)
    outputs = backend.predict(state, "test")
    ref_out = reference.forward(task.model(), weights, data.x_test)
    assert outputs.shape == ref_out.shape
    np.testing.assert_allclose(outputs, ref_out, rtol=1e-4, atol=1e-4)


def test_lstm_hidden_bias_stays_a_frozen_zero():
    backend, state, data, weights = build(MnistLSTM, random_weights(MnistLSTM), optimizer="sgd", lr=0.5)
    order = np.arange(256, dtype=np.int64).reshape(2, 128)
    backend.train_epoch(state, order)
    hidden_biases = [p for name, p in state.net.named_parameters() if name.endswith("bias_hh_l0")]
    assert len(hidden_biases) == 3
    assert all(not p.requires_grad and not p.detach().any() for p in hidden_biases)
    assert not np.array_equal(backend.get_weights(state)[0]["bias"], weights[0]["bias"])


# -- optimizers against the spec -------------------------------------------------


def spec_update(name: str, hp, w: np.ndarray, g: np.ndarray, slot: dict, t: int) -> np.ndarray:
    """One step of the update rule in harness.api.Hyperparams, in float64."""
    g = g + hp.weight_decay * w
    if name == "sgd":
        return w - hp.lr * g
    if name == "momentum":
        slot["v"] = hp.momentum * slot.get("v", 0.0) + g
        return w - hp.lr * slot["v"]
    if name == "adam":
        slot["m"] = hp.beta1 * slot.get("m", 0.0) + (1 - hp.beta1) * g
        slot["v"] = hp.beta2 * slot.get("v", 0.0) + (1 - hp.beta2) * g * g
        m_hat = slot["m"] / (1 - hp.beta1**t)
        v_hat = slot["v"] / (1 - hp.beta2**t)
        return w - hp.lr * m_hat / (np.sqrt(v_hat) + hp.eps)
    if name == "rmsprop":
        slot["s"] = hp.rho * slot.get("s", 0.0) + (1 - hp.rho) * g * g
        return w - hp.lr * g / (np.sqrt(slot["s"]) + hp.eps)
    if name == "adagrad":
        slot["a"] = slot.get("a", hp.initial_accumulator) + g * g
        return w - hp.lr * g / (np.sqrt(slot["a"]) + hp.eps)
    raise ValueError(name)


def linear_regression_grads(w: list[dict], x: np.ndarray, y: np.ndarray) -> list[dict]:
    d_pred = 2.0 * (x @ w[0]["kernel"] + w[0]["bias"] - y) / y.size
    return [{"kernel": x.T @ d_pred, "bias": d_pred.sum(0)}]


def mlp_grads(w: list[dict], x: np.ndarray, y: np.ndarray) -> list[dict]:
    """Flatten -> Dense -> ReLU -> Dense with mean softmax cross-entropy."""
    x = x.reshape(len(x), -1)
    h = x @ w[1]["kernel"] + w[1]["bias"]
    a = np.maximum(h, 0.0)
    z = a @ w[3]["kernel"] + w[3]["bias"]
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(len(y)), y] -= 1.0
    dz = p / len(y)
    dh = (dz @ w[3]["kernel"].T) * (h > 0)
    return [{}, {"kernel": x.T @ dh, "bias": dh.sum(0)}, {}, {"kernel": a.T @ dz, "bias": dz.sum(0)}]


def spec_training(grads, hp, weights, data, order) -> list[dict]:
    w = [{k: v.astype(np.float64) for k, v in layer.items()} for layer in weights]
    slots = [{k: {} for k in layer} for layer in w]
    for t, idx in enumerate(order, start=1):
        g = grads(w, data.x_train[idx].astype(np.float64), data.y_train[idx])
        for i, layer in enumerate(w):
            for k in layer:
                layer[k] = spec_update(hp.optimizer, hp, layer[k], g[i][k], slots[i][k], t)
    return w


OPTIMIZER_CASES = {  # (task, grads, lr): lrs large enough that every rule moves the weights visibly
    LinearRegression: (linear_regression_grads, {"sgd": 0.1, "momentum": 0.05, "adam": 0.05, "rmsprop": 0.01,
                                                 "adagrad": 0.1}),
    MnistMLP: (mlp_grads, {"sgd": 0.1, "momentum": 0.05, "adam": 1e-3, "rmsprop": 1e-3, "adagrad": 0.01}),
}


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam", "rmsprop", "adagrad"])
@pytest.mark.parametrize("task_cls", list(OPTIMIZER_CASES), ids=lambda t: t.name)
def test_optimizer_follows_the_spec(task_cls, optimizer):
    grads, lrs = OPTIMIZER_CASES[task_cls]
    batch, steps = 32, 4
    weights = random_weights(task_cls, seed=5, scale=0.05)
    backend, state, data, _ = build(task_cls, weights, train_size=batch * steps, optimizer=optimizer,
                                    lr=lrs[optimizer], weight_decay=0.01, batch_size=batch)
    hp = state.cell.hp
    order = np.random.default_rng(7).permutation(batch * steps).reshape(steps, batch).astype(np.int64)
    backend.train_epoch(state, order)
    want = spec_training(grads, hp, weights, data, order)
    got = backend.get_weights(state)
    # Adam, RMSprop and Adagrad divide by the gradient's own size, so an element whose gradient
    # is mostly fp32 rounding (a near-cancelling sum over the batch) can differ from float64 by
    # up to ~lr per step. Such elements must be rare; everything else must agree to fp32 accuracy.
    normalized = optimizer in ("adam", "rmsprop", "adagrad")
    for i, layer in enumerate(want):
        for k, value in layer.items():
            moved = np.abs(value - weights[i][k]).max()
            assert moved > 100 * 1e-6, f"{optimizer} barely moved layer {i} {k}; the comparison would be vacuous"
            error = np.abs(got[i][k] - value)
            assert (error > 1e-6 + 1e-5 * np.abs(value)).mean() <= (1e-3 if normalized else 0.0), f"layer {i} {k}"
            np.testing.assert_allclose(got[i][k], value, rtol=1e-5, atol=1e-2 * hp.lr if normalized else 1e-6,
                                       err_msg=f"layer {i} {k}")


def test_compiled_optimizer_step_follows_the_spec():
    weights = random_weights(LinearRegression, seed=5)
    backend, state, data, _ = build(LinearRegression, weights, mode="compiled", train_size=128, optimizer="adam",
                                    lr=0.05, weight_decay=0.01, batch_size=32)
    order = np.arange(128, dtype=np.int64).reshape(4, 32)
    backend.train_epoch(state, order)
    want = spec_training(linear_regression_grads, state.cell.hp, weights, data, order)
    for name in ("kernel", "bias"):
        np.testing.assert_allclose(backend.get_weights(state)[0][name], want[0][name], rtol=1e-5, atol=1e-6)


# -- settings ----------------------------------------------------------------------


def test_optimizers_get_every_hyperparameter_explicitly():
    from backends.torch_optim import optimizer_settings
    from harness.api import Hyperparams

    hp = Hyperparams(lr=0.3, momentum=0.7, beta1=0.8, beta2=0.95, eps=1e-5, rho=0.85, initial_accumulator=0.2,
                     weight_decay=0.04)
    assert optimizer_settings(hp.replace(optimizer="adam"))[1] == {
        "lr": 0.3, "weight_decay": 0.04, "maximize": False, "differentiable": False, "betas": (0.8, 0.95),
        "eps": 1e-5, "amsgrad": False, "decoupled_weight_decay": False}
    cls, kwargs = optimizer_settings(hp.replace(optimizer="rmsprop"))
    assert cls is torch.optim.RMSprop and (kwargs["alpha"], kwargs["centered"], kwargs["momentum"]) == (0.85, False, 0)
    cls, kwargs = optimizer_settings(hp.replace(optimizer="adagrad"))
    assert (kwargs["initial_accumulator_value"], kwargs["lr_decay"], kwargs["eps"]) == (0.2, 0.0, 1e-5)
    assert optimizer_settings(hp.replace(optimizer="sgd"))[1]["momentum"] == 0.0
    assert optimizer_settings(hp.replace(optimizer="momentum"))[1]["momentum"] == 0.7


def test_configure_sets_torchs_variables_and_keeps_the_users(monkeypatch):
    monkeypatch.delenv("TORCHINDUCTOR_VEC_ISA_OK", raising=False)
    monkeypatch.setenv("TORCH_CPP_LOG_LEVEL", "INFO")
    env = TorchBackend().configure(make_cell(MnistMLP, "compiled"))
    assert env == {"TORCH_CPP_LOG_LEVEL": "INFO", "TORCHINDUCTOR_VEC_ISA_OK": "1"}


def test_reduced_precision_is_offered_on_cuda_only():
    task = MnistMLP()
    assert TorchBackend.unsupported_reason(task, make_cell(MnistMLP)) is None
    assert "cuda only" in TorchBackend.unsupported_reason(task, make_cell(MnistMLP, precision="bf16"))
    assert TorchBackend.unsupported_reason(task, make_cell(MnistMLP, device="cuda", precision="bf16")) is None
    assert "precision" in TorchBackend.unsupported_reason(task, make_cell(MnistMLP, device="cuda", precision="fp8"))


def test_cuda_is_skipped_with_a_reason_when_torch_cannot_see_it():
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    assert TorchBackend().device_problem(make_cell(MnistMLP, device="cuda")) == "CUDA not visible to torch"


def test_a_failed_cuda_graph_capture_trains_uncaptured_from_the_same_start():
    from backends.torch_optim import make_optimizer, reset_state
    from backends.torch_train import graphed_step

    hp = MnistMLP.defaults.replace(optimizer="adam")
    results = []
    for capture in (False, True):
        torch.manual_seed(0)
        net = torch.nn.Linear(4, 1)
        params = list(net.parameters())
        optimizer = make_optimizer(params, hp)
        x = torch.arange(32.0).reshape(8, 4) / 32

        def step(idx):
            optimizer.zero_grad(set_to_none=True)
            net(x[idx]).square().mean().backward()
            optimizer.step()

        facts = {}
        run = graphed_step(step, lambda: reset_state(optimizer, hp), params, 4, torch.device("cpu"), facts) \
            if capture else step
        for row in torch.tensor([[0, 1, 2, 3], [4, 5, 6, 7]]):
            run(row)
        results.append([p.detach().clone() for p in params])
        if capture:  # a CPU device has no CUDA graphs: capture fails on the first step, and says so
            assert facts["cuda_graph"].startswith("capture failed, running uncaptured:")
    for a, b in zip(*results):
        assert torch.equal(a, b)


# -- GPU ---------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.parametrize("mode", TorchBackend.modes)
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_cuda_cell_trains_on_the_device(mode, precision):
    r = run_cell(make_cell(MnistMLP, mode, device="cuda", precision=precision, epochs=2, train_size=4096))
    assert r["status"] == "ok", r.get("message")
    assert r["peak_device_mb"] > 0
    if mode == "compiled":
        assert_compile_measured(r)
        assert r["details"]["cuda_graph_capture_s"] > 0 and "CUDA graph capture" in r["compile_source"]
    assert r["details"]["tf32_matmul"] is False
    if precision == "fp32":
        assert r["initial_loss"] == pytest.approx(r["initial_loss_ref"], rel=1e-5)
    if mode == "compiled":
        assert r["details"]["cuda_graph"].startswith("whole step captured")
    assert r["metrics"]["loss"] < r["initial_loss_ref"]


@pytest.mark.gpu
def test_peak_device_memory_leaves_out_the_staged_data():
    """8x the data on the device, the same training: the peak counts training's memory, not the dataset's."""
    small, large = (run_cell(make_cell(MnistMLP, "compiled", device="cuda", epochs=1, train_size=n, test_size=256))
                    for n in (4096, 32768))
    assert small["status"] == large["status"] == "ok", (small.get("message"), large.get("message"))
    assert small["peak_device_mb"] > 0
    grew = large["peak_device_mb"] - small["peak_device_mb"]
    assert abs(grew) < 0.25 * (large["data_mb"] - small["data_mb"]), (small["peak_device_mb"], large["peak_device_mb"])
