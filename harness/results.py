"""The results store: one folder per run, one JSON line per finished cell, loadable into pandas.

results/<run-id>/
  run.json        the plan (every cell), the command line and the environment
  records.jsonl   one record per finished cell, appended as each finishes
  logs/           each cell's stdout and stderr

Records are plain JSON (never pickle): nothing in a results file is executed.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

SCHEMA_VERSION = 1
RECORDS = "records.jsonl"
RUN_FILE = "run.json"
STATUSES = ("ok", "skipped", "error", "timeout", "diverged", "oom", "cancelled")
FAILED = ("error", "timeout", "diverged", "oom", "cancelled")

SCHEMA: dict[str, str] = {
    "schema_version": "version of this record layout",
    "run_id": "the run this cell belongs to",
    "cell_id": "backend-task-mode-device-... identifier of the cell",
    "timestamp": "UTC time the cell finished (ISO 8601)",
    "backend": "backend name",
    "framework_version": "version of the backend's framework",
    "task": "task name",
    "mode": "eager, compiled, ...",
    "device": "cpu or cuda",
    "device_name": "CPU model or GPU name",
    "precision": "fp32, tf32 or bf16",
    "batch_size": "samples per step",
    "epochs": "epochs asked for",
    "optimizer": "optimizer name",
    "lr": "learning rate",
    "weight_decay": "coupled L2 coefficient",
    "seed": "seed of the initial weights and batch order",
    "repeat": "repeat index (each repeat is its own process)",
    "train_size": "training samples used",
    "test_size": "test samples used",
    "threads": "CPU threads the framework was pinned to",
    "status": "ok, skipped, error, timeout, diverged, oom, or cancelled (on the cluster, not by bench)",
    "message": "why a cell was skipped or failed",
    "log": "the cell's log file, relative to the run folder",
    "import_s": "framework import time",
    "load_s": "time to load the task's arrays from disk or cache",
    "setup_s": "data to device, model and optimizer build",
    "compile_s": "compile time as the framework reports it (tracing, lowering, code generation), measured directly",
    "compile_source": "how compile_s was measured; empty where the framework cannot tell",
    "first_epoch_excess_s": "first epoch minus the median later epoch: one-time cost as an estimate (negative kept)",
    "cold_start_s": "from the start of the cell's process to the end of the first epoch, bench's own checks excluded",
    "first_epoch_s": "wall time of the first epoch, compile included",
    "steady_epoch_s": "median epoch time after the first (steady state)",
    "train_s": "all epochs, compile included",
    "epoch_s": "list: wall time of each epoch",
    "step_ms_p50": "median latency of one individually synced training step",
    "step_ms_p90": "90th percentile of that latency",
    "samples_per_s": "training throughput over the steady epochs (none for a one-epoch cell)",
    "eval_s": "time to predict the test split once",
    "eval_total_s": "all the evaluations after each epoch (prediction, metrics, weights read back), untimed for training",
    "latency_s": "the whole step-latency phase after training (warm-up and timed single steps)",
    "initial_loss_s": "computing the first batch's loss before training, the framework's and the reference's (parity check)",
    "total_s": "the worker's wall time, import to finish",
    "wall_s": "the cell's wall time seen by the runner, process start included",
    "metric": "name of the task's headline metric",
    "metric_value": "its final value on the test split",
    "target": "the task's quality target",
    "target_met": "whether the final metrics meet the target",
    "metrics": "dict: final test metrics (loss, metric, extras such as w and b)",
    "curve": "list: per epoch {epoch, train_s (cumulative), loss, metric}",
    "time_to_target_s": "from the start of the cell's process until the target was first met (as cold_start_s)",
    "epochs_to_target": "epoch when the target was first met",
    "peak_host_mb": "peak resident memory of the cell's process",
    "data_mb": "size of the task's arrays as loaded (training and test splits)",
    "peak_device_mb": "peak accelerator memory after the data were staged and the model built",
    "initial_loss": "the framework's loss on the first batch before training",
    "initial_loss_ref": "the same loss from the float64 NumPy reference forward pass",
    "details": "dict: backend-specific facts (what was compiled, thread settings, ...)",
    "host": "the machine the cell ran on",
    "gpu_uuid": "UUID of the GPU a cuda cell ran on (nvidia-smi), where there is one",
    "executor": "what ran the cell: local, slurm, ray or a plugin's executor",
    "job_id": "the cell's job on the cluster: SLURM job (ARRAY_TASK for array tasks) or Ray task id",
    "node_cells": "most bench cells running on the cell's machine at once while it ran, itself included",
    "env": "dict: machine and software of the process that ran the cell",
}


class ResultsError(Exception):
    """A results folder or file can't be used; the message names it."""


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _clean(value: Any) -> Any:
    """JSON has no NaN or infinity: store them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return _clean(value.item())
    return value


def record_line(record: dict[str, Any]) -> bytes:
    return (json.dumps(_clean(record), sort_keys=True, allow_nan=False) + "\n").encode()


def append_record(run_dir: Path, record: dict[str, Any]) -> None:
    """Append one record as a single write, then fsync: a crash leaves at most one torn last line,
    which loading skips and the next append starts a fresh line after."""
    path = Path(run_dir) / RECORDS
    line = record_line(record)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size:
            with open(path, "rb") as f:
                f.seek(size - 1)
                if f.read(1) != b"\n":
                    line = b"\n" + line
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(_clean(data), indent=1, sort_keys=True, allow_nan=False))
    os.replace(tmp, path)


_TEXT = ("run_id", "cell_id", "timestamp", "backend", "framework_version", "task", "mode", "device", "device_name",
         "precision", "optimizer", "message", "log", "metric", "target", "compile_source", "host", "gpu_uuid",
         "executor", "job_id")
_NUMBERS = ("schema_version", "batch_size", "epochs", "lr", "weight_decay", "seed", "repeat", "train_size",
            "test_size", "threads", "import_s", "load_s", "setup_s", "compile_s", "first_epoch_excess_s", "cold_start_s",
            "first_epoch_s", "steady_epoch_s",
            "train_s", "step_ms_p50", "step_ms_p90", "samples_per_s", "eval_s", "eval_total_s", "latency_s",
            "initial_loss_s", "total_s", "wall_s", "metric_value", "time_to_target_s", "epochs_to_target",
            "peak_host_mb", "data_mb", "peak_device_mb", "initial_loss", "initial_loss_ref", "node_cells")
_SHAPES: dict[str, tuple[type, ...]] = {
    **{k: (str,) for k in _TEXT}, **{k: (int, float) for k in _NUMBERS},
    "target_met": (bool,), "epoch_s": (list,), "curve": (list,), "metrics": (dict,), "details": (dict,),
    "env": (dict,),
}


def record_problem(record: Any) -> str:
    """Why a parsed JSON value is not a usable record ('' if it is): reports must never trip on a field's type."""
    if not isinstance(record, dict):
        return "not an object"
    for key in ("cell_id", "status"):
        if not isinstance(record.get(key), str):
            return f"no {key}"
    if record["status"] not in STATUSES:
        return f"unknown status {record['status']!r}"
    for key, types in _SHAPES.items():
        value = record.get(key)
        if value is not None and (not isinstance(value, types) or (isinstance(value, bool) and bool not in types)):
            return f"{key} is {type(value).__name__}"
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in record.get("epoch_s") or []):
        return "epoch_s holds non-numbers"
    if not all(isinstance(point, dict) for point in record.get("curve") or []):
        return "curve holds non-objects"
    return ""


def read_records(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """All readable records of one records file, and a message per unreadable line."""
    records, problems = [], []
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ResultsError(f"cannot read results file {path}: {exc.strerror or exc}") from None
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            problems.append(f"{path}:{number}: unreadable record skipped (truncated or corrupt)")
            continue
        wrong = record_problem(record)
        if wrong:
            problems.append(f"{path}:{number}: not a bench record ({wrong}), skipped")
            continue
        records.append(record)
    return records, problems


def read_run(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / RUN_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ResultsError(f"{run_dir} is not a bench run folder (no {RUN_FILE})") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ResultsError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("plan"), list):
        raise ResultsError(f"{path} is not a bench run description")
    return data


def run_dirs(root: Path) -> list[Path]:
    """Run folders under a results root, oldest first (run ids sort by time)."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if (p / RUN_FILE).is_file() or (p / RECORDS).is_file())


def resolve(ref: str | os.PathLike, root: Path) -> Path:
    """A run given as a folder, a records file, a run id under root, or 'latest'."""
    text = os.fspath(ref)
    if text == "latest":
        runs = run_dirs(root)
        if not runs:
            raise ResultsError(f"no runs in {root}")
        return runs[-1]
    for candidate in (Path(text), Path(root) / text):
        if candidate.is_file():
            return candidate
        if candidate.is_dir() and ((candidate / RECORDS).is_file() or (candidate / RUN_FILE).is_file()):
            return candidate
    raise ResultsError(f"no run {text!r} (not a run folder, a records file or a run id in {root})")


def _records_path(path: Path) -> Path:
    return path if path.is_file() else path / RECORDS


def flatten(record: dict[str, Any]) -> dict[str, Any]:
    """One DataFrame row: environment keys become env_* columns, versions version_* columns."""
    row = {k: v for k, v in record.items() if k != "env"}
    env = record.get("env") or {}
    for key, value in env.items():
        if key == "versions" and isinstance(value, dict):
            row.update({f"version_{dist}": ver for dist, ver in value.items()})
        elif not isinstance(value, (dict, list)):
            row[f"env_{key}"] = value
    return row


def load(paths: Iterable[str | os.PathLike] | str | os.PathLike | None = None, root: str | os.PathLike = "results",
         ) -> pd.DataFrame:
    """Load runs into one DataFrame, one row per cell record.

    paths: run folders, records files or run ids (default: every run under root).
    Unreadable lines are skipped with a warning naming the file and line; the list
    of such problems is also in `df.attrs["problems"]`.
    """
    root = Path(root)
    if paths is None:
        sources = [_records_path(p) for p in run_dirs(root)]
    else:
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        sources = [_records_path(resolve(p, root)) for p in paths]
    rows, problems = [], []
    for source in sources:
        if not source.exists():
            continue  # a run that has not finished a cell yet
        records, bad = read_records(source)
        rows += [flatten(r) for r in records]
        problems += bad
    for problem in problems:
        warnings.warn(problem, stacklevel=2)
    df = pd.DataFrame(rows, columns=None if rows else list(SCHEMA))
    for column in SCHEMA:
        if column not in df.columns and column != "env":
            df[column] = None
    df.attrs["problems"] = problems
    return df

