"""Runs planned cells, each in its own process group, and saves each record as it finishes.

A cell that crashes, hangs or runs out of memory is recorded with that status and
the run goes on. SIGINT or SIGTERM stops the current cell, keeps everything already
saved, and leaves the run resumable.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from harness import results
from harness.api import Cell
from harness.plan import PlannedCell
from harness.plugins import Plugins, call_each
from harness.worker import EVENT_FD_ENV

KILL_GRACE_S = 3.0


class Interrupted(Exception):
    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Progress(Protocol):
    def cell_started(self, index: int, total: int, cell: Cell) -> None: ...
    def event(self, cell: Cell, event: dict[str, Any], elapsed: float) -> None: ...
    def cell_finished(self, index: int, total: int, record: dict[str, Any]) -> None: ...
    def warn(self, message: str) -> None: ...


class QuietProgress:
    def cell_started(self, index: int, total: int, cell: Cell) -> None: ...
    def event(self, cell: Cell, event: dict[str, Any], elapsed: float) -> None: ...
    def cell_finished(self, index: int, total: int, record: dict[str, Any]) -> None: ...
    def warn(self, message: str) -> None: ...


@dataclass
class RunState:
    run_dir: Path
    run_id: str
    env: dict[str, Any]
    planned: list[PlannedCell]
    done: set[str] = field(default_factory=set)


def device_name(cell: Cell, env: dict[str, Any]) -> str | None:
    return env.get("gpu") if cell.device == "cuda" else env.get("cpu_model")


def make_record(run_id: str, cell: Cell, env: dict[str, Any], values: dict[str, Any], framework_version: str | None,
                wall_s: float | None = None, log: str | None = None) -> dict[str, Any]:
    """A full record: every schema column present, measured ones from `values`."""
    record: dict[str, Any] = {column: None for column in results.SCHEMA}
    record.update({
        "schema_version": results.SCHEMA_VERSION,
        "run_id": run_id,
        "cell_id": cell.cell_id,
        "timestamp": results.utc_now(),
        "backend": cell.backend,
        "framework_version": framework_version,
        "task": cell.task,
        "mode": cell.mode,
        "device": cell.device,
        "device_name": device_name(cell, env),
        "precision": cell.precision,
        "batch_size": cell.hp.batch_size,
        "epochs": cell.hp.epochs,
        "optimizer": cell.hp.optimizer,
        "lr": cell.hp.lr,
        "weight_decay": cell.hp.weight_decay,
        "seed": cell.seed,
        "repeat": cell.repeat,
        "train_size": cell.train_size,
        "test_size": cell.test_size,
        "threads": cell.threads,
        "message": "",
        "wall_s": wall_s,
        "log": log,
        "env": env,
    })
    record.update({k: v for k, v in values.items() if k in results.SCHEMA})
    return record


def private_caches(scratch: Path, tmp: Path | None = None) -> dict[str, str]:
    """Cold, private compile caches under `scratch`: compile times are honest and nothing leaks into $HOME or /tmp.

    Temporary files go to `tmp` (default: `scratch`), which a run shares across its cells: there
    torch keeps what it builds once per machine for a user and never per model (inductor's
    precompiled header, 150 MB and 6–9 s on the 2-core CPU), so a run builds it once, not once per cell."""
    return {
        "PYTHONUNBUFFERED": "1",
        "TORCHINDUCTOR_CACHE_DIR": str(scratch / "inductor"),
        "TRITON_CACHE_DIR": str(scratch / "triton"),
        "KERAS_HOME": str(scratch / "keras"),
        "TMPDIR": str(tmp or scratch),
    }


def _child_env(cell: Cell, scratch: Path, tmp: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    # The worker must import what this process imports (plugins installed in odd places, tests).
    paths = [p for p in sys.path if p and os.path.isdir(p)]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys([os.getcwd(), *paths]))
    env.update(private_caches(scratch, tmp))
    env.update({
        "TF_CPP_MIN_LOG_LEVEL": env.get("TF_CPP_MIN_LOG_LEVEL", "2"),
        "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
        "TF_FORCE_GPU_ALLOW_GROWTH": "true",
    })
    return env


def _describe_exit(code: int) -> tuple[str, str]:
    if code < 0:
        sig = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
        if -code == signal.SIGKILL:
            return "oom", f"worker killed by {sig} (most likely the kernel's out-of-memory killer)"
        return "error", f"worker crashed with signal {sig}"
    return "error", f"worker exited with code {code} before reporting a result"


class Runner:
    """Executes cells in local subprocesses. Another executor (Ray, SLURM) would take the same
    Cell dicts and return the same value dicts."""

    def __init__(self, plugins: Plugins | None = None, progress: Progress | None = None,
                 versions: Callable[[str], str | None] | None = None):
        self.plugins = plugins
        self.progress = progress or QuietProgress()
        self.versions = versions or (lambda backend: None)
        self._child: subprocess.Popen | None = None
        self._tmp: Path | None = None  # the run's temporary folder, shared by its cells
        self._signal: int | None = None

    # -- signals -----------------------------------------------------------

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._signal = signum
        if self._child is not None:
            self._kill(self._child)

    @staticmethod
    def _kill(proc: subprocess.Popen) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                return
            try:
                proc.wait(timeout=KILL_GRACE_S)
                return
            except subprocess.TimeoutExpired:
                continue

    # -- execution ---------------------------------------------------------

    def run(self, state: RunState) -> list[dict[str, Any]]:
        """Run every planned cell not yet done; returns the records written. Raises Interrupted."""
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        written = []
        self._tmp = Path(tempfile.mkdtemp(prefix="bench-run-"))
        try:
            todo = [p for p in state.planned if p.cell.cell_id not in state.done]
            total = len(state.planned)
            index = total - len(todo)
            for planned in todo:
                if self._signal is not None:
                    raise Interrupted(self._signal)
                index += 1
                cell = planned.cell
                self.progress.cell_started(index, total, cell)
                if planned.skip_reason:
                    values, wall, log = {"status": "skipped", "message": planned.skip_reason}, 0.0, None
                else:
                    values, wall, log = self._run_in_subprocess(cell, state.run_dir)
                    if self._signal is not None:
                        raise Interrupted(self._signal)
                record = make_record(state.run_id, cell, state.env, values, self.versions(cell.backend), wall, log)
                results.append_record(state.run_dir, record)
                state.done.add(cell.cell_id)
                written.append(record)
                self.progress.cell_finished(index, total, record)
                self._notify(record)
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            shutil.rmtree(self._tmp, ignore_errors=True)
        return written

    def _notify(self, record: dict[str, Any]) -> None:
        if self.plugins is None:
            return
        for plugin, _, exc in call_each(self.plugins, "bench_cell_finished", record=record):
            if exc is not None:
                self.progress.warn(f"plugin {plugin}: bench_cell_finished failed: {type(exc).__name__}: {exc}")

    def _run_in_subprocess(self, cell: Cell, run_dir: Path) -> tuple[dict[str, Any], float, str]:
        logs = run_dir / "logs"
        logs.mkdir(exist_ok=True)
        log_rel = f"logs/{cell.cell_id}.log"
        scratch = Path(tempfile.mkdtemp(prefix="bench-cell-"))
        read_fd, write_fd = os.pipe()
        env = _child_env(cell, scratch, self._tmp)
        env[EVENT_FD_ENV] = str(write_fd)
        started = time.monotonic()
        result: dict[str, Any] | None = None
        timed_out = False
        try:
            with open(run_dir / log_rel, "wb") as log:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "harness.worker"], stdin=subprocess.PIPE, stdout=log,
                    stderr=subprocess.STDOUT, pass_fds=(write_fd,), start_new_session=True, env=env,
                )
                self._child = proc
                os.close(write_fd)
                write_fd = -1
                try:
                    proc.stdin.write(json.dumps(cell.to_dict()).encode())
                    proc.stdin.close()
                except BrokenPipeError:
                    pass
                result, timed_out = self._follow(proc, read_fd, cell, started)
                self._kill(proc)  # the worker's whole process group, helpers included
                proc.wait()
        finally:
            self._child = None
            os.close(read_fd)
            if write_fd >= 0:
                os.close(write_fd)
            shutil.rmtree(scratch, ignore_errors=True)
        wall = time.monotonic() - started
        if timed_out:
            return {"status": "timeout", "message": f"no result within the {cell.timeout_s:g} s timeout"}, wall, log_rel
        if result is None:
            status, message = _describe_exit(proc.returncode)
            return {"status": status, "message": message}, wall, log_rel
        return result, wall, log_rel

    def _follow(self, proc: subprocess.Popen, fd: int, cell: Cell, started: float) -> tuple[dict | None, bool]:
        """Read the worker's events until it reports a result, exits, or its time is up."""
        deadline = started + cell.timeout_s
        buffer = b""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None, True
            if self._signal is not None:
                return None, False
            ready, _, _ = select.select([fd], [], [], min(remaining, 0.5))
            if not ready:
                self.progress.event(cell, {"event": "tick"}, time.monotonic() - started)
                continue
            try:
                chunk = os.read(fd, 65536)
            except InterruptedError:
                continue
            if not chunk:  # worker closed its end: exited or crashed
                return None, False
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if event.get("event") == "result":
                    return event.get("values") or {}, False
                self.progress.event(cell, event, time.monotonic() - started)
