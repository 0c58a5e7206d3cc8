"""Live progress on stderr: one line per cell start, epoch and finish, with elapsed time."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from harness.api import Cell


def _label(cell: Cell) -> str:
    label = f"{cell.backend} {cell.task} {cell.mode} {cell.device}"
    return label + (f" r{cell.repeat}" if cell.repeat else "")


class ConsoleProgress:
    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stderr
        self.started = time.monotonic()
        self.prefix = ""

    def _print(self, text: str) -> None:
        elapsed = time.monotonic() - self.started
        print(f"[{elapsed:6.0f}s] {text}", file=self.stream, flush=True)

    def cell_started(self, index: int, total: int, cell: Cell) -> None:
        self.prefix = f"[{index}/{total}] {_label(cell)}"
        self._print(f"{self.prefix}: starting")

    def event(self, cell: Cell, event: dict[str, Any], elapsed: float) -> None:
        if event.get("event") == "epoch":
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
