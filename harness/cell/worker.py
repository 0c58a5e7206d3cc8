"""The worker's side of a cell: the process that imports one backend and trains one task.

Run as `python -m harness.cell.worker` with the cell as JSON on stdin; progress and the result go as JSON
lines to the file descriptor named by BENCH_EVENT_FD (harness.cell.events says what each may hold). The
phases it times are in harness.cell.worker_phases. Only the standard library and pure-Python harness
modules are imported before the thread settings are in the environment, because numerical libraries read
them once, when they load.
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


def run_cell(cell: "Cell", emit: Emit | None = None) -> dict[str, Any]:  # noqa: F821 (imported lazily)
    """Train one cell in this process and return the measured values with a status.

    SkipCell makes it skipped; any other exception becomes status error (or oom); nothing escapes, so a
    caller always gets a record.
    """
    from harness.api import SkipCell
    from harness.cell.worker_phases import measure
    from harness.store.safe_text import last_line

    emit = emit or (lambda event: None)
    try:
        result = measure(cell, emit)
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
    from harness.api import load_ref
    from harness.measure import envinfo

    try:
        distributions = tuple(load_ref(cell.backend_ref).distributions)
    except Exception:  # noqa: BLE001 - the backend that failed to load is this record's error already
        distributions = ()
    try:
        return {"env": envinfo.collect(distributions)}
    except Exception:  # noqa: BLE001 - MemoryError included: the outcome must still be reported
        return {}


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
    from harness.cell import lifetime

    lifetime.watch_parent()  # first: nothing of this cell outlives the bench process that started it
    cell_data = json.loads(sys.stdin.read())
    from harness.measure.envinfo import usable_cores

    pin_threads(cell_data.get("threads") or usable_cores())
    fd = int(os.environ.get(EVENT_FD_ENV, "1"))
    out = os.fdopen(fd, "w", buffering=1, closefd=False)

    from harness.store.record import measured, plain

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
