"""Lockstep: the cells of a group run as live processes that take turns, one epoch each, so that every one of
them is timed under the same conditions as the others.

On a shared virtual machine whole stretches of time run up to twice as slow (the host's other tenants): cells
run one after another each land in whatever stretch they land in, and the ratio of two of them carries that
noise. Cells that alternate epochs share every stretch, and their ratio does not (docs/repeats-and-compare.md).

The protocol: each worker has two named pipes in the group's folder, `N.grant` (the coordinator writes one byte:
your turn) and `N.done` (the worker writes one byte: ready, or my turn is over). A worker announces it is ready
once its process is up, waits for its first turn before it imports anything, and hands the turn back after each
epoch (and each block of epochs timed together); its last turn ends when its process does. Only one process of
a group computes at any time; the coordinator (`Coordinator`, in the bench process) hands turns round the
group in order.
"""

from __future__ import annotations

import os
import select
import time
from pathlib import Path
from typing import Callable, Sequence

TURNS_ENV = "BENCH_TURNS"  # "GROUP_FOLDER/INDEX" of a worker in a lockstep group
READY, DONE, GRANT = b"r", b"y", b"g"  # worker: ready, turn over; coordinator: your turn
POLL_S = 0.05  # how often the coordinator looks whether the worker holding the turn has ended


def group_of(value: str | None) -> str | None:
    """The group folder of a TURNS_ENV value (None for a cell that runs alone)."""
    return os.path.dirname(value) if value else None


class Turns:
    """The worker's side: wait for a turn, hand it back. A no-op where the cell runs alone."""

    def __init__(self, value: str | None = None):
        value = os.environ.get(TURNS_ENV) if value is None else value
        self.group = group_of(value)
        self.waited_s = 0.0  # time spent waiting for turns, kept out of the cell's cold start and total
        self._grant = self._done = None
        if value:
            self._done = os.open(f"{value}.done", os.O_WRONLY)
            self._grant = os.open(f"{value}.grant", os.O_RDONLY)

    def first(self) -> None:
        """Ready; wait for the first turn (the others' imports and compiles are not timed beside ours)."""
        if self._grant is not None:
            os.write(self._done, READY)
            self._wait()

    def pass_on(self) -> None:
        """This turn is over: let the next cell of the group run, and wait for the next turn."""
        if self._grant is not None:
            os.write(self._done, DONE)
            self._wait()

    def _wait(self) -> None:
        started = time.monotonic()
        if not os.read(self._grant, 1):
            raise RuntimeError("the lockstep coordinator is gone")
        self.waited_s += time.monotonic() - started


class Coordinator:
    """The bench process's side: named pipes for `size` workers in `folder`, and the turns handed round."""

    def __init__(self, folder: Path, size: int):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._grant, self._done = [], []
        for i in range(size):
            for end in ("grant", "done"):
                os.mkfifo(folder / f"{i}.{end}")
            # Read-write ends never block on open and never see end-of-file: a worker that dies is noticed by
            # its process ending (alive), not by its pipe.
            self._grant.append(os.open(folder / f"{i}.grant", os.O_RDWR))
            self._done.append(os.open(folder / f"{i}.done", os.O_RDWR | os.O_NONBLOCK))

    def env(self, index: int) -> dict[str, str]:
        return {TURNS_ENV: str(self.folder / str(index))}

    def run(self, alive: Sequence[Callable[[], bool]], stopping: Callable[[], bool]) -> None:
        """Wait until every live worker is ready, then hand turns round them in order until all have ended.
        `alive[i]()`: whether worker i's cell is still running (its process, and the bench thread following it)."""
        waiting = set(range(len(alive)))
        while waiting and not stopping():
            for i in list(waiting):
                if self._read(i, 0) or not alive[i]():
                    waiting.discard(i)
            if waiting:
                time.sleep(POLL_S / 5)
        live = [i for i in range(len(alive)) if alive[i]()]
        while live and not stopping():
            for i in list(live):
                if not alive[i]():
                    live.remove(i)
                    continue
                os.write(self._grant[i], GRANT)
                while not stopping() and not self._read(i, POLL_S):
                    if not alive[i]():  # its last turn ended with its process
                        live.remove(i)
                        break

    def _read(self, i: int, timeout: float) -> bool:
        ready, _, _ = select.select([self._done[i]], [], [], timeout)
        if not ready:
            return False
        try:
            return bool(os.read(self._done[i], 1))
        except BlockingIOError:
            return False

    def close(self) -> None:
        for fd in (*self._grant, *self._done):
            os.close(fd)
        for path in self.folder.glob("*.*"):
            path.unlink(missing_ok=True)
        self.folder.rmdir()
