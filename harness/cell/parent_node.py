"""One cell on the machine that runs it, for every executor: the worker process (harness.cell.parent) plus
where it ran: the host, the GPU it was given, and how many bench cells shared the machine meanwhile.

`run_here` serves the local executor; `remote_events` is what a cluster's task or job runs on its node:
the same, with the cell's log read back so that it travels home with the result (no shared filesystem).
"""

from __future__ import annotations

import os
import platform
import queue
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from harness.api import Cell
from harness.cell.parent import OnEvent, run_cell_process
from harness.measure.interference import cells_running_here
from harness.measure.lockstep import TURNS_ENV, group_of

SAMPLE_EVERY_S = 1.0
LOG_LIMIT = 8 * 2**20  # a log travels home whole up to this size, else its head and its tail


def gpu_of(visible: str | None) -> tuple[str | None, str | None]:
    """Name and UUID of the GPU a cuda cell runs on: the first of CUDA_VISIBLE_DEVICES (an index or a
    UUID), GPU 0 when it is unset; (None, None) when nvidia-smi can't tell."""
    from harness.measure.envinfo import gpus

    first = (visible or "0").split(",")[0].strip()
    for gpu in gpus():
        if first in (gpu["index"], gpu["uuid"]):
            return gpu["name"], gpu["uuid"]
    return None, None


def run_here(cell: Cell, log_path: Path, tmp: Path | None, executor: str, on_event: OnEvent | None = None,
             stopping: Callable[[], bool] = lambda: False, extra_env: dict[str, str] | None = None,
             ) -> tuple[dict[str, Any] | None, float, dict[str, Any]]:
    """run_cell_process, plus the cell's placement (results.SCHEMA's provenance columns)."""
    on_event = on_event or (lambda event, elapsed: None)
    peak, sampled = 1, 0.0  # the cell itself, until its worker is seen
    group = group_of((extra_env or {}).get(TURNS_ENV))  # its lockstep partners take turns with it: not beside it

    def watch(event: dict[str, Any], elapsed: float) -> None:
        nonlocal peak, sampled
        if time.monotonic() - sampled >= SAMPLE_EVERY_S:  # the first event comes once the worker runs
            peak, sampled = max(peak, cells_running_here(group)), time.monotonic()
        on_event(event, elapsed)

    values, wall = run_cell_process(cell, log_path, tmp, watch, stopping, extra_env)
    placement: dict[str, Any] = {"host": platform.node(), "executor": executor, "node_cells": peak}
    if cell.device == "cuda":
        visible = (extra_env or {}).get("CUDA_VISIBLE_DEVICES", os.environ.get("CUDA_VISIBLE_DEVICES"))
        name, placement["gpu_uuid"] = gpu_of(visible)
        if name:
            placement["device_name"] = name
    return values, wall, placement


def read_log(path: Path, limit: int = LOG_LIMIT) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        return f"[bench: the cell's log could not be read on {platform.node()}: {exc}]\n".encode()
    if len(data) <= limit:
        return data
    half = limit // 2
    return (data[:half] + f"\n[bench: {len(data) - limit} bytes of this log left out]\n".encode() + data[-half:])


def remote_events(cell_data: dict[str, Any], executor: str, env: dict[str, str]) -> Iterator[dict[str, Any]]:
    """Run one cell on this node for a cluster executor, and report as it goes: {"started": {...}}, then
    the worker's events as {"event": ..., "elapsed": s}, and last {"result": {values, wall_s, placement,
    log}}. `env` (the driver's bench settings) is added to the worker's environment.

    Whatever ends this generator early (the engine cancelling the task, a signal turned into an
    exception) stops the worker and everything it started before the exception goes on."""
    cell = Cell.from_dict(cell_data)
    folder = Path(tempfile.mkdtemp(prefix="bench-node-"))
    events: queue.Queue = queue.Queue()
    stop = threading.Event()
    outcome: dict[str, Any] = {}

    def forward(event: dict[str, Any], elapsed: float) -> None:
        if event.get("event") != "tick":  # the driver keeps its own heartbeat
            events.put({"event": event, "elapsed": elapsed})

    def work() -> None:
        try:
            outcome["run"] = run_here(cell, folder / "cell.log", folder, executor, forward, stop.is_set, env)
        except BaseException as exc:  # noqa: BLE001 - reported to the driver as the cell's error
            outcome["error"] = exc
        finally:
            events.put(None)

    thread = threading.Thread(target=work, name=f"bench cell {cell.cell_id}", daemon=True)
    try:
        yield {"started": {"host": platform.node()}}
        thread.start()
        while True:
            try:
                item = events.get(timeout=0.5)
            except queue.Empty:
                continue
            if item is None:
                break
            yield item
        if "error" in outcome:
            error = outcome["error"]
            values, wall, placement = {"status": "error", "message": f"bench on {platform.node()}: "
                                       f"{type(error).__name__}: {error}"}, None, {"host": platform.node()}
        else:
            values, wall, placement = outcome["run"]
        yield {"result": {"values": values, "wall_s": wall, "placement": placement,
                          "log": read_log(folder / "cell.log")}}
    finally:
        stop.set()  # the worker sees it within half a second and is killed with its process group
        if thread.is_alive():
            thread.join()
        shutil.rmtree(folder, ignore_errors=True)
