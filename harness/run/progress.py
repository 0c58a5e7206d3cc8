"""Live progress on stderr: a line per cell start and finish, epoch lines at most every few
seconds, and, when a cell has said nothing for a while, what it is doing; each with the run's
elapsed time, and cell lines with the time left where earlier runs of the same cells tell it
(harness.run.estimate)."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, TextIO

from harness.api import Cell
from harness.run.estimate import Estimates, left_text
from harness.store.record import finite_number

PHASES = {"import": "importing the framework", "load": "loading the data",
          "setup": "setting up (data to the device, model, optimizer)", "initial loss": "computing the initial loss",
          "train split": "scoring the training samples", "latency": "timing single steps",
          "inference": "timing predictions"}


def _label(cell: Cell) -> str:
    label = f"{cell.backend} {cell.task} {cell.mode} {cell.device}"
    # The axes that the cells of one lockstep group (running at once, taking turns) most often differ in.
    label += f" n{cell.train_size}" if cell.train_size is not None else ""
    label += f" py:{cell.python_label}" if cell.python_label else ""
    label += " inference" if cell.phase != "train" else ""
    return label + (f" r{cell.repeat}" if cell.repeat else "")


def _number(value: Any, spec: str) -> str:
    """A finite number formatted, '?' for anything else: a record's value may be null (nulled for being of the
    wrong kind, or never measured), and a progress line must not stop the run over it."""
    number = finite_number(value)
    return "?" if number is None else format(number, spec)


class ConsoleProgress:
    EPOCH_EVERY_S = 2.0
    HEARTBEAT_S = 30.0

    def __init__(self, stream: TextIO | None = None, estimates: Estimates | None = None):
        self.stream = stream or sys.stderr
        self.estimates = estimates or Estimates({})
        self.cell_started_at: dict[str, float] = {}
        self.started = time.monotonic()
        self.last = self.started
        self.prefix: dict[str, str] = {}  # per cell: several run at once under some executors
        self.doing: dict[str, str] = {}
        self.lock = threading.Lock()

    def _print(self, text: str) -> None:
        with self.lock:  # whole lines, whichever thread reports
            self.last = time.monotonic()
            try:
                self.stream.write(f"[{self.last - self.started:6.0f}s] {text}\n")
                self.stream.flush()
            except OSError:  # the terminal is gone (SIGHUP): the run stops cleanly, its records are what counts
                pass

    def cell_started(self, index: int, total: int, cell: Cell) -> None:
        self.prefix[cell.cell_id] = f"[{index}/{total}] {_label(cell)}"
        self.doing[cell.cell_id] = "starting"
        self.cell_started_at[cell.cell_id] = time.monotonic()
        self._print(f"{self.prefix[cell.cell_id]}: starting{self._left()}")

    def event(self, cell: Cell, event: dict[str, Any], elapsed: float) -> None:
        """A worker's event, or {"event": "tick"} from the runner while the worker is silent."""
        kind = event.get("event")
        prefix = self.prefix.get(cell.cell_id, _label(cell))
        if kind == "phase":
            self.doing[cell.cell_id] = PHASES.get(event.get("phase"), str(event.get("phase")))
        elif kind == "epoch_start":
            self.doing[cell.cell_id] = f"training epoch {event.get('epoch')}/{event.get('epochs')}"
        elif kind == "tick" and time.monotonic() - self.last >= self.HEARTBEAT_S:
            self._print(f"{prefix}: still {self.doing.get(cell.cell_id, 'running')} ({elapsed:.0f} s into the cell)")
        last_epoch = event.get("epoch") == event.get("epochs")
        if kind == "epoch" and (last_epoch or time.monotonic() - self.last >= self.EPOCH_EVERY_S):
            value = event.get("value")
            shown = f"{event.get('metric')} {_number(value, '.4f')}" if _number(value, "") != "?" else ""
            self._print(f"{prefix}: epoch {event.get('epoch')}/{event.get('epochs')} {shown} "
                        f"(trained {_number(event.get('train_s'), '.1f')} s)")

    def cell_finished(self, index: int, total: int, record: dict[str, Any]) -> None:
        status = record["status"]
        if status == "ok" and record.get("phase") == "inference":
            p50, rate = record.get("infer_ms_p50"), record.get("infer_samples_per_s_b1024")
            detail = ", ".join(([f"batch-1 p50 {p50:.3g} ms"] if isinstance(p50, (int, float)) else [])
                               + ([f"{rate:,.0f} samples/s at batch 1024"] if isinstance(rate, (int, float)) else []))
        elif status == "ok":
            met = "target met" if record.get("target_met") is True else "target missed"
            detail = (f"{record.get('metric') or 'metric'} {_number(record.get('metric_value'), '.4f')}, {met}, "
                      f"{_number(record.get('train_s'), '.1f')} s training")
        else:
            detail = record.get("message") or ""
        prefix = self.prefix.pop(record.get("cell_id"), f"[{index}/{total}]")
        self.doing.pop(record.get("cell_id"), None)
        self.cell_started_at.pop(record.get("cell_id"), None)
        self.estimates.finished(record.get("cell_id"), record.get("wall_s"))
        self._print(f"{prefix}: {status} {detail}".rstrip() + self._left())

    def _left(self) -> str:
        now = time.monotonic()
        left = left_text(self.estimates.seconds_left({i: now - t for i, t in self.cell_started_at.items()}))
        return f" ({left})" if left else ""

    def warn(self, message: str) -> None:
        self._print(f"warning: {message}")
