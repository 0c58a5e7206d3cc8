"""The asv suite (asv.conf.json, benchmarks/asv): `asv check` passes and a quick run over the current
environment records results. Restricted to the NumPy example backend (BENCH_ASV_BACKENDS=numpy), the one
backend cheap enough for a test; every other combination must come back skipped, not failed."""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_numpy_plugin import install_numpy_plugin

REPO = Path(__file__).resolve().parent.parent
ASV = [sys.executable, "-m", "asv"]


def _config(tmp_path: Path) -> Path:
    """The repository's asv.conf.json with asv's own files redirected into tmp_path."""
    text = re.sub(r"^\s*//.*$", "", (REPO / "asv.conf.json").read_text(), flags=re.M)
    conf = json.loads(text)
    assert conf["benchmark_dir"] == "benchmarks/asv"
    assert all(conf[k].startswith(".asv/") for k in ("env_dir", "results_dir", "html_dir"))
    conf.update(repo=str(REPO), benchmark_dir=str(REPO / conf["benchmark_dir"]), env_dir=str(tmp_path / "env"),
                results_dir=str(tmp_path / "results"), html_dir=str(tmp_path / "html"))
    path = tmp_path / "asv.conf.json"
    path.write_text(json.dumps(conf))
    return path


def _asv(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    out = subprocess.run([*ASV, *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=timeout)
    assert out.returncode == 0, out.stdout + out.stderr
    return out


def _values(results: dict, name: str) -> dict[tuple[str, ...], float | None]:
    """(backend, task, mode) -> asv's value: a number, NaN for skipped, None for failed."""
    result, params = results["results"][name][:2]
    combos = itertools.product(*([json.loads(v.replace("'", '"')) for v in values] for values in params))
    return dict(zip(combos, result))


def _skipped(value) -> bool:
    return isinstance(value, float) and math.isnan(value)


def test_asv_check_and_quick_run_over_the_current_environment(tmp_path):
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=REPO)
    if head.returncode != 0:
        pytest.skip("not a git checkout: asv records results per commit")
    site = install_numpy_plugin(tmp_path / "plugin")
    conf = _config(tmp_path)
    env = dict(os.environ, HOME=str(tmp_path / "home"), ASV_PYTHONPATH=str(site), BENCH_ASV_BACKENDS="numpy")
    (tmp_path / "home").mkdir()

    _asv("machine", "--yes", "--machine", "bench-test", "--config", str(conf), env=env)
    checked = _asv("check", "--python=same", "--config", str(conf), env=env)
    assert "No problems found" in checked.stdout
    _asv("run", "--quick", "--python=same", "--set-commit-hash", head.stdout.strip(), "--machine", "bench-test",
         "--show-stderr", "--config", str(conf), env=env)
    _asv("publish", "--config", str(conf), env=env)

    [saved] = [p for p in (tmp_path / "results" / "bench-test").glob("*.json") if p.name != "machine.json"]
    results = json.loads(saved.read_text())
    names = {"Time.track_train_s", "Time.track_epoch_s", "Time.track_step_s", "Compile.track_compile_s",
             "Accuracy.track_accuracy",
             "Mse.track_mse", "HostMemory.track_peak_host_mb", "DeviceMemory.track_peak_device_mb"}
    assert set(results["results"]) == {f"training.{n}" for n in names}
    values = {n: _values(results, f"training.{n}") for n in names}
    for name, by_combo in values.items():
        assert None not in by_combo.values(), f"{name} failed for some combination"
        ran = {combo for combo, v in by_combo.items() if not _skipped(v)}
        assert {b for b, _, _ in ran} <= {"numpy"}, f"{name}: only numpy was asked for"

    assert values["Accuracy.track_accuracy"][("numpy", "mnist_mlp", "eager")] > 0.5
    assert values["Mse.track_mse"][("numpy", "linear_regression", "eager")] < 0.1
    for task in ("linear_regression", "mnist_mlp"):
        assert values["Time.track_train_s"][("numpy", task, "eager")] > 0
        assert values["Time.track_step_s"][("numpy", task, "eager")] > 0
        assert values["HostMemory.track_peak_host_mb"][("numpy", task, "eager")] > 2**20
        assert _skipped(values["DeviceMemory.track_peak_device_mb"][("numpy", task, "eager")])  # CPU
        assert values["Compile.track_compile_s"][("numpy", task, "eager")] == 0  # measured: nothing compiled
    assert _skipped(values["Time.track_train_s"][("numpy", "mnist_cnn", "eager")])  # unsupported layers
    assert _skipped(values["Time.track_train_s"][("numpy", "mnist_mlp", "compiled")])  # mode not offered
    assert _skipped(values["Accuracy.track_accuracy"][("numpy", "linear_regression", "eager")])  # scored by mse
    assert (tmp_path / "html" / "index.html").exists()
