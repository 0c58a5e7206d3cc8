"""The Backend class: what bench calls, in the order the worker calls it.

Class-level methods (availability, unsupported_reason) run in bench's parent
process and must not import the framework; everything else runs in the cell's
own worker process, after import_framework.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from harness.api import OPTIMIZERS, Backend, Cell, Dataset, Task, Weights


@dataclass
class State:
    """Everything one cell trains: returned by build, passed to every other method."""

    network: Any  # bench_numpy.network.Network
    optimizer: Any  # bench_numpy.optimizers.Optimizer
    data: Dataset
    loss_fn: Any
    threads: int


class NumpyBackend(Backend):
    name = "numpy"
    module = "numpy"  # the framework's import name: availability() looks for it without importing it
    distributions = ("numpy",)  # its pip distribution: gives the version recorded with every result
    modes = ("eager",)  # NumPy has nothing to compile: one mode, declared honestly
    devices = ("cpu",)
    precisions = ("fp32",)
    optimizers = OPTIMIZERS  # all five, per the Hyperparams docstring
    penalties = frozenset({"weight_decay", "l1"})  # both, in the update and in loss(); undeclared ones are skipped
    layer_kinds = frozenset({"Dense", "ReLU", "Flatten"})

    @classmethod
    def unsupported_reason(cls, task: Task, cell: Cell) -> str | None:
        """The default check names the missing layer kinds; say also that it is a choice of this backend."""
        missing = task.model().layer_kinds() - cls.layer_kinds
        if missing:
            return (f"bench-numpy implements only {', '.join(sorted(cls.layer_kinds))} layers; "
                    f"{task.name} needs {', '.join(sorted(missing))}")
        return super().unsupported_reason(task, cell)

    # -- worker side -------------------------------------------------------

    def import_framework(self, cell: Cell) -> None:
        # Timed as import_s. The worker has already pinned the process to cell.threads cores and
        # set OMP/OPENBLAS/MKL_NUM_THREADS, which NumPy's BLAS reads when it loads.
        import numpy

        from bench_numpy import losses, network, optimizers

        self._np, self._losses, self._network, self._optimizers = numpy, losses, network, optimizers

    def build(self, task: Task, cell: Cell, data: Dataset, weights: Weights) -> State:
        np = self._np
        # The data already live in host memory as float32: the "device" is the host, nothing to copy.
        data = Dataset(np.ascontiguousarray(data.x_train, dtype=np.float32), data.y_train,
                       np.ascontiguousarray(data.x_test, dtype=np.float32), data.y_test)
        net = self._network.Network(task.model(), weights)
        return State(
            network=net,
            optimizer=self._optimizers.Optimizer(cell.hp, net.params),
            data=data,
            loss_fn=self._losses.LOSSES[task.loss],
            threads=cell.thread_count(),
        )

    def train_epoch(self, state: State, order) -> State:
        x_all, y_all = state.data.x_train, state.data.y_train
        net, opt = state.network, state.optimizer
        for rows in order:  # one optimizer step per row, in the harness's order
            outputs, inputs = net.forward(x_all[rows])
            _, grad = state.loss_fn(outputs, y_all[rows])
            opt.step(net.params, net.backward(inputs, grad))
        return state

    def sync(self, state: State) -> None:
        # NumPy is synchronous: every call returns after its work is done, so there is nothing
        # to wait for. A backend on an asynchronous framework must block here (CUDA synchronize,
        # block_until_ready, a host read) or its times are wrong; the conformance suite checks.
        return None

    def predict(self, state: State, split: str):
        x, _ = state.data.split(split)
        return state.network.predict(x)

    def predict_batch(self, state: State, x):
        # Inference cells (bench run --phase inference): one batch of host rows in, outputs out. The "device"
        # is the host, so there is nothing to copy or wait for; on an asynchronous framework, return without
        # waiting and make sync wait for these outputs.
        return state.network.forward(self._np.asarray(x, dtype=self._np.float32))[0]

    def loss(self, state: State, indices) -> float:
        outputs, _ = state.network.forward(state.data.x_train[indices])
        value, _ = state.loss_fn(outputs, state.data.y_train[indices])
        # The objective: the data loss plus the cell's penalties (harness.api.Hyperparams).
        return value + self._optimizers.penalty(state.optimizer.hp, state.network.params)

    def get_weights(self, state: State) -> Weights:
        return state.network.weights()

    def compile_time(self, state: State) -> tuple[float, str]:
        # The record's compile_s: 0 s measured, not unknown, because NumPy runs op by op and compiles nothing.
        return 0.0, "NumPy runs op by op: nothing is compiled"

    def details(self, state: State) -> dict[str, Any]:
        return {"threads": state.threads, "blas": _blas_name(self._np),
                "blas_threads_env": os.environ.get("OPENBLAS_NUM_THREADS")}


def _blas_name(np) -> str | None:
    try:
        return np.show_config(mode="dicts")["Build Dependencies"]["blas"]["name"]
    except Exception:  # noqa: BLE001 - older NumPy or an unusual build: the fact is optional
        return None
