"""Runs planned cells, each in its own process group, and saves each record as it finishes.

A cell that crashes, hangs or runs out of memory is recorded with that status and
the run goes on. SIGINT or SIGTERM stops the current cell, keeps everything already
saved, and leaves the run resumable.
"""

from __future__ import annotations

import shutil
import signal
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from harness import results
from harness.api import Cell
from harness.plan import PlannedCell
from harness.cell_process import run_cell_process
from harness.plugins import Plugins, call_each


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
    record.update({k: v for k, v in values.items() if k in results.SCHEMA and k != "env"})
    if isinstance(values.get("env"), dict):  # the worker's own: where and with what the cell actually ran
        record["env"] = {**env, **values["env"]}  # plugins' extra facts come from the run
        record["device_name"] = device_name(cell, record["env"])
    return record


class Runner:
    """Executes cells in local subprocesses. Another executor (Ray, SLURM) would take the same
    Cell dicts and return the same value dicts."""

    def __init__(self, plugins: Plugins | None = None, progress: Progress | None = None,
                 versions: Callable[[str], str | None] | None = None):
        self.plugins = plugins
        self.progress = progress or QuietProgress()
        self.versions = versions or (lambda backend: None)
        self._tmp: Path | None = None  # the run's temporary folder, shared by its cells
        self._signal: int | None = None

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._signal = signum  # the cell being run sees it within half a second and is killed

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
                    values, wall, log = self._run_local(cell, state.run_dir)
                    if values is None or self._signal is not None:
                        raise Interrupted(self._signal or signal.SIGINT)
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

    def _run_local(self, cell: Cell, run_dir: Path) -> tuple[dict[str, Any] | None, float, str]:
        logs = run_dir / "logs"
        logs.mkdir(exist_ok=True)
        log_rel = f"logs/{cell.cell_id}.log"
        values, wall = run_cell_process(
            cell, run_dir / log_rel, self._tmp,
            on_event=lambda event, elapsed: self.progress.event(cell, event, elapsed),
            stopping=lambda: self._signal is not None)
        return values, wall, log_rel
