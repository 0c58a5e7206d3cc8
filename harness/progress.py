"""Live progress on stderr: a line per cell start and finish, epoch lines at most every few
seconds, and, when a cell has said nothing for a while, what it is doing; each with the run's
elapsed time."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from harness.api import Cell


PHASES = {"import": "importing the framework", "load": "loading the data",
          "setup": "setting up (data to the device, model, optimizer)", "initial loss": "computing the initial loss",
          "latency": "timing single steps"}


def _label(cell: Cell) -> str:
    label = f"{cell.backend} {cell.task} {cell.mode} {cell.device}"
    return label + (f" r{cell.repeat}" if cell.repeat else "")


class ConsoleProgress:
    EPOCH_EVERY_S = 2.0
    HEARTBEAT_S = 30.0

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stderr
        self.started = time.monotonic()
        self.last = self.started
        self.prefix = ""
        self.doing = ""

    def _print(self, text: str) -> None:
        self.last = time.monotonic()
        try:
            print(f"[{self.last - self.started:6.0f}s] {text}", file=self.stream, flush=True)
        except OSError:  # the terminal is gone (SIGHUP): the run stops cleanly, its records are what counts
            pass

    def cell_started(self, index: int, total: int, cell: Cell) -> None:
        self.prefix = f"[{index}/{total}] {_label(cell)}"
        self.doing = "starting"
        self._print(f"{self.prefix}: starting")

    def event(self, cell: Cell, event: dict[str, Any], elapsed: float) -> None:
        """A worker's event, or {"event": "tick"} from the runner while the worker is silent."""
        kind = event.get("event")
        if kind == "phase":
            self.doing = PHASES.get(event.get("phase"), str(event.get("phase")))
        elif kind == "epoch_start":
            self.doing = f"training epoch {event.get('epoch')}/{event.get('epochs')}"
        elif kind == "tick" and time.monotonic() - self.last >= self.HEARTBEAT_S:
            self._print(f"{self.prefix}: still {self.doing} ({elapsed:.0f} s into the cell)")
        last_epoch = event.get("epoch") == event.get("epochs")
        if kind == "epoch" and (last_epoch or time.monotonic() - self.last >= self.EPOCH_EVERY_S):
            value = event.get("value")
            shown = f"{event.get('metric')} {value:.4f}" if isinstance(value, (int, float)) else ""
            self._print(f"{self.prefix}: epoch {event['epoch']}/{event['epochs']} {shown} "
                        f"(trained {event.get('train_s', 0):.1f} s)")

    def cell_finished(self, index: int, total: int, record: dict[str, Any]) -> None:
        status = record["status"]
        if status == "ok":
            value = record.get("metric_value")
            met = "target met" if record.get("target_met") else "target missed"
            detail = f"{record.get('metric')} {value:.4f}, {met}, {record.get('train_s') or 0:.1f} s training"
        else:
            detail = record.get("message") or ""
        self._print(f"{self.prefix}: {status} {detail}".rstrip())

    def warn(self, message: str) -> None:
        self._print(f"warning: {message}")
