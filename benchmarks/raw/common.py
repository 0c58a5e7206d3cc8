"""What the raw loops share: arguments, thread pinning, the task's arrays and weights, the batch order,
and the epoch clock. Nothing here imports a framework or runs a harness cell.

A raw loop is a script that trains one task in one framework the way an expert would write it by
hand. It borrows from the project only what defines the workload (the task's loader, initial weights
and hyperparameters) and the thread pinning, so that its epoch times can be held against the
harness's for the same cell.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from harness.cell.worker_phases import (
    batch_order,  # the raw loops take the harness's own order
)
from harness.measure.envinfo import usable_cores

clock = time.perf_counter
STARTED = clock()  # this module is imported first, so this is (nearly) the script's start

TASKS = ("linear_regression", "mnist_mlp", "mnist_cnn", "mnist_lstm")
DEFAULT_EPOCHS = 3  # the first epoch compiles; the median of the other two is the steady state


@dataclass
class Workload:
    """One task's arrays, initial weights and hyperparameters, exactly as the harness would use them."""

    task: Any  # harness.api.Task
    data: Any  # harness.api.Dataset
    weights: list[dict[str, Any]]
    hp: Any  # harness.api.Hyperparams
    load_s: float

    @property
    def steps(self) -> int:
        return len(self.data.x_train) // self.hp.batch_size


@dataclass
class RawResult:
    """What one raw run measured; written as JSON for compare_harness."""

    framework: str
    framework_version: str
    task: str
    mode: str
    variant: str  # what exactly was run, in words
    threads: int
    train_size: int
    test_size: int
    batch_size: int
    steps_per_epoch: int
    epochs: int
    import_s: float
    load_s: float
    setup_s: float
    epoch_s: list[float]
    first_epoch_s: float
    steady_epoch_s: float | None
    train_s: float
    eval_s: float
    total_s: float
    initial_loss: float  # the first batch's loss before training
    final_loss: float  # the same batch's loss after training
    metrics: dict[str, float] = field(default_factory=dict)  # test split: loss and the task's metric


def parse_args(framework: str, modes: Sequence[str], argv: Sequence[str] | None = None,
               extra: Callable[[argparse.ArgumentParser], None] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m benchmarks.raw.raw_{framework}",
                                     description=f"A hand-written {framework} training loop, no harness.")
    parser.add_argument("--task", default="mnist_mlp", choices=TASKS)
    parser.add_argument("--mode", default=modes[-1], choices=modes)
    parser.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS)
    parser.add_argument("--train-size", type=int, help="training samples (default: the task's)")
    parser.add_argument("--test-size", type=int, help="test samples (default: the task's)")
    parser.add_argument("--batch-size", type=int, help="default: the task's")
    parser.add_argument("--threads", type=int, help="cores to pin to (default: all this process may use)")
    parser.add_argument("--seed", type=int, default=0, help="initial weights and batch order, as in bench run")
    parser.add_argument("--json", metavar="PATH", help="also write the result here as JSON")
    if extra:
        extra(parser)
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error("--epochs must be at least 1")
    return args


def pin(threads: int | None) -> int:
    """Pin this process exactly as a harness worker pins itself; must run before the framework loads."""
    from harness.cell.worker import pin_threads

    threads = threads or usable_cores()
    pin_threads(threads)
    return threads


def load_workload(task_name: str, train_size: int | None, test_size: int | None, batch_size: int | None,
                  epochs: int, seed: int) -> Workload:
    """The task's own loader, initial weights and default hyperparameters (loading is not timed as training)."""
    from tasks.builtin import bench_tasks

    task = {cls.name: cls for cls in bench_tasks()}[task_name]()
    t0 = clock()
    data = task.load(train_size, test_size)
    load_s = clock() - t0
    hp = task.hyperparams(batch_size=batch_size, epochs=epochs)
    if len(data.x_train) < hp.batch_size:
        raise SystemExit(f"batch size {hp.batch_size} exceeds the {len(data.x_train)} training samples")
    return Workload(task, data, task.init_weights(seed), hp, load_s)




def timed_epochs(run_epoch: Callable[[Any], None], sync: Callable[[], None], work: Workload, seed: int,
                 log: Callable[[str], None] | None = None) -> list[float]:
    """Each epoch's wall time: the order is made outside the clock, the device synced inside it."""
    times = []
    for epoch in range(work.hp.epochs):
        order = batch_order(seed, epoch, len(work.data.x_train), work.hp.batch_size)
        sync()
        t0 = clock()
        run_epoch(order)
        sync()
        times.append(clock() - t0)
        if log:
            log(f"epoch {epoch + 1}/{work.hp.epochs}: {times[-1]:.4f} s")
    return times


def steady(epoch_s: Sequence[float]) -> float | None:
    """Median of the epochs after the first (None with a single epoch)."""
    return statistics.median(epoch_s[1:]) if len(epoch_s) > 1 else None


def score(work: Workload, outputs) -> dict[str, float]:
    """Test-split loss and metric, computed in NumPy the same way the harness scores every backend."""
    import numpy as np

    from harness.measure.metrics import score as harness_score

    return harness_score(work.task.loss, work.task.metric, np.asarray(outputs), work.data.y_test)


def log(message: str) -> None:
    print(f"[raw] {message}", file=sys.stderr, flush=True)


def finish(result: RawResult, json_path: str | None) -> RawResult:
    """Print a summary (and the JSON, if asked for)."""
    steady_text = f"{result.steady_epoch_s:.4f} s" if result.steady_epoch_s is not None else "n/a (one epoch)"
    metric = result.metrics.get(_metric_name(result.metrics))
    print(f"{result.framework} {result.task} {result.mode} ({result.variant}): "
          f"steady epoch {steady_text}, first {result.first_epoch_s:.4f} s, "
          f"epochs {', '.join(f'{t:.4f}' for t in result.epoch_s)}; "
          f"loss {result.initial_loss:.4g} -> {result.final_loss:.4g}; test {_metric_name(result.metrics)} "
          f"{metric:.4g}; threads {result.threads}")
    if json_path:
        Path(json_path).write_text(json.dumps(asdict(result), allow_nan=True))
    return result


def exit_process() -> None:
    """Leave without interpreter teardown, as a harness worker does once its result is out (a runner's
    cell wall time stops there too), so that the two processes' fixed costs compare."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _metric_name(metrics: dict[str, float]) -> str:
    return next((k for k in ("accuracy", "mse") if k in metrics), "loss")
