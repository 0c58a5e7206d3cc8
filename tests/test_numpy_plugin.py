"""The example third-party plugin, examples/bench-numpy: installs with pip, registers through the
entry point, computes correct gradients, meets the MLP's target and declares what it can't do."""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness import results
from harness.model import Dense, Flatten, ModelSpec, ReLU
from harness.plugins.manager import make_plugin_manager
from harness.plugins.registry import build_registry

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "bench-numpy"
if str(EXAMPLE) not in sys.path:
    sys.path.insert(0, str(EXAMPLE))

from bench_numpy import losses, network  # noqa: E402  (needs the path above)


def install_numpy_plugin(workdir: Path) -> Path:
    """`pip install` the example into a fresh folder (offline: no index, the venv's setuptools),
    from a copy so no build files land in the repository; returns the folder to put on sys.path."""
    source, site = workdir / "src", workdir / "site"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    out = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                          "--no-build-isolation", "--target", str(site), str(source)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return site


@pytest.fixture(scope="module")
def numpy_site(tmp_path_factory) -> Path:
    return install_numpy_plugin(tmp_path_factory.mktemp("bench-numpy"))


def _env(site: Path) -> dict[str, str]:
    import os

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(REPO)])
    return env


def test_pip_installed_plugin_is_found_through_the_entry_point(numpy_site, monkeypatch):
    monkeypatch.syspath_prepend(str(numpy_site))
    for name in [m for m in sys.modules if m == "bench_numpy" or m.startswith("bench_numpy.")]:
        monkeypatch.delitem(sys.modules, name)  # import the installed copy, not the source tree's
    importlib.invalidate_caches()
    registry, plugins = build_registry(make_plugin_manager())
    info = plugins.infos["numpy"]
    assert (info.source, info.distribution, info.version, info.broken) == ("entry point", "bench-numpy", "0.1.0", None)
    assert info.provides == ["backend numpy"]
    assert registry.backends["numpy"].__module__ == "bench_numpy.backend"
    assert str(numpy_site) in sys.modules["bench_numpy"].__file__


def test_bench_plugins_lists_numpy(numpy_site):
    out = subprocess.run([sys.executable, "-m", "harness", "plugins"], capture_output=True, text=True,
                         env=_env(numpy_site), cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    row = next(line for line in out.stdout.splitlines() if line.strip("│ ").startswith("numpy "))
    assert "entry point" in row and "bench-numpy 0.1.0" in row and "backend numpy" in row and "ok" in row


@pytest.mark.slow
def test_mlp_meets_its_target_and_other_tasks_are_skipped_with_a_reason(numpy_site, tmp_path):
    """The MLP with the task's defaults (5 epochs, Adam 1e-3, batch 128, all of MNIST), as a user runs it."""
    out = subprocess.run([sys.executable, "-m", "harness", "run", "--backend", "numpy",
                          "--task", "mnist_mlp,mnist_cnn,mnist_lstm", "--out", str(tmp_path)],
                         capture_output=True, text=True, env=_env(numpy_site), cwd=REPO, timeout=600)
    assert out.returncode == 0, out.stderr
    df = results.load([next(p for p in tmp_path.iterdir() if p.is_dir())]).set_index("task")
    mlp = df.loc["mnist_mlp"]
    assert mlp.status == "ok" and mlp.epochs == 5 and mlp.optimizer == "adam"
    assert mlp.target_met, f"accuracy {mlp.metric_value:.4f}, target {mlp.target}"
    for task, needs in (("mnist_cnn", "Conv2D, MaxPool2D"), ("mnist_lstm", "LSTM")):
        assert df.loc[task].status == "skipped"
        assert df.loc[task].message == \
            f"bench-numpy implements only Dense, Flatten, ReLU layers; {task} needs {needs}"


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_backward_matches_finite_differences(loss):
    """Directional derivatives of the loss along random directions, for every parameter."""
    rng = np.random.default_rng(0)
    spec = ModelSpec((4, 3, 1), (Flatten(), Dense(6), ReLU(), Dense(3)))
    weights = [{}, {"kernel": rng.normal(size=(12, 6)), "bias": rng.normal(size=6)}, {},
               {"kernel": rng.normal(size=(6, 3)), "bias": rng.normal(size=3)}]
    x = rng.normal(size=(8, 4, 3, 1)).astype(np.float32)
    y = rng.integers(0, 3, size=8) if loss == "cross_entropy" else rng.normal(size=(8, 3)).astype(np.float32)
    fn = losses.LOSSES[loss]
    net = network.Network(spec, weights)
    out, inputs = net.forward(x)
    grads = net.backward(inputs, fn(out, y)[1])
    h = 1e-2
    for i, params in enumerate(net.params):
        for name, value in params.items():
            direction = rng.normal(size=value.shape).astype(np.float32)
            original = value.copy()
            value[...] = original + h * direction
            up = fn(net.forward(x)[0], y)[0]
            value[...] = original - h * direction
            down = fn(net.forward(x)[0], y)[0]
            value[...] = original
            numeric = (up - down) / (2 * h)
            analytic = float(np.sum(grads[i][name] * direction))
            assert analytic == pytest.approx(numeric, rel=2e-2, abs=1e-3), f"layer {i} {name}"
