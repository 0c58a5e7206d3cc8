"""The `local` executor: cells on this machine, one at a time as bench always ran them; with `--jobs N`,
up to N cuda cells at once, each on a GPU of its own and an equal share of the cores. A CPU cell always
runs alone: cells sharing cores would time each other. A lockstep group's cells (bench run --lockstep) run as
live processes that take turns, so that one computes at a time (harness.measure.lockstep)."""

from __future__ import annotations

import itertools
import os
import queue
import threading
import uuid
from collections import deque
from typing import Any, Callable, Iterator

from harness.api import Cell
from harness.cell.parent_node import run_here
from harness.executor import Executor, Finished, Launch, Option, whole
from harness.measure.lockstep import Coordinator


def _gpu_ids(value: Any) -> list[str]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(i, str) and i.strip() for i in items):
        raise ValueError("GPU indices or UUIDs, comma-separated")
    ids = [i.strip() for i in items]
    if len(set(ids)) < len(ids):
        raise ValueError("each GPU once (two cells never share a GPU)")
    return ids


def visible_gpus() -> list[str]:
    """The GPUs this process may use: CUDA_VISIBLE_DEVICES when set, else every GPU nvidia-smi lists."""
    from harness.measure.envinfo import gpus

    given = os.environ.get("CUDA_VISIBLE_DEVICES")
    if given is not None:
        return [g.strip() for g in given.split(",") if g.strip()]
    return [g["index"] for g in gpus()]


def core_share(slot: int, slots: int) -> set[int]:
    """Slot `slot`'s equal share of this process's cores (at least one each)."""
    cores = sorted(os.sched_getaffinity(0))
    share = cores[slot * len(cores) // slots:(slot + 1) * len(cores) // slots]
    return set(share or [cores[slot % len(cores)]])


class LocalExecutor(Executor):
    name = "local"
    description = "this machine (the default)"
    options = (
        Option("jobs", whole(1), 1, "cuda cells at once, each on its own GPU (CUDA_VISIBLE_DEVICES) and an equal "
               "share of the cores; CPU cells always run alone", flag="--jobs"),
        Option("gpus", _gpu_ids, None, "GPUs to hand out, indices or UUIDs (default: every visible one)"),
    )

    def __init__(self, settings: dict[str, Any] | None = None):
        super().__init__(settings)
        self._cancel = threading.Event()
        self._running: dict[str, threading.Thread] = {}

    def map_unordered(self, cells: list[Cell], launch: Launch) -> Iterator[Finished]:
        jobs = self.settings["jobs"]
        gpus = (self.settings["gpus"] or visible_gpus())[:jobs] if jobs > 1 else []
        free = list(gpus)
        finished: queue.Queue = queue.Queue()
        pending = deque(cells)
        self._cancel.clear()

        def stopping() -> bool:
            return launch.stopping() or self._cancel.is_set()

        try:
            while (pending or self._running) and not stopping():
                while pending and not stopping():
                    cell = pending[0]
                    if cell.lockstep and not self._running:
                        group = [pending.popleft() for _ in itertools.takewhile(
                            lambda c: c.lockstep == cell.lockstep, list(pending))]
                        for member, outcome in zip(group, self._run_group(group, launch, stopping)):
                            if outcome is None:
                                self.cancelled.append(member.cell_id)
                            else:
                                yield outcome
                    elif gpus and cell.device == "cuda" and not cell.lockstep:
                        if not free:
                            break
                        gpu = free.pop(0)
                        thread = threading.Thread(target=self._on_gpu, daemon=True, name=f"bench {cell.cell_id}",
                                                  args=(cell, gpu, core_share(gpus.index(gpu), len(gpus)), launch,
                                                        stopping, finished))
                        self._running[pending.popleft().cell_id] = thread
                        thread.start()
                    elif self._running:
                        break  # this cell (or lockstep group) runs alone: once the GPU cells now running are done
                    else:
                        cell = pending.popleft()
                        outcome = self._run(cell, launch, stopping)  # in this thread, as always
                        if outcome is None:
                            self.cancelled.append(cell.cell_id)
                        else:
                            yield outcome
                if not self._running:
                    continue
                try:
                    cell, gpu, outcome = finished.get(timeout=0.2)
                except queue.Empty:
                    continue
                self._running.pop(cell.cell_id).join()
                free.append(gpu)
                if outcome is not None:
                    yield outcome
        finally:
            self.cancel()

    def _run(self, cell: Cell, launch: Launch, stopping: Callable[[], bool],
             extra_env: dict[str, str] | None = None) -> Finished | None:
        launch.started(cell)
        values, wall, placement = run_here(cell, launch.log_path(cell), launch.tmp, self.name,
                                           lambda event, elapsed: launch.event(cell, event, elapsed), stopping,
                                           extra_env)
        if values is None or stopping():  # cut short: no record, the cell stays to do
            return None
        return Finished(cell, values, wall, placement)

    def _run_group(self, group: list[Cell], launch: Launch, stopping: Callable[[], bool]) -> list[Finished | None]:
        """A lockstep group: every cell's worker started at once, each in a thread of its own as a cuda cell's is,
        and the turns handed round them in this one until all have ended."""
        coordinator = Coordinator(launch.tmp / f"lockstep-{uuid.uuid4().hex[:8]}", len(group))
        outcomes: list[Finished | None] = [None] * len(group)

        def run(i: int) -> None:
            outcomes[i] = self._run(group[i], launch, stopping, coordinator.env(i))

        threads = [threading.Thread(target=run, args=(i,), daemon=True, name=f"bench {cell.cell_id}")
                   for i, cell in enumerate(group)]
        try:
            for thread in threads:
                thread.start()
            coordinator.run([thread.is_alive for thread in threads], stopping)
        finally:
            for thread in threads:
                thread.join()
            coordinator.close()
        return outcomes

    def _on_gpu(self, cell: Cell, gpu: str, cores: set[int], launch: Launch, stopping: Callable[[], bool],
                finished: queue.Queue) -> None:
        outcome = None
        try:
            os.sched_setaffinity(0, cores)  # this thread's mask, inherited by the worker it starts
            outcome = self._run(cell, launch, stopping, {"CUDA_VISIBLE_DEVICES": gpu})
        finally:
            finished.put((cell, gpu, outcome))

    def cancel(self) -> None:
        """Stop the cells running in threads (the one run in the caller's thread stops with the run)."""
        if not self._running:
            return
        self._cancel.set()
        for thread in list(self._running.values()):
            thread.join()
        self.cancelled += list(self._running)
        self._running.clear()
