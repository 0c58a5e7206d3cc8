"""A backend for executor tests that claims CUDA (it runs the NumPy fake on the CPU) and records which GPU
and cores it was given and when it trained, so tests can see what ran at once and where."""

from __future__ import annotations

import os
import time

from harness import hookimpl
from tests.fakes import FakeBackend


class PretendGpuBackend(FakeBackend):
    name = "pretend_gpu"
    devices = ("cpu", "cuda")
    modes = ("eager",)
    EPOCH_S = 0.6  # long enough for cells started together to overlap on a busy machine

    def build(self, task, cell, data, weights):
        state = super().build(task, cell, data, weights)
        state["began"] = time.time()
        return state

    def train_epoch(self, state, order):
        state = super().train_epoch(state, order)
        if len(order) > 1:  # whole epochs, not the latency steps
            time.sleep(self.EPOCH_S)
        state["ended"] = time.time()
        return state

    def details(self, state):
        return {"cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
                "cores": sorted(os.sched_getaffinity(0)), "began": state["began"], "ended": state["ended"]}


@hookimpl
def bench_backends():
    return [PretendGpuBackend]
