"""The JAX backend: every task and mode end to end, exact weight layouts, outputs and the initial
loss against the float64 NumPy reference, and each optimizer's update rule against NumPy."""

from __future__ import annotations

import json
import os
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
from tests.compile_checks import assert_compile_measured

jax = pytest.importorskip("jax")
pytest.importorskip("optax")

from backends.jax_backend import JaxBackend  # noqa: E402  (after the skip)

TASKS = (LinearRegression, MnistMLP, MnistCNN, MnistLSTM)
MODES = ("eager", "compiled")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_cell(task_cls, mode, hp=None, device="cpu", precision="fp32", train_size=512, test_size=256,
              **kw) -> Cell:
    kw.setdefault("latency_steps", 0)
    return Cell("jax", task_cls.name, mode, device, hp or task_cls().hyperparams(epochs=1), precision=precision,
                train_size=train_size, test_size=test_size, backend_ref=class_ref(JaxBackend),
                task_ref=class_ref(task_cls), **kw)


@pytest.fixture(autouse=True)
def _restore_environ():
    """configure() returns JAX_PLATFORMS / XLA_FLAGS that run_cell puts in os.environ: keep them in here."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="module")
def backend() -> JaxBackend:
    b = JaxBackend()
    cell = make_cell(LinearRegression, "eager")
    b.import_framework(cell)  # one import, shared by every test here
    assert b.device_problem(cell) is None
    return b


def build(backend, task_cls, mode, weights=None, hp=None, train_size=64, test_size=32, precision="fp32"):
    task = task_cls()
    cell = make_cell(task_cls, mode, hp, train_size=train_size, test_size=test_size, precision=precision)
    data = task.load(train_size, test_size)
    weights = weights if weights is not None else task.init_weights(0)
    return backend.build(task, cell, data, weights), task, data


def random_weights(task, seed: int = 1, scale: float = 0.2):
    """The task's shapes filled with non-trivial values, biases included."""
    rng = np.random.default_rng(seed)
    return [{k: (rng.standard_normal(v.shape) * scale).astype(np.float32) for k, v in layer.items()}
            for layer in task.init_weights(0)]


# -- contract -----------------------------------------------------------------


def test_module_does_not_import_jax():
    code = "import sys, backends.jax_backend; print('jax' in sys.modules, 'optax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "False False"


def test_registered_as_builtin():
    from harness.plugins.registry import build_registry

    registry, _ = build_registry()
    assert registry.backends["jax"] is JaxBackend


def test_tf32_is_refused_on_cpu_but_offered_on_cuda():
    task = MnistMLP()
    assert "CUDA" in JaxBackend.unsupported_reason(task, make_cell(MnistMLP, "eager", precision="tf32"))
    assert JaxBackend.unsupported_reason(task, make_cell(MnistMLP, "eager", device="cuda", precision="tf32")) is None
    assert JaxBackend.unsupported_reason(task, make_cell(MnistMLP, "compiled", precision="bf16")) is None


def test_configure_picks_the_platform_and_one_thread_flags(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_dump_to=/tmp/x")
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    env = JaxBackend().configure(make_cell(MnistMLP, "eager", threads=1))
    assert env["JAX_PLATFORMS"] == "cpu"
    assert env["TF_CPP_MIN_LOG_LEVEL"] == "2"  # jaxlib's C++ logging: errors only
    assert env["XLA_FLAGS"] == "--xla_dump_to=/tmp/x --xla_cpu_multi_thread_eigen=false"  # appended, not replaced
    env = JaxBackend().configure(make_cell(MnistMLP, "compiled", device="cuda", threads=2))
    assert env["JAX_PLATFORMS"] == "cuda" and env["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"
    assert "multi_thread_eigen" not in env["XLA_FLAGS"]


def test_a_missing_gpu_skips_the_cell(backend):
    from harness.measure.envinfo import gpu_present

    if gpu_present():
        pytest.skip("a GPU is present")
    problem = backend.device_problem(make_cell(MnistMLP, "compiled", device="cuda"))
    assert problem and "cuda" in problem
    backend.device_problem(make_cell(MnistMLP, "compiled"))  # back to the CPU for the tests below


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
    assert details["matmul_precision"] == "highest" and details["compute_dtype"] == "float32"
    assert ("op by op" in details["train_step"]) == (mode == "eager")
    assert details["epoch_loop"] in (("python",) if mode == "eager" else ("scan", "step"))
    if mode == "compiled":
        assert_compile_measured(result)
    else:  # eager JAX compiles each primitive once per shape per process: earlier tests may have done it all
        assert 0 <= result["compile_s"] < result["setup_s"] + result["first_epoch_s"]
    assert result["compile_source"].startswith("jax.monitoring")


def test_compile_time_counts_recompiles_and_leaves_out_scoring(backend):
    """An epoch of a new length compiles a new program, and counts; predict and loss compile their own
    programs, which do not."""
    from backends.jax_backend import _compile_spans

    state, _, _ = build(backend, MnistMLP, "compiled", train_size=512)
    order = np.arange(512).reshape(4, 128)
    backend.train_epoch(state, order)
    backend.sync(state)
    first = backend.compile_time(state)[0]
    backend.train_epoch(state, order[:3])  # lax.scan over 3 rows: another program
    backend.sync(state)
    trained = backend.compile_time(state)[0]
    assert 0 < first < trained
    process_total = _compile_spans.total()
    backend.predict(state, "test")
    backend.loss(state, np.arange(16))
    assert _compile_spans.total() > process_total  # scoring did compile
    assert backend.compile_time(state)[0] == trained


def test_latency_phase_runs_one_row_epochs(backend):
    result = run_cell(make_cell(LinearRegression, "compiled", latency_steps=3))
    assert result["status"] == "ok", result.get("message")
    assert result["step_ms_p50"] is not None and result["step_ms_p50"] > 0


def test_bf16_keeps_fp32_master_weights(backend):
    result = run_cell(make_cell(MnistMLP, "compiled", precision="bf16"))
    assert result["status"] == "ok", result.get("message")
    assert result["details"]["compute_dtype"] == "bfloat16"
    assert result["initial_loss"] == pytest.approx(result["initial_loss_ref"], rel=2e-2)  # bf16 has 8 bits
    state, _, _ = build(backend, MnistMLP, "compiled", precision="bf16")
    assert all(w.dtype == np.float32 for layer in backend.get_weights(state) for w in layer.values())


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
    ref_test = reference.forward(task.model(), weights, data.x_test)
    np.testing.assert_allclose(backend.predict(state, "test"), ref_test, rtol=1e-4, atol=1e-5)


# -- optimizers against NumPy ----------------------------------------------------

# Every constant away from its usual default, and eps large enough that its placement shows.
SPEC_HP = dict(lr=0.05, weight_decay=0.01, momentum=0.8, beta1=0.8, beta2=0.95, eps=1e-2, rho=0.7,
               initial_accumulator=0.2)
OPTIMIZERS = ("sgd", "momentum", "adam", "rmsprop", "adagrad")


class NumpyOptimizer:
    """The update rules of the Hyperparams docstring, in float64."""

    def __init__(self, hp: Hyperparams, params: dict[str, np.ndarray]):
        self.hp, self.t = hp, 0
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}
        if hp.optimizer == "adagrad":
            self.v = {k: np.full_like(v, hp.initial_accumulator) for k, v in params.items()}

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        hp, out = self.hp, {}
        self.t += 1
        for k, w in params.items():
            g = grads[k] + hp.weight_decay * w
            if hp.optimizer == "sgd":
                out[k] = w - hp.lr * g
            elif hp.optimizer == "momentum":
                self.m[k] = hp.momentum * self.m[k] + g
                out[k] = w - hp.lr * self.m[k]
            elif hp.optimizer == "adam":
                self.m[k] = hp.beta1 * self.m[k] + (1 - hp.beta1) * g
                self.v[k] = hp.beta2 * self.v[k] + (1 - hp.beta2) * g * g
                m_hat = self.m[k] / (1 - hp.beta1 ** self.t)
                v_hat = self.v[k] / (1 - hp.beta2 ** self.t)
                out[k] = w - hp.lr * m_hat / (np.sqrt(v_hat) + hp.eps)
            elif hp.optimizer == "rmsprop":
                self.v[k] = hp.rho * self.v[k] + (1 - hp.rho) * g * g
                out[k] = w - hp.lr * g / (np.sqrt(self.v[k]) + hp.eps)
            elif hp.optimizer == "adagrad":
                self.v[k] = self.v[k] + g * g
                out[k] = w - hp.lr * g / (np.sqrt(self.v[k]) + hp.eps)
        return out


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_optimizer_transform_matches_the_spec(backend, optimizer):
    """The optax chain alone, fed the same gradients as the NumPy rule."""
    import optax

    from backends.jax_optim import make_optimizer

    hp = Hyperparams(optimizer=optimizer, **SPEC_HP)
    rng = np.random.default_rng(0)
    params = {"a": rng.standard_normal((3, 4)), "b": rng.standard_normal(4)}
    opt, _ = make_optimizer(hp)
    ours = {k: jax.numpy.asarray(v, np.float32) for k, v in params.items()}
    state = opt.init(ours)
    ref = NumpyOptimizer(hp, params)
    for scale in (1.0, 0.1, 3.0, 0.01):  # gradients across scales, so eps placement matters
        grads = {k: rng.standard_normal(v.shape) * scale for k, v in params.items()}
        updates, state = opt.update({k: jax.numpy.asarray(v, np.float32) for k, v in grads.items()}, state, ours)
        ours = optax.apply_updates(ours, updates)
        params = ref.step(params, grads)
    for k in params:
        np.testing.assert_allclose(np.asarray(ours[k]), params[k], rtol=2e-6, atol=1e-6)


def _linear_grads(w, x, y):
    d = 2 * (x @ w["kernel"] + w["bias"] - y) / len(x)
    return {"kernel": x.T @ d, "bias": d.sum(0)}


def _mlp_grads(w, x, y):
    x = x.reshape(len(x), -1)
    h_pre = x @ w["k1"] + w["b1"]
    h = np.maximum(h_pre, 0)
    z = h @ w["k2"] + w["b2"]
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(len(y)), y] -= 1
    d = p / len(y)
    dh = (d @ w["k2"].T) * (h_pre > 0)
    return {"k2": h.T @ d, "b2": d.sum(0), "k1": x.T @ dh, "b1": dh.sum(0)}


FLAT = {LinearRegression: (("kernel", 0, "kernel"), ("bias", 0, "bias")),
        MnistMLP: (("k1", 1, "kernel"), ("b1", 1, "bias"), ("k2", 3, "kernel"), ("b2", 3, "bias"))}
GRADS = {LinearRegression: _linear_grads, MnistMLP: _mlp_grads}


# Every optimizer in both modes on linear regression and eagerly on the MLP; compiled MLP steps
# (a compile each) for adam (optax's) and adagrad (ours).
STEP_CASES = ([(o, LinearRegression, mode) for o in OPTIMIZERS for mode in MODES]
              + [(o, MnistMLP, "eager") for o in OPTIMIZERS] + [(o, MnistMLP, "compiled") for o in ("adam", "adagrad")])


@pytest.mark.parametrize("optimizer, task_cls, mode", STEP_CASES,
                         ids=[f"{o}-{t.name}-{mode}" for o, t, mode in STEP_CASES])
def test_training_steps_match_numpy(backend, optimizer, task_cls, mode):
    """A few real steps through train_epoch (gather, gradient, update) against float64 NumPy."""
    hp = Hyperparams(optimizer=optimizer, batch_size=16, epochs=1, **SPEC_HP)
    if task_cls is MnistMLP:
        hp = hp.replace(lr=0.01)
    task = task_cls()
    weights = random_weights(task, seed=3, scale=0.1)
    state, _, data = build(backend, task_cls, mode, weights, hp, train_size=64)
    order = np.random.default_rng(4).permutation(64).reshape(4, 16)
    state = backend.train_epoch(state, order)
    backend.sync(state)

    flat = {name: weights[i][key].astype(np.float64) for name, i, key in FLAT[task_cls]}
    ref = NumpyOptimizer(hp, flat)
    for row in order:
        flat = ref.step(flat, GRADS[task_cls](flat, data.x_train[row].astype(np.float64), data.y_train[row]))
    got = backend.get_weights(state)
    for name, i, key in FLAT[task_cls]:
        np.testing.assert_allclose(got[i][key], flat[name], rtol=1e-5, atol=2e-6, err_msg=f"{name} ({optimizer})")


@pytest.mark.parametrize("loop", ("scan", "step"))
def test_both_compiled_epoch_loops_train_like_eager(backend, monkeypatch, loop):
    monkeypatch.setenv("BENCH_JAX_EPOCH_LOOP", loop)
    eager, _, _ = build(backend, MnistMLP, "eager", train_size=128)
    compiled, _, _ = build(backend, MnistMLP, "compiled", train_size=128)
    assert backend.details(compiled)["epoch_loop"] == loop
    order = np.random.default_rng(5).permutation(128).reshape(4, 32)
    eager = backend.train_epoch(eager, order)
    compiled = backend.train_epoch(compiled, order)
    for mine, theirs in zip(backend.get_weights(compiled), backend.get_weights(eager)):
        for key in theirs:
            np.testing.assert_allclose(mine[key], theirs[key], rtol=1e-5, atol=1e-6)


def test_device_peak_counts_from_the_reset_and_says_when_it_cannot_tell(backend, monkeypatch):
    """JAX's peak counter cannot be reset. The CPU keeps no memory stats, so the device's are scripted here
    (the real ones are read by the GPU tests below)."""
    from types import SimpleNamespace

    state, _, _ = build(backend, LinearRegression, "compiled")
    mb = 2**20
    stats = {"bytes_in_use": 100 * mb, "peak_bytes_in_use": 150 * mb}  # staging peaked 50 MB above its end
    monkeypatch.setattr(backend, "device", SimpleNamespace(memory_stats=lambda: dict(stats)))
    backend.reset_peak_device(state)
    stats.update(bytes_in_use=101 * mb, peak_bytes_in_use=150 * mb)  # training stayed below that peak
    assert backend.peak_device_mb(state) is None
    assert "50.0 MB" in backend.details(state)["peak_device"]
    stats["peak_bytes_in_use"] = 180 * mb  # a new peak: it happened during training
    assert backend.peak_device_mb(state) == 80.0 and "peak_device" not in backend.details(state)


# -- GPU (skipped without one) -----------------------------------------------------


def in_a_fresh_worker(cell: Cell) -> dict:
    """The cell through `python -m harness.cell.worker`, so JAX starts with JAX_PLATFORMS=cuda as in a real run."""
    proc = subprocess.run([sys.executable, "-m", "harness.cell.worker"], input=json.dumps(cell.to_dict()),
                          capture_output=True, text=True, cwd=REPO, timeout=600,
                          env={**os.environ, "BENCH_EVENT_FD": "1"})
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return next(e["values"] for e in events if e.get("event") == "result")


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ("fp32", "bf16"))
def test_cuda_cell_in_a_fresh_worker(precision):
    cell = make_cell(MnistMLP, "compiled", device="cuda", precision=precision, train_size=2048, test_size=512)
    result = in_a_fresh_worker(cell)
    assert result["status"] == "ok", result.get("message")
    assert "cuda" in result["details"]["device"].lower() or "gpu" in result["details"]["device"].lower()
    assert result["peak_device_mb"] and result["peak_device_mb"] > 0
    assert_compile_measured(result)
    if precision == "fp32":
        assert result["initial_loss"] == pytest.approx(result["initial_loss_ref"], rel=1e-5)


@pytest.mark.gpu
def test_peak_device_memory_leaves_out_the_staged_data():
    """8x the data on the device, the same training: the peak counts training's memory, not the dataset's."""
    small, large = (in_a_fresh_worker(make_cell(MnistMLP, "compiled", device="cuda", train_size=n))
                    for n in (4096, 32768))
    assert small["status"] == large["status"] == "ok", (small.get("message"), large.get("message"))
    assert small["peak_device_mb"] > 0, small["details"].get("peak_device")
    grew = large["peak_device_mb"] - small["peak_device_mb"]
    assert abs(grew) < 0.25 * (large["data_mb"] - small["data_mb"]), (small["peak_device_mb"], large["peak_device_mb"])
