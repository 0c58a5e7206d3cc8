"""The Keras 3 backends: declared without importing Keras or an engine, each engine chosen per cell with the
native backend's settings, Keras's own reason when it won't compile a model, compile time measured, and
dashed backend names through cell ids, summaries and comparisons. Conformance (weights, reference loss,
update rules) is in test_conformance.py, accuracy parity with the native backends in test_parity.py."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import subprocess
import sys
import textwrap

import pandas as pd
import pytest

from backends.jax_backend import JaxBackend
from backends.keras_backend import KerasJax, KerasTensorFlow, KerasTorch
from backends.tf_backend import TensorFlowBackend
from backends.torch_backend import TorchBackend
from harness import results
from harness.api import Availability, Cell, class_ref, name_problem
from harness.compare import paired as compare
from harness.plugins.registry import build_registry
from harness.report.summary import summary
from harness.run.runner import make_record
from tasks.mnist_tasks import MnistLSTM, MnistMLP
from tests.conftest import REPO

pytestmark = pytest.mark.slow  # Keras on three engines, each cell its own process; CI's second step

KERAS = {"keras-tensorflow": KerasTensorFlow, "keras-jax": KerasJax, "keras-torch": KerasTorch}
NATIVE = {"keras-tensorflow": TensorFlowBackend, "keras-jax": JaxBackend, "keras-torch": TorchBackend}


def make_cell(backend, task_cls, mode="compiled", device="cpu", precision="fp32", **kw) -> Cell:
    return Cell(backend.name, task_cls.name, mode, device, task_cls().hyperparams(epochs=1), precision=precision,
                backend_ref=class_ref(backend), task_ref=class_ref(task_cls), **kw)


# -- declared in the parent process ------------------------------------------------------------

def test_class_methods_import_neither_keras_nor_an_engine():
    code = textwrap.dedent("""
        import json, sys
        from backends.keras_backend import KerasJax, KerasTensorFlow, KerasTorch
        from harness.api import Cell
        from tasks.builtin import bench_tasks
        for cls in (KerasJax, KerasTensorFlow, KerasTorch):
            cls.availability(); cls.version()
            for task in bench_tasks():
                for mode in cls.modes:
                    cls.unsupported_reason(task(), Cell(cls.name, task.name, mode, "cuda", task.defaults))
        print(json.dumps([m for m in ("keras", "tensorflow", "jax", "torch") if m in sys.modules]))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == []


def test_registered_as_builtins_under_their_engine_names():
    registry, _ = build_registry()
    for name, cls in KERAS.items():
        assert registry.backends[name] is cls and name_problem(name) is None
        assert cls.native is NATIVE[name] and name == f"keras-{cls.engine}"


def test_available_only_when_keras_and_the_engine_are_installed(monkeypatch):
    if not all(cls.availability().ok for cls in KERAS.values()):
        pytest.skip("Keras or one of its engines is not installed here")
    monkeypatch.setattr(TorchBackend, "availability",
                        classmethod(lambda cls: Availability(False, None, "torch is not installed")))
    torchless = KerasTorch.availability()
    assert not torchless.ok and "torch" in torchless.reason and "Keras is installed" in torchless.reason
    assert KerasJax.availability().ok and KerasJax.availability().version == importlib.metadata.version("keras")

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "keras" else real_find_spec(name, *a))
    for cls in KERAS.values():
        assert not cls.availability().ok and "keras is not installed" in cls.availability().reason


@pytest.mark.parametrize("name", KERAS)
@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_each_cell_selects_its_engine_with_the_native_backends_settings(name, device):
    backend = KERAS[name]
    cell = make_cell(backend, MnistMLP, device=device, threads=1)
    env = backend().configure(cell)
    assert env["KERAS_BACKEND"] == backend.engine
    native = NATIVE[name]().configure(cell)
    assert {k: env[k] for k in native} == native  # threads, log level, preallocation: as for the native backend
    if name == "keras-torch":
        assert env["KERAS_TORCH_DEVICE"] == device
    if device == "cuda" and name == "keras-jax":
        assert env["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"
    if device == "cuda" and name == "keras-tensorflow":
        assert env["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"


@pytest.mark.parametrize("name", KERAS)
def test_fp32_only_and_keras_own_reason_for_a_gpu_lstm_on_tensorflow(name):
    backend = KERAS[name]
    for precision in ("tf32", "bf16"):
        assert "precision" in backend.unsupported_reason(MnistMLP(), make_cell(backend, MnistMLP, precision=precision))
    lstm = backend.unsupported_reason(MnistLSTM(), make_cell(backend, MnistLSTM, device="cuda"))
    if name == "keras-tensorflow":
        assert "Model doesn't support `jit_compile=True`" in lstm
        assert backend.unsupported_reason(
            MnistLSTM(), make_cell(backend, MnistLSTM, mode="eager", device="cuda")
        ) is None
    else:
        assert lstm is None
    assert backend.unsupported_reason(MnistLSTM(), make_cell(backend, MnistLSTM)) is None


# -- in a worker, on the JAX engine (the quickest to import) ------------------------------------

PROBE = """
import json, sys
from backends.keras_backend import KerasJax
from harness.api import Cell
from harness.api import class_ref
from harness.cell.worker import run_cell
from tasks.linear_regression import LinearRegression
from tasks.mnist_tasks import MnistLSTM, MnistMLP

def cell(task_cls, mode, batches=None):
    hp = task_cls().hyperparams(epochs=1)
    return Cell("keras-jax", task_cls.name, mode, "cpu", hp, train_size=hp.batch_size * batches if batches else 256,
                test_size=64, threads=1, latency_steps=3 if mode == "compiled" else 0, backend_ref=class_ref(KerasJax),
                task_ref=class_ref(task_cls))

out = {"compiled": run_cell(cell(LinearRegression, "compiled")), "eager": run_cell(cell(LinearRegression, "eager"))}
# Past the recompile guard's last checked batch (the 12th): a model that compiles on every batch, and one that does not.
out["lstm_eager"] = run_cell(cell(MnistLSTM, "eager", 13))
out["mlp_eager"] = run_cell(cell(MnistMLP, "eager", 13))
out["imported"] = sorted(m for m in ("tensorflow", "torch") if m in sys.modules)
from backends import keras_model
build = keras_model.build_model

def refusing(spec, *penalties):  # a model with a layer Keras may not jit-compile
    model = build(spec, *penalties)
    model.layers[-1].supports_jit = False
    return model

keras_model.build_model = refusing
out["refused"] = run_cell(cell(MnistMLP, "compiled"))
print("PROBE" + json.dumps(out, default=str))
"""


@pytest.fixture(scope="module")
def jax_probe() -> dict:
    if not KerasJax.availability().ok:
        pytest.skip(KerasJax.availability().reason)
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, cwd=REPO, timeout=300)
    lines = [line for line in out.stdout.splitlines() if line.startswith("PROBE")]
    assert lines, out.stdout[-2000:] + out.stderr[-4000:]
    return json.loads(lines[-1][len("PROBE"):])


def test_a_model_keras_will_not_compile_is_skipped_with_keras_reason(jax_probe):
    refused = jax_probe["refused"]
    assert refused["status"] == "skipped", refused
    assert "Model doesn't support `jit_compile=True`" in refused["message"]


def test_a_model_that_compiles_on_every_batch_is_skipped_with_what_was_measured(jax_probe):
    """Keras's JAX LSTM under run_eagerly=True compiles its scans anew on every batch and, over an epoch, ran
    the reference run's process out of memory maps; an eager MLP compiles nothing after its second batch."""
    lstm, mlp = jax_probe["lstm_eager"], jax_probe["mlp_eager"]
    assert lstm["status"] == "skipped", lstm
    assert "compiled XLA programs on every one of batches 3-12 (6 a batch)" in lstm["message"]
    assert "3 LSTM layers run lax.scan" in lstm["message"]
    assert mlp["status"] == "ok" and "recompile_guard" in mlp["details"], mlp


def test_a_cell_on_one_engine_imports_no_other(jax_probe):
    """keras.utils.set_random_seed and Layer.get_config import TensorFlow whenever it is installed: its import
    and runtime start would be charged to a keras-jax or keras-torch cell (a 0.6 s stall in the epoch after
    torch.compile was one)."""
    assert jax_probe["imported"] == []


def test_compile_time_is_what_jax_reports_during_training(jax_probe):
    compiled, eager = jax_probe["compiled"], jax_probe["eager"]
    assert compiled["status"] == "ok" and eager["status"] == "ok"
    assert "jax.monitoring" in compiled["compile_source"]
    # compiled while training only, so within the first epoch (which traced and compiled the step)
    assert 0 < compiled["compile_s"] <= compiled["epoch_s"][0]
    assert compiled["details"]["mode"].startswith("jit_compile=True") and "jax.jit" in compiled["details"]["mode"]
    assert eager["details"]["mode"].startswith("run_eagerly=True")
    # A step's latency is Keras's own single-step call, not a model.fit around one batch.
    assert compiled["details"]["step_latency"].startswith("model.train_on_batch") and compiled["step_ms_p50"] > 0
    assert "PyDataset" in eager["details"]["feeding"] and "shuffle=False" in eager["details"]["fit"]


# -- default: model.compile() as the seeds call it, and what Keras resolved ------------------------------

@pytest.fixture(scope="module")
def plain_run(tmp_path_factory) -> pd.DataFrame:
    """A run without --mode: each Keras backend's last mode, `default`, each cell in its own process."""
    from tests.conftest import bench

    names = [n for n, cls in KERAS.items() if cls.availability().ok]
    if not names:
        pytest.skip("no Keras backend is available here")
    out = tmp_path_factory.mktemp("keras-default")
    done = bench("run", "--backend", ",".join(names), "--task", "linear_regression", "--epochs", "2",
                 "--train-size", "256", "--test-size", "64", "--out", str(out), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return results.load(root=out).set_index("backend")


def test_a_plain_run_takes_keras_default_and_records_what_keras_resolved(plain_run):
    from harness.measure.envinfo import gpu_present

    assert set(plain_run["mode"]) == {"default"} and set(plain_run["status"]) == {"ok"}
    # Keras 3's jit_compile="auto": XLA on JAX; on TensorFlow only where it sees a GPU; never on torch.
    expected = {"keras-jax": True, "keras-tensorflow": gpu_present(), "keras-torch": False}
    for backend, row in plain_run.iterrows():
        resolved = row["details"]["keras_resolved"]
        assert resolved == {"jit_compile": expected[backend], "run_eagerly": False, "steps_per_execution": 1}, backend
        assert row["details"]["mode"].startswith("model.compile() defaults (jit_compile='auto', run_eagerly=False); "
                                                 f"Keras resolved jit_compile={expected[backend]}"), row["details"]
    if "keras-tensorflow" in plain_run.index and not gpu_present():
        assert "without XLA" in plain_run.loc["keras-tensorflow", "details"]["mode"]
        assert plain_run.loc["keras-tensorflow", "compile_s"] != plain_run.loc["keras-tensorflow", "compile_s"]  # NaN
    if "keras-torch" in plain_run.index:
        assert plain_run.loc["keras-torch", "compile_s"] == 0  # no torch.compile: dynamo compiled nothing


def test_default_is_the_keras_backends_last_mode_and_only_theirs():
    for cls in KERAS.values():
        assert cls.modes == ("eager", "compiled", "default")
    for native in NATIVE.values():
        assert "default" not in native.modes


# -- dashed names: nothing splits a cell id on '-' ------------------------------------------------

def _records(backends: tuple[str, ...], lr: float) -> pd.DataFrame:
    rows = []
    for backend in backends:
        for repeat, seconds in enumerate((1.0, 1.2, 1.1)):
            cell = Cell(backend, "mnist_mlp", "eager", "cpu", MnistMLP().hyperparams(lr=lr), repeat=repeat)
            values = {"status": "ok", "train_s": seconds * (2 if backend.startswith("keras") else 1),
                      "steady_epoch_s": seconds}
            rows.append(results.flatten(make_record("run", cell, {}, values, "1")))
    return pd.DataFrame(rows)


def test_dashed_backend_names_keep_their_configurations_apart():
    df = _records(("keras-jax", "jax"), lr=1e-5)  # "lr1e-05": a '-' inside a field too
    assert df["cell_id"].iloc[0] == "keras-jax-mnist_mlp-eager-cpu-fp32-adam-b128-e5-lr1e-05-s0-r0"
    s = summary(df)
    assert sorted(s["backend"]) == ["jax", "keras-jax"] and list(s["repeats"]) == [3, 3]
    assert set(s["config"]) == {"jax-mnist_mlp-eager-cpu-fp32-adam-b128-e5-lr1e-05-s0",
                                "keras-jax-mnist_mlp-eager-cpu-fp32-adam-b128-e5-lr1e-05-s0"}


def test_a_dashed_backend_pairs_with_another_when_backends_are_ignored():
    df = _records(("keras-jax", "jax"), lr=1e-3)
    a = compare.Side("jax", df[df["backend"] == "jax"])
    b = compare.Side("keras-jax", df[df["backend"] == "keras-jax"])
    table = compare.compare(a, b, metric="train_s", ignore_backend=True)
    assert len(table) == 1 and table.iloc[0]["config"] == "mnist_mlp-eager-cpu-fp32-adam-b128-e5-lr0.001-s0"
    assert table.iloc[0]["ratio"] == pytest.approx(2.0)
