"""The subprocess side of a cell: import one backend, train one task, time every phase.

Run as `python -m harness.worker` with the cell as JSON on stdin; progress and the
result go as JSON lines to the file descriptor named by BENCH_EVENT_FD. Only the
standard library and pure-Python harness modules are imported before the thread
settings are in the environment, because numerical libraries read them once, when they load.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Callable

THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
EVENT_FD_ENV = "BENCH_EVENT_FD"

Emit = Callable[[dict[str, Any]], None]


def thread_env(threads: int) -> dict[str, str]:
    return {name: str(threads) for name in THREAD_ENV}


def _oom(exc: BaseException) -> bool:
    text = f"{type(exc).__name__}: {exc}".lower()
    return isinstance(exc, MemoryError) or any(
        s in text for s in ("outofmemoryerror", "out of memory", "resourceexhausted", "resource_exhausted",
                            "failed to allocate", "cannot allocate memory")
    )


def last_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[-1].strip()}" if lines else type(exc).__name__


def run_cell(cell: "Cell", emit: Emit | None = None) -> dict[str, Any]:  # noqa: F821 (imported lazily)
    """Train one cell in this process and return the measured values with a status.

    SkipCell makes it skipped; any other exception becomes status error (or oom); nothing escapes, so a
    caller always gets a record.
    """
    from harness.api import SkipCell

    emit = emit or (lambda event: None)
    try:
        result = _measure(cell, emit)
    except SkipCell as exc:
        print(f"skipped: {exc}", file=sys.stderr)  # in full in the cell's log; the record keeps MAX_TEXT
        result = {"status": "skipped", "message": str(exc)}
    except Exception as exc:  # noqa: BLE001 - the cell's outcome, whatever it was
        import traceback

        traceback.print_exc()
        result = {"status": "oom" if _oom(exc) else "error", "message": last_line(exc)}
    # Read whatever the outcome; out here a failed attempt's frames, and the memory they held (an
    # out-of-memory cell's), are freed.
    return {**result, **_environment(cell)}


def _environment(cell: "Cell") -> dict[str, Any]:  # noqa: F821 (imported lazily)
    """{"env": this process's machine and software}, for the record whatever the outcome (a resumed run's
    cells may run on another machine or commit than the run's first ones); {} if that cannot be read (the
    runner then records its own)."""
    from harness import envinfo
    from harness.registry import load_ref

    try:
        distributions = tuple(load_ref(cell.backend_ref).distributions)
    except Exception:  # noqa: BLE001 - the backend that failed to load is this record's error already
        distributions = ()
    try:
        return {"env": envinfo.collect(distributions)}
    except Exception:  # noqa: BLE001 - MemoryError included: the outcome must still be reported
        return {}


def _measure(cell, emit: Emit) -> dict[str, Any]:
    import resource

    import numpy as np

    from harness import reference
    from harness import metrics as m
    from harness.registry import load_ref
    from harness.timing import PhaseClock, clock, median, percentile

    started = clock()
    spawned = spawn_time(started)
    threads = cell.thread_count()
    backend = load_ref(cell.backend_ref)()
    task = load_ref(cell.task_ref)()
    os.environ.update(backend.configure(cell))
    phases = PhaseClock(backend.sync)

    emit({"event": "phase", "phase": "import"})
    _, import_s = phases.run(lambda: backend.import_framework(cell))
    problem = backend.device_problem(cell)
    if problem:
        print(f"skipped: {problem}", file=sys.stderr)
        return {"status": "skipped", "message": problem, "import_s": import_s}

    emit({"event": "phase", "phase": "load"})
    data, load_s = phases.run(lambda: task.load(cell.train_size, cell.test_size))
    data_mb = sum(a.nbytes for a in (data.x_train, data.y_train, data.x_test, data.y_test)) / 2**20
    weights = task.init_weights(cell.seed)
    hp = cell.hp
    n_train = len(data.x_train)
    steps = n_train // hp.batch_size
    if steps < 1:
        return {"status": "error", "message": f"batch size {hp.batch_size} exceeds the {n_train} training samples"}

    def order_of(epoch: int) -> np.ndarray:
        return batch_order(cell.seed, epoch, n_train, hp.batch_size)

    emit({"event": "phase", "phase": "setup"})
    _, setup_s = phases.run(lambda: backend.build(task, cell, data, weights), new_state=True)
    backend.reset_peak_device(phases.state)

    emit({"event": "phase", "phase": "initial loss"})
    first_batch = order_of(0)[0]

    def initial_losses() -> tuple[float, float]:  # the framework's, and the float64 reference's (parity check)
        ref_out = reference.forward(task.model(), weights, data.x_train[first_batch])
        return (float(backend.loss(phases.state, first_batch)),
                m.loss_value(task.loss, ref_out, data.y_train[first_batch]))

    (initial_loss, initial_loss_ref), initial_loss_s = phases.run(initial_losses)

    def evaluate() -> tuple[dict[str, float], float]:
        outputs, elapsed = phases.run(lambda: backend.predict(phases.state, "test"))
        values = m.score(task.loss, task.metric, np.asarray(outputs), data.y_test)
        values.update(task.extra_metrics(backend.get_weights(phases.state)))
        return values, elapsed

    epoch_s: list[float] = []
    curve: list[dict[str, Any]] = []
    cold_start_s = time_to_target = epochs_to_target = None
    status, message = "ok", ""
    scores: dict[str, float] = {}
    eval_s = None
    eval_total_s = 0.0
    for epoch in range(hp.epochs):
        order = order_of(epoch)
        emit({"event": "epoch_start", "epoch": epoch + 1, "epochs": hp.epochs})
        _, seconds = phases.run(lambda: backend.train_epoch(phases.state, order), new_state=True)
        epoch_s.append(seconds)
        if cold_start_s is None:  # bench's own parity check is not what a user's program pays
            cold_start_s = clock() - spawned - initial_loss_s
        t_eval = clock()
        scores, eval_s = evaluate()  # untimed for training; the last one is the reported eval_s
        eval_total_s += clock() - t_eval
        trained = float(sum(epoch_s))
        curve.append({"epoch": epoch + 1, "train_s": trained, **scores})
        emit({"event": "epoch", "epoch": epoch + 1, "epochs": hp.epochs, "train_s": trained,
              "metric": task.metric, "value": scores.get(task.metric)})
        if time_to_target is None and task.target_met(scores):
            time_to_target, epochs_to_target = cold_start_s + trained - epoch_s[0], epoch + 1
        if not np.isfinite(scores["loss"]) or scores["loss"] > 1e3 * max(initial_loss_ref, 1.0):
            status = "diverged"
            message = f"test loss {scores['loss']:.3g} after epoch {epoch + 1} (initial {initial_loss_ref:.3g})"
            break
    compiled = backend.compile_time(phases.state)  # before the latency phase compiles its one-step program

    step_ms: list[float] = []
    t_latency = clock()
    if status == "ok" and cell.latency_steps > 0:
        emit({"event": "phase", "phase": "latency"})
        one = order_of(hp.epochs)[:1]
        for i in range(2 + cell.latency_steps):  # two warm-up steps, e.g. to compile a 1-step program
            _, seconds = phases.run(lambda: backend.train_epoch(phases.state, one), new_state=True)
            if i >= 2:
                step_ms.append(seconds * 1e3)
    latency_s = clock() - t_latency

    steady = median(epoch_s[1:]) if len(epoch_s) > 1 else None
    peak_host_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {
        "status": status,
        "message": message,
        "threads": threads,
        "train_size": n_train,
        "test_size": len(data.x_test),
        "import_s": import_s,
        "load_s": load_s,
        "setup_s": setup_s,
        "compile_s": compiled[0] if compiled else None,
        "compile_source": compiled[1] if compiled else None,
        "first_epoch_excess_s": epoch_s[0] - steady if steady is not None else None,
        "cold_start_s": cold_start_s,
        "first_epoch_s": epoch_s[0] if epoch_s else None,
        "steady_epoch_s": steady,
        "train_s": float(sum(epoch_s)),
        "epoch_s": epoch_s,
        "step_ms_p50": median(step_ms),
        "step_ms_p90": percentile(step_ms, 90),
        "samples_per_s": steps * hp.batch_size / steady if steady else None,
        "eval_s": eval_s,
        "eval_total_s": eval_total_s,
        "initial_loss_s": initial_loss_s,
        "latency_s": latency_s,
        "total_s": clock() - started,
        "metric": task.metric,
        "metric_value": scores.get(task.metric),
        "target": task.target_text(),
        "target_met": status == "ok" and task.target_met(scores),
        "metrics": scores,
        "curve": curve,
        "time_to_target_s": time_to_target,
        "epochs_to_target": epochs_to_target,
        "peak_host_mb": peak_host_mb,
        "data_mb": data_mb,
        "peak_device_mb": backend.peak_device_mb(phases.state),
        "initial_loss": initial_loss,
        "initial_loss_ref": initial_loss_ref,
        "details": backend.details(phases.state),
    }


SPAWNED_ENV = "BENCH_CELL_SPAWNED"


def spawn_time(fallback: float) -> float:
    """When the launcher started this cell's process, on the machine-wide monotonic clock (the
    launcher sets it just before the fork); `fallback` when run by hand."""
    try:
        value = float(os.environ.get(SPAWNED_ENV, ""))
    except ValueError:
        return fallback
    return value if 0 < value <= fallback else fallback


def batch_order(seed: int, epoch: int, n_train: int, batch_size: int) -> "np.ndarray":  # noqa: F821
    """The same order for every backend: a permutation seeded by (seed, epoch), the remainder dropped,
    as (steps, batch_size) int64 training-set indices."""
    import numpy as np

    steps = n_train // batch_size
    perm = np.random.default_rng([seed, epoch]).permutation(n_train)
    return perm[: steps * batch_size].reshape(steps, batch_size).astype(np.int64)


def pin_threads(threads: int) -> None:
    """Pin this process to `threads` cores and tell the numerical libraries, before any is loaded.

    Affinity is the one setting every framework honours, so each gets the same cores."""
    os.environ.update(thread_env(threads))
    try:
        cores = sorted(os.sched_getaffinity(0))
        if threads < len(cores):
            os.sched_setaffinity(0, cores[:threads])
    except (AttributeError, OSError):
        pass


def main() -> None:
    from harness import lifetime

    lifetime.watch_parent()  # first: nothing of this cell outlives the bench process that started it
    cell_data = json.loads(sys.stdin.read())
    from harness.envinfo import usable_cores

    pin_threads(cell_data.get("threads") or usable_cores())
    fd = int(os.environ.get(EVENT_FD_ENV, "1"))
    out = os.fdopen(fd, "w", buffering=1, closefd=False)

    from harness.record import measured, plain

    def emit(event: dict[str, Any]) -> None:  # plain JSON, as the parent checks it (NumPy numbers stay numbers)
        out.write(json.dumps(plain(event)) + "\n")

    from harness.api import Cell

    result = run_cell(Cell.from_dict(cell_data), emit)
    # Plain JSON of the declared kinds, as the parent checks it: NumPy numbers stay numbers, and a value
    # of the wrong kind is nulled with a warning (the parent checks again: it trusts no worker).
    emit({"event": "result", "values": measured(result)})
    out.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter teardown: some frameworks hang or crash in their atexit handlers,
    # and the result is already delivered.
    os._exit(0)


if __name__ == "__main__":
    main()
