"""Runs planned cells through an executor, each in its own process group, and saves each record as it finishes.

A cell that crashes, hangs, runs out of memory or sends something malformed is recorded
with that status and the run goes on. SIGINT, SIGTERM or SIGHUP (the terminal closed) stops and
cancels the cells still running or queued, keeps everything already saved, and leaves the run
resumable (with any executor); so does a record or log that cannot be written (durable.SaveError,
e.g. a full disk), with no torn record.
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from harness import results
from harness.api import Cell, load_ref
from harness.cell import lifetime
from harness.execute.local import LocalExecutor
from harness.executor import PLACEMENT, Executor, Finished, Launch, log_name
from harness.plugins.manager import Plugins, _describe, call_each
from harness.run.plan import PlannedCell
from harness.store import durable, record
from harness.store.durable import SaveError
from harness.store.safe_text import one_line

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


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
    """A full record: every column present, the run's from the cell and the run, the measured ones from
    `values` (checked again, as they may come from another machine), each of its declared kind and every
    text printable; what had to be nulled is in `warnings`."""
    measured = record.measured(values)
    full: dict[str, Any] = {column: None for column in record.SCHEMA}
    full.update({
        "schema_version": results.SCHEMA_VERSION,
        "run_id": run_id,
        "cell_id": cell.cell_id,
        "timestamp": results.utc_now(),
        "backend": cell.backend,
        "framework_version": framework_version,
        "task": cell.task,
        "mode": cell.mode,
        "phase": cell.phase,
        "device": cell.device,
        "device_name": device_name(cell, env),
        "precision": cell.precision,
        "batch_size": cell.hp.batch_size,
        "epochs": cell.hp.epochs,
        "optimizer": cell.hp.optimizer,
        "lr": cell.hp.lr,
        "weight_decay": cell.hp.weight_decay,
        "l1": cell.hp.l1,
        "seed": cell.seed,
        "repeat": cell.repeat,
        "train_size": cell.train_size,
        "test_size": cell.test_size,
        "threads": cell.threads,
        "python": cell.python_label,
        "lockstep": cell.lockstep,
        "message": "",
        "wall_s": wall_s,
        "log": log,
        "env": env,
    })
    full.update({k: v for k, v in measured.items() if k != "env"})
    if isinstance(measured.get("env"), dict):  # the worker's own: where and with what the cell actually ran
        full["env"] = {**env, **measured["env"]}  # plugins' extra facts come from the run
        full["device_name"] = device_name(cell, full["env"])
        full["framework_version"] = worker_framework_version(cell, measured["env"]) or framework_version
    full, warnings = record.conform(full)
    full["warnings"] = [*(full.get("warnings") or []), *warnings]
    return full


def worker_framework_version(cell: Cell, worker_env: dict[str, Any]) -> str | None:
    """The framework's version where the cell ran (another --python environment, another node), from the
    versions its worker read of the backend's distributions; None where it did not read one."""
    found = worker_env.get("versions")
    if not isinstance(found, dict):
        return None
    try:
        distributions = tuple(load_ref(cell.backend_ref).distributions)
    except Exception:  # noqa: BLE001 - a backend that cannot be loaded here keeps the run's own version
        return None
    return next((found[d] for d in distributions if isinstance(found.get(d), str) and found[d]), None)


class Runner:
    """Hands the planned cells to an executor (default: `local`, one at a time on this machine) and
    writes each record, and a remote cell's log, into the run folder as it comes back: the runner is
    the only writer of the run folder."""

    def __init__(self, plugins: Plugins | None = None, progress: Progress | None = None,
                 versions: Callable[[str], str | None] | None = None, executor: Executor | None = None):
        self.plugins = plugins
        self.progress = progress or QuietProgress()
        self.versions = versions or (lambda backend: None)
        self.executor = executor or LocalExecutor()
        self._signal: int | None = None

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._signal = signum  # the executor sees it within half a second and cancels what is running

    def run(self, state: RunState) -> list[dict[str, Any]]:
        """Run every planned cell not yet done; returns the records written. Raises Interrupted, or
        SaveError when a record or a log cannot be written (the run stops there, resumable)."""
        # A signal the user had ignored stays ignored: `nohup bench run` survives a closed terminal.
        previous = {s: signal.signal(s, self._on_signal) for s in STOP_SIGNALS
                    if signal.getsignal(s) != signal.SIG_IGN}
        written: list[dict[str, Any]] = []
        lifetime.remove_stale()  # what a killed run left: temporary folders, marked processes
        tmp = lifetime.owned_tmpdir(lifetime.RUN_TMP)
        try:
            todo = [p for p in state.planned if p.cell.cell_id not in state.done]
            total = len(state.planned)
            numbers = itertools.count(total - len(todo) + 1)
            for planned in todo:
                if planned.skip_reason:
                    index = next(numbers)
                    self.progress.cell_started(index, total, planned.cell)
                    values = {"status": "skipped", "message": planned.skip_reason}
                    self._save(state, Finished(planned.cell, values, 0.0, {"executor": self.executor.name}),
                               index, total, written)
            cells = [p.cell for p in todo if not p.skip_reason]
            indices: dict[str, int] = {}

            def started(cell: Cell) -> None:
                indices[cell.cell_id] = next(numbers)
                self.progress.cell_started(indices[cell.cell_id], total, cell)

            logs = state.run_dir / "logs"
            try:
                logs.mkdir(exist_ok=True)
            except OSError as exc:
                raise SaveError(f"cannot make {logs}: {exc.strerror or exc}") from None
            launch = Launch(state.run_id, logs, tmp, started, self.progress.event, lambda: self._signal is not None)
            expected = {c.cell_id for c in cells}
            with contextlib.closing(self.executor.map_unordered(cells, launch)) as outcomes:
                for finished in outcomes:
                    cell_id = finished.cell.cell_id
                    if cell_id not in expected or cell_id in state.done:
                        self.progress.warn(one_line(f"executor {self.executor.name} returned {cell_id} again; "
                                                    f"ignored"))
                        continue
                    if cell_id not in indices:
                        started(finished.cell)
                    self._save(state, finished, indices[cell_id], total, written)
            if self._signal is not None:
                raise Interrupted(self._signal)
            for cell in cells:  # an executor must account for every cell: none is silently lost
                if cell.cell_id not in state.done:
                    values = {"status": "error", "message": f"executor {self.executor.name} returned no result"}
                    self._save(state, Finished(cell, values, None, {"executor": self.executor.name}),
                               indices.get(cell.cell_id) or next(numbers), total, written)
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            shutil.rmtree(tmp, ignore_errors=True)
        return written

    def _save(self, state: RunState, finished: Finished, index: int, total: int,
              written: list[dict[str, Any]]) -> None:
        cell = finished.cell
        log = None
        if finished.log is not None:  # brought back from another machine
            log = log_name(cell)
            durable.replace(state.run_dir / log, finished.log)
        elif (state.run_dir / log_name(cell)).exists():
            log = log_name(cell)
        saved = make_record(state.run_id, cell, state.env, finished.values, self.versions(cell.backend),
                            finished.wall_s, log)
        saved.update({k: v for k, v in finished.placement.items() if k in PLACEMENT and v is not None})
        saved, warnings = record.conform(saved)  # placement comes from the executor, a plugin's perhaps
        saved["warnings"] = [*(saved.get("warnings") or []), *warnings]
        results.append_record(state.run_dir, saved)
        state.done.add(cell.cell_id)
        written.append(saved)
        self.progress.cell_finished(index, total, saved)
        for warning in saved["warnings"] or []:
            self.progress.warn(f"{cell.cell_id}: {warning}")
        self._notify(saved)

    def _notify(self, saved: dict[str, Any]) -> None:
        if self.plugins is None:
            return
        for plugin, _, exc in call_each(self.plugins, "bench_cell_finished", record=saved):
            if exc is not None:
                self.progress.warn(one_line(f"plugin {plugin}: bench_cell_finished failed: {_describe(exc)}"))
