"""A backend whose epochs take a known time, for testing `bench compare` on real runs: the fake's
training, then a sleep up to PACE_S × $BENCH_TEST_SLOWDOWN (1 by default)."""

from __future__ import annotations

import os
import time

from harness import hookimpl
from tests.fakes import FakeBackend

PACE_S = 0.2


class PacedBackend(FakeBackend):
    name = "paced"
    modes = ("eager",)

    def train_epoch(self, state, order):
        started = time.monotonic()
        state = super().train_epoch(state, order)
        if len(order) > 1:  # whole epochs only, not the single latency steps
            target = PACE_S * float(os.environ.get("BENCH_TEST_SLOWDOWN", "1"))
            time.sleep(max(0.0, target - (time.monotonic() - started)))
        return state


@hookimpl
def bench_backends():
    return [PacedBackend]
