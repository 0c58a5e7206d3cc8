"""A cell's compile time, read off the framework's own process-wide compile-time counter.

Every framework keeps a running total per process (torch._dynamo's compile-time metrics, TF's
tf.function graph-building counter, the compile spans JAX reports through jax.monitoring). A cell
counts what that total gained from its setup on, less what was compiled for something other than
training this model: the harness scoring it (`predict`, `loss`; a user's training loop need not) and
one-off toolchain warm-ups. So the figure belongs to setup and the training epochs, the phases whose
time it is part of.

Framework-free: each backend passes in how to read its framework's counter.
"""

from __future__ import annotations

import bisect
import contextlib
import threading
from typing import Callable, Iterator


class CompileClock:
    """Compile seconds since construction, leaving out those spent inside `aside()` blocks.

    `expected`: this mode compiles something for training, so a counter that never moved was not read (a
    framework release renamed it), and the reading is unknown rather than 0 s measured."""

    def __init__(self, read: Callable[[], float], source: str, expected: bool = False):
        self._read = read
        self.source = source  # how the framework measured it, e.g. "jax.monitoring: trace + lower + compile"
        self.expected = expected
        self.problem: str | None = None
        self._start = self._value()
        self._aside = 0.0

    def _value(self) -> float:
        try:
            return float(self._read())
        except (LookupError, AttributeError, TypeError, ValueError) as exc:
            self.problem = f"the framework's compile counter could not be read ({type(exc).__name__}: {exc})"
            return 0.0

    @contextlib.contextmanager
    def aside(self) -> Iterator[None]:
        """What the framework compiles in here is not training this model's (scoring it, a toolchain warm-up)."""
        before = self._value()
        try:
            yield
        finally:
            self._aside += self._value() - before

    def seconds(self) -> float:
        return self._value() - self._start - self._aside

    def reading(self) -> tuple[float | None, str]:
        """(seconds, source): what Backend.compile_time returns; (None, why) when the counter cannot be trusted."""
        seconds = self.seconds()
        if self.problem:
            return None, f"unknown: {self.problem}"
        if self.expected and seconds <= 0:
            return None, (f"unknown: {self.source} read 0 s though this mode compiles (a counter or event this "
                          "framework version renamed?)")
        return seconds, self.source


class SpanUnion:
    """The running length of the union of [start, end] time spans, for frameworks that report
    compile phases as spans (JAX): a phase recorded inside another (a nested trace during
    lowering) is then counted once."""

    def __init__(self) -> None:
        self._starts: list[float] = []  # disjoint spans, sorted
        self._ends: list[float] = []
        self._total = 0.0
        self._lock = threading.Lock()  # a framework may compile on more than one thread

    def add(self, start: float, end: float) -> None:
        with self._lock:
            i = bisect.bisect_left(self._starts, start)
            if i > 0 and self._ends[i - 1] >= start:
                i -= 1
            j = i
            while j < len(self._starts) and self._starts[j] <= end:
                j += 1
            if j > i:  # overlaps spans i..j-1: replace them by their union with this one
                self._total -= sum(e - s for s, e in zip(self._starts[i:j], self._ends[i:j]))
                start, end = min(start, self._starts[i]), max(end, self._ends[j - 1])
            self._starts[i:j], self._ends[i:j] = [start], [end]
            self._total += end - start

    def total(self) -> float:
        return self._total
