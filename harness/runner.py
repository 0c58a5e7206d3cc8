"""Runs planned cells, each in its own process group, and saves each record as it finishes.

A cell that crashes, hangs, runs out of memory or sends something malformed is recorded
with that status and the run goes on. SIGINT, SIGTERM or SIGHUP (the terminal closed) stops
the current cell, keeps everything already saved, and leaves the run resumable; so does a
record or log that cannot be written (durable.SaveError, e.g. a full disk), with no torn record.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from harness import lifetime, record, results
from harness.api import Cell
from harness.cell_process import run_cell_process
from harness.durable import SaveError
from harness.plan import PlannedCell
from harness.plugins import Plugins, _describe, call_each
from harness.safe_text import one_line

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
LOG_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,199}")


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
    full.update({k: v for k, v in measured.items() if k != "env"})
    if isinstance(measured.get("env"), dict):  # the worker's own: where and with what the cell actually ran
        full["env"] = {**env, **measured["env"]}  # plugins' extra facts come from the run
        full["device_name"] = device_name(cell, full["env"])
    full, warnings = record.conform(full)
    full["warnings"] = [*(full.get("warnings") or []), *warnings]
    return full


def log_name(cell: Cell) -> str:
    """The cell's log, relative to the run folder: logs/<cell id>.log, or a digest of the id where the id
    is not a plain file name (names are checked when plugins load and when a plan is reopened; this
    keeps a path from ever being built from anything else)."""
    if LOG_NAME.fullmatch(cell.cell_id):
        return f"logs/{cell.cell_id}.log"
    return f"logs/cell-{hashlib.sha256(cell.cell_id.encode('utf-8', 'backslashreplace')).hexdigest()[:16]}.log"


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
        """Run every planned cell not yet done; returns the records written. Raises Interrupted, or
        SaveError when a record or a log cannot be written (the run stops there, resumable)."""
        # A signal the user had ignored stays ignored: `nohup bench run` survives a closed terminal.
        previous = {s: signal.signal(s, self._on_signal) for s in STOP_SIGNALS
                    if signal.getsignal(s) != signal.SIG_IGN}
        written = []
        lifetime.remove_stale()  # what a killed run left: temporary folders, marked processes
        self._tmp = lifetime.owned_tmpdir(lifetime.RUN_TMP)
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
                saved = make_record(state.run_id, cell, state.env, values, self.versions(cell.backend), wall, log)
                results.append_record(state.run_dir, saved)
                state.done.add(cell.cell_id)
                written.append(saved)
                self.progress.cell_finished(index, total, saved)
                for warning in saved["warnings"] or []:
                    self.progress.warn(f"{cell.cell_id}: {warning}")
                self._notify(saved)
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            shutil.rmtree(self._tmp, ignore_errors=True)
        return written

    def _notify(self, saved: dict[str, Any]) -> None:
        if self.plugins is None:
            return
        for plugin, _, exc in call_each(self.plugins, "bench_cell_finished", record=saved):
            if exc is not None:
                self.progress.warn(one_line(f"plugin {plugin}: bench_cell_finished failed: {_describe(exc)}"))

    def _run_local(self, cell: Cell, run_dir: Path) -> tuple[dict[str, Any] | None, float, str]:
        try:
            (run_dir / "logs").mkdir(exist_ok=True)
        except OSError as exc:
            raise SaveError(f"cannot make {run_dir / 'logs'}: {exc.strerror or exc}") from None
        log_rel = log_name(cell)
        values, wall = run_cell_process(
            cell, run_dir / log_rel, self._tmp,
            on_event=lambda event, elapsed: self.progress.event(cell, event, elapsed),
            stopping=lambda: self._signal is not None)
        return values, wall, log_rel
