"""The clock of a cell's phases. Every clock read in a cell is preceded by the backend's sync."""

from __future__ import annotations

import time
from typing import Any, Callable, TypeVar

clock: Callable[[], float] = time.monotonic  # CLOCK_MONOTONIC: comparable across processes
T = TypeVar("T")
R = TypeVar("R")


class PhaseClock:
    """Times the phases of one cell. Every clock read is preceded by the backend's sync of the current
    state, so device work queued by a phase is counted in that phase and in no other."""

    def __init__(self, sync: Callable[[Any], None]):
        self._sync = sync
        self.state: Any = None  # the backend's state, once built

    def _synced(self) -> None:
        if self.state is not None:
            self._sync(self.state)

    def run(self, fn: Callable[[], T], new_state: bool = False) -> tuple[T, float]:
        """Run fn between two synced clock reads; with new_state, its result becomes the state."""
        self._synced()
        start = clock()
        result = fn()
        if new_state:
            self.state = result
        self._synced()
        return result, clock() - start

    def run_metered(self, fn: Callable[[], T], read: Callable[[], R],
                    new_state: bool = False) -> tuple[T, float, tuple[R, R]]:
        """As `run`, with `read` (an energy counter) called right after each sync, next to the clock reads:
        the counter's window is the clock's, device work queued before it excluded and the work it ran
        included."""
        self._synced()
        before = read()
        start = clock()
        result = fn()
        if new_state:
            self.state = result
        self._synced()
        seconds = clock() - start
        return result, seconds, (before, read())

