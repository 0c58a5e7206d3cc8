"""What machine and software a run measured: recorded with every result. Imports no framework."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import harness

FRAMEWORK_DISTRIBUTIONS = (
    "torch", "tensorflow", "tensorflow-cpu", "keras", "jax", "jaxlib", "optax", "numpy", "pandas", "pluggy",
)
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "XLA_FLAGS", "TF_NUM_INTRAOP_THREADS")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def ram_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _run(cmd: list[str]) -> str | None:
    if shutil.which(cmd[0]) is None:
        return None
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def gpus() -> list[dict[str, str]]:
    """NVIDIA GPUs as nvidia-smi sees them, else as the loaded driver lists them (empty without a driver):
    index, uuid, name, driver, memory."""
    keys = ("index", "uuid", "name", "driver", "memory")
    out = _run(["nvidia-smi", "--query-gpu=index,uuid,name,driver_version,memory.total", "--format=csv,noheader"])
    found = []
    for line in (out or "").splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == len(keys):
            found.append(dict(zip(keys, parts)))
    return found or driver_gpus()


def driver_gpus(root: Path = Path("/proc/driver/nvidia")) -> list[dict[str, str]]:
    """The GPUs the NVIDIA kernel driver has bound: seen where a container or VM has no nvidia-smi."""
    found = []
    version = ""
    try:
        text = (root / "version").read_text()
        version = text.split("Kernel Module", 1)[1].split()[0] if "Kernel Module" in text else ""
    except (OSError, IndexError):
        pass
    for index, info in enumerate(sorted(root.glob("gpus/*/information"))):
        try:
            fields = dict(line.split(":", 1) for line in info.read_text().splitlines() if ":" in line)
        except OSError:
            continue
        found.append({"index": str(index), "uuid": fields.get("GPU UUID", "").strip(),
                      "name": fields.get("Model", "NVIDIA GPU").strip(), "driver": version, "memory": ""})
    return found


def cuda_version() -> str | None:
    out = _run(["nvidia-smi"])
    if out and "CUDA Version:" in out:
        return out.split("CUDA Version:", 1)[1].split()[0]
    return None


def git_commit() -> str | None:
    root = Path(harness.__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    commit = _run(["git", "-C", str(root), "rev-parse", "HEAD"])
    if commit and _run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"]):
        commit += "-dirty"
    return commit


def versions(extra: tuple[str, ...] = ()) -> dict[str, str]:
    found = {}
    for dist in FRAMEWORK_DISTRIBUTIONS + extra:
        try:
            found[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def collect(extra_distributions: tuple[str, ...] = ()) -> dict[str, Any]:
    """The environment of this machine, flat enough to become DataFrame columns."""
    gpu_list = gpus()
    return {
        "hostname": platform.node(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cores": usable_cores(),
        "ram_gb": ram_gb(),
        "gpu": "; ".join(g["name"] for g in gpu_list) or None,
        "gpu_count": len(gpu_list),
        "gpu_driver": gpu_list[0]["driver"] if gpu_list else None,
        "gpu_memory": gpu_list[0]["memory"] if gpu_list else None,
        "cuda": cuda_version() if gpu_list else None,
        "harness_version": harness.__version__,
        "git_commit": git_commit(),
        "versions": versions(extra_distributions),
        "thread_env": {k: os.environ[k] for k in THREAD_VARIABLES if k in os.environ},
    }


def gpu_present() -> bool:
    return bool(gpus())
