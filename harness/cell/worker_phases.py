"""The worker's side of a cell: its measurement as named phases, each a short function.

`measure` runs them in order on one `Measurement`, which holds what the phases share: the backend and
its state (through the phase clock), the task, the data and the values measured so far. A phase that
ends the cell early returns the values to record; otherwise it returns None and the next one runs.
Every clock read is preceded by the backend's sync (harness.measure.clock.PhaseClock).
"""

from __future__ import annotations

import os
import resource
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from harness.api import load_ref
from harness.cell.worker_blocks import time_steady_blocks
from harness.cell.worker_energy import energy_values, open_energy
from harness.cell.worker_inference import infer
from harness.measure import interference, metrics, reference
from harness.measure.clock import PhaseClock, clock
from harness.measure.lockstep import Turns
from harness.measure.stats import median, percentile

if TYPE_CHECKING:
    from harness.api import Backend, Cell, Dataset, Task, Weights
    from harness.measure.energy import Tally

Emit = Callable[[dict[str, Any]], None]
SPAWNED_ENV = "BENCH_CELL_SPAWNED"
WARMUP_STEPS = 2  # before the timed single steps: e.g. to compile a one-step program
DIVERGED_FACTOR = 1e3  # test loss this many times the initial one (or 1) ends training as diverged
TRAIN_EVAL_SAMPLES = 10_000  # training samples scored after training: MNIST's first 10,000 of 60,000, a few seconds


def spawn_time(fallback: float) -> float:
    """When the launcher started this cell's process, on the machine-wide monotonic clock (the
    launcher sets it just before the fork); `fallback` when run by hand."""
    try:
        value = float(os.environ.get(SPAWNED_ENV, ""))
    except ValueError:
        return fallback
    return value if 0 < value <= fallback else fallback


def batch_order(seed: int, epoch: int, n_train: int, batch_size: int) -> np.ndarray:
    """The same order for every backend: a permutation seeded by (seed, epoch), the remainder dropped,
    as (steps, batch_size) int64 training-set indices."""
    steps = n_train // batch_size
    perm = np.random.default_rng([seed, epoch]).permutation(n_train)
    return perm[: steps * batch_size].reshape(steps, batch_size).astype(np.int64)


@dataclass
class Measurement:
    """One cell being measured in this process."""

    cell: Cell
    emit: Emit
    backend: Backend
    task: Task
    phases: PhaseClock
    started: float
    spawned: float
    values: dict[str, Any] = field(default_factory=dict)
    data: Dataset | None = None
    weights: Weights | None = None
    epoch_s: list[float] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)
    energy: Tally | None = None  # the cell's energy counter (harness.cell.worker_energy), None: energy_note says why
    energy_note: str = ""
    epoch_j: list[float | None] = field(default_factory=list)
    turns: Turns = field(default_factory=lambda: Turns(""))  # its lockstep group's turns (none: it runs alone)

    @classmethod
    def start(cls, cell: Cell, emit: Emit) -> "Measurement":
        started = clock()
        turns = Turns()
        turns.first()
        backend = load_ref(cell.backend_ref)()
        task = load_ref(cell.task_ref)()
        os.environ.update(backend.configure(cell))
        return cls(cell, emit, backend, task, PhaseClock(backend.sync), started, spawn_time(started),
                   values={"threads": cell.thread_count()}, turns=turns)

    def order(self, epoch: int) -> np.ndarray:
        return batch_order(self.cell.seed, epoch, len(self.data.x_train), self.cell.hp.batch_size)

    def phase(self, name: str) -> None:
        self.emit({"event": "phase", "phase": name})


def import_framework(m: Measurement) -> dict[str, Any] | None:
    m.phase("import")
    _, m.values["import_s"] = m.phases.run(lambda: m.backend.import_framework(m.cell))
    problem = m.backend.device_problem(m.cell)
    if problem:
        print(f"skipped: {problem}", file=sys.stderr)
        return {"status": "skipped", "message": problem, "import_s": m.values["import_s"]}
    open_energy(m)
    return None


def load_data(m: Measurement) -> dict[str, Any] | None:
    m.phase("load")
    m.data, m.values["load_s"] = m.phases.run(lambda: m.task.load(m.cell.train_size, m.cell.test_size))
    d = m.data
    m.values.update(train_size=len(d.x_train), test_size=len(d.x_test),
                    data_mb=sum(a.nbytes for a in (d.x_train, d.y_train, d.x_test, d.y_test)) / 2**20)
    m.weights = m.task.init_weights(m.cell.seed)
    if len(d.x_train) < m.cell.hp.batch_size:
        return {"status": "error",
                "message": f"batch size {m.cell.hp.batch_size} exceeds the {len(d.x_train)} training samples"}
    return None


def build_model(m: Measurement) -> None:
    m.phase("setup")
    _, m.values["setup_s"] = m.phases.run(lambda: m.backend.build(m.task, m.cell, m.data, m.weights),
                                          new_state=True)
    m.backend.reset_peak_device(m.phases.state)


def check_initial_loss(m: Measurement) -> None:
    """The framework's loss on the first batch beside the float64 NumPy reference's (the parity check)."""
    m.phase("initial loss")
    first_batch = m.order(0)[0]

    hp = m.cell.hp

    def losses() -> tuple[float, float]:
        # The objective, penalties included (Hyperparams): Backend.loss returns it, so both terms are checked.
        ref_out = reference.forward(m.task.model(), m.weights, m.data.x_train[first_batch])
        return (float(m.backend.loss(m.phases.state, first_batch)),
                metrics.loss_value(m.task.loss, ref_out, m.data.y_train[first_batch])
                + metrics.penalty(m.weights, hp.l1, hp.weight_decay))

    (m.values["initial_loss"], m.values["initial_loss_ref"]), m.values["initial_loss_s"] = m.phases.run(losses)


def evaluate(m: Measurement) -> float:
    """Score the model on the test split (outside the training clock); returns the prediction's seconds."""
    outputs, predict_s = m.phases.run(lambda: m.backend.predict(m.phases.state, "test"))
    m.scores = metrics.score(m.task.loss, m.task.metric, np.asarray(outputs), m.data.y_test)
    m.scores.update(m.task.extra_metrics(m.backend.get_weights(m.phases.state)))
    return predict_s


def _diverged(m: Measurement, epoch: int) -> str | None:
    loss, initial = m.scores["loss"], m.values["initial_loss_ref"]
    if np.isfinite(loss) and loss <= DIVERGED_FACTOR * max(initial, 1.0):
        return None
    return f"test loss {loss:.3g} after epoch {epoch} (initial {initial:.3g})"


def train(m: Measurement) -> None:
    """Every epoch on the clock, each followed by an untimed evaluation (the accuracy-against-time curve);
    the time to target from the process's start; training stops when the loss diverges."""
    v, hp = m.values, m.cell.hp
    v.update(status="ok", message="", cold_start_s=None, time_to_target_s=None, epochs_to_target=None,
             eval_s=None, eval_total_s=0.0, curve=[], interference=[])
    for epoch in range(1, hp.epochs + 1):
        order = m.order(epoch - 1)
        m.emit({"event": "epoch_start", "epoch": epoch, "epochs": hp.epochs})
        before = interference.Snapshot.now()
        _, seconds, readings = m.phases.run_metered(lambda: m.backend.train_epoch(m.phases.state, order),
                                                    m.energy.read if m.energy else (lambda: None), new_state=True)
        v["interference"].append(interference.window(before, interference.Snapshot.now(), group=m.turns.group))
        m.epoch_s.append(seconds)
        if m.energy:
            m.epoch_j.append(m.energy.window(*readings).joules)
        if v["cold_start_s"] is None:  # bench's own parity check is not what a user's program pays
            v["cold_start_s"] = clock() - m.spawned - v["initial_loss_s"] - m.turns.waited_s
        t_eval = clock()
        v["eval_s"] = evaluate(m)  # the last one is the reported eval_s
        v["eval_total_s"] += clock() - t_eval
        trained = float(sum(m.epoch_s))
        v["curve"].append({"epoch": epoch, "train_s": trained, **m.scores})
        m.emit({"event": "epoch", "epoch": epoch, "epochs": hp.epochs, "train_s": trained,
                "metric": m.task.metric, "value": m.scores.get(m.task.metric)})
        if v["time_to_target_s"] is None and m.task.target_met(m.scores):
            v["time_to_target_s"], v["epochs_to_target"] = v["cold_start_s"] + trained - m.epoch_s[0], epoch
        problem = _diverged(m, epoch)
        if problem:
            v.update(status="diverged", message=problem)
            break
        m.turns.pass_on()


def read_compile_time(m: Measurement) -> None:
    """The framework's own compile figure, read before the latency phase compiles its one-step program."""
    compiled = m.backend.compile_time(m.phases.state)
    m.values["compile_s"], m.values["compile_source"] = compiled if compiled else (None, None)


def score_training_split(m: Measurement) -> None:
    """The trained model on the first TRAIN_EVAL_SAMPLES training samples, untimed for training: with the test
    metrics, the train-test gap that regularisation is meant to close. Before the latency phase, whose steps
    train further."""
    if m.values["status"] != "ok":
        m.values.update(train_metrics=None, train_metric_value=None, train_eval_s=None)
        return
    m.phase("train split")
    rows = np.arange(min(len(m.data.x_train), TRAIN_EVAL_SAMPLES), dtype=np.int64)

    def scores() -> dict[str, float]:
        outputs = np.asarray(m.backend.predict_rows(m.phases.state, "train", rows))
        return metrics.score(m.task.loss, m.task.metric, outputs, m.data.y_train[rows])

    found, seconds = m.phases.run(scores)
    m.values.update(train_metrics={**found, "samples": len(rows)}, train_metric_value=found.get(m.task.metric),
                    train_eval_s=seconds)


def time_single_steps(m: Measurement) -> None:
    """`latency_steps` single synced steps after the training, after WARMUP_STEPS untimed ones."""
    step_ms: list[float] = []
    t_latency = clock()
    if m.values["status"] == "ok" and m.cell.latency_steps > 0:
        m.phase("latency")
        batch = m.order(m.cell.hp.epochs)[0]
        for i in range(WARMUP_STEPS + m.cell.latency_steps):
            _, seconds = m.phases.run(lambda: m.backend.train_step(m.phases.state, batch), new_state=True)
            if i >= WARMUP_STEPS:
                step_ms.append(seconds * 1e3)
    m.values.update(latency_s=clock() - t_latency, step_ms_p50=median(step_ms), step_ms_p90=percentile(step_ms, 90))


def summarise(m: Measurement) -> dict[str, Any]:
    """The record's measured values: the epochs folded into first, steady and total figures, the scores,
    memory and what the backend says of itself."""
    v, epoch_s, hp = m.values, m.epoch_s, m.cell.hp
    steady = v.get("steady_epoch_s")  # timed in blocks (worker_blocks) where one epoch is too short
    if steady is None:
        steady = median(epoch_s[1:]) if len(epoch_s) > 1 else None
        v["steady_epoch_method"] = "median epoch after the first" if steady is not None else None
    steps = len(m.data.x_train) // hp.batch_size
    v.update(
        first_epoch_excess_s=epoch_s[0] - steady if steady is not None else None,
        first_epoch_s=epoch_s[0] if epoch_s else None,
        steady_epoch_s=steady,
        train_s=float(sum(epoch_s)),
        epoch_s=epoch_s,
        samples_per_s=steps * hp.batch_size / steady if steady else None,
        total_s=clock() - m.started - m.turns.waited_s,
        lockstep_wait_s=m.turns.waited_s if m.turns.group else None,
        metric=m.task.metric,
        metric_value=m.scores.get(m.task.metric),
        target=m.task.target_text(),
        target_met=v["status"] == "ok" and m.task.target_met(m.scores),
        metrics=m.scores,
        peak_host_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # KiB on Linux
        peak_device_mb=m.backend.peak_device_mb(m.phases.state),
        details=m.backend.details(m.phases.state),
    )
    v.update(energy_values(m, steps * hp.batch_size * (len(epoch_s) - 1) if len(epoch_s) > 1 else None))
    return v


def summarise_inference(m: Measurement) -> dict[str, Any]:
    """An inference cell's record: its prediction figures (already in m.values), memory, details, energy;
    no training figures, and no metric (the weights are the untrained initial ones)."""
    m.values.update(
        total_s=clock() - m.started,
        metric=m.task.metric,
        peak_host_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        peak_device_mb=m.backend.peak_device_mb(m.phases.state),
        details=m.backend.details(m.phases.state),
    )
    m.values.update(energy_values(m, None))
    return m.values


PHASES: tuple[Callable[[Measurement], dict[str, Any] | None], ...] = (
    import_framework, load_data, build_model, check_initial_loss, train, read_compile_time, score_training_split,
    time_steady_blocks, time_single_steps)


def measure(cell: Cell, emit: Emit) -> dict[str, Any]:
    """Every phase of one cell in order; the values to record (status included)."""
    m = Measurement.start(cell, emit)
    inference = cell.phase == "inference"
    for phase in (*PHASES[:PHASES.index(train)], infer) if inference else PHASES:
        early = phase(m)
        if early is not None:
            return early
    return summarise_inference(m) if inference else summarise(m)
