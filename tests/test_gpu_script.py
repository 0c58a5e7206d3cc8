"""benchmarks/gpu/run.sh gets one chance per lent GPU: where it cannot work, it stops at once with one line."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import REPO

SCRIPT = REPO / "benchmarks" / "gpu" / "run.sh"


def _run(tmp_path, **env: str) -> subprocess.CompletedProcess:
    full = {**os.environ, "PYTHON": sys.executable, "OUT": str(tmp_path / "out"), "BENCH_GPU_BUDGET_S": "60", **env}
    return subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=full, timeout=120)


def test_stops_at_once_when_pytest_is_missing(tmp_path):
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "pytest.py").write_text("raise ImportError('not installed on this machine')\n")
    done = _run(tmp_path, PYTHONPATH=str(shadow))
    assert done.returncode == 2
    assert done.stdout.strip().endswith(f"run.sh: stopping: {sys.executable} cannot import pytest")
    assert not (tmp_path / "out" / "gpu-runs.tgz").exists()


def test_stops_at_once_when_no_framework_sees_a_gpu(tmp_path):
    done = _run(tmp_path, CUDA_VISIBLE_DEVICES="")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "run.sh: stopping: neither torch nor jax sees a GPU here" in done.stdout
    assert not (tmp_path / "out" / "gpu-tests.txt").exists()  # no check or run was started
