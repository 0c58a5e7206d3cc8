"""One cell in its own worker process on this machine: start it, follow its events, enforce its timeout,
and kill everything it started. Every executor runs cells through this, on the machine that runs
`bench run` or on a cluster's node, so isolation, statuses, logs and the checks of what a worker
sends are the same everywhere.

Nothing from the worker is trusted: every event line is checked (harness.cell.events) and the result is
made fit for a record (harness.store.record.measured); a malformed one ends the cell as an error. The
worker's exit is watched directly, so a helper that holds the event pipe open cannot hide it; the
cell's output goes to a capped log (harness.cell.parent_log).
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from harness.api import Cell
from harness.cell import events, lifetime
from harness.cell.parent_log import CappedLog
from harness.cell.worker import EVENT_FD_ENV
from harness.cell.worker_phases import SPAWNED_ENV
from harness.store import record

KILL_GRACE_S = 3.0
DRAIN_S = 1.0  # after its result or its exit, how long a worker's last output is still read

OnEvent = Callable[[dict[str, Any], float], None]  # (event, seconds since the cell started)


def private_caches(scratch: Path, tmp: Path | None = None) -> dict[str, str]:
    """Cold, private compile caches under `scratch`: compile times are honest and nothing leaks into $HOME or /tmp.

    Temporary files go to `tmp` (default: `scratch`), which a run shares across its cells: there
    torch keeps what it builds once per machine for a user and never per model (inductor's
    precompiled header, 150 MB and 6–9 s on the 2-core CPU), so a run builds it once, not once per cell."""
    return {
        "PYTHONUNBUFFERED": "1",
        "TORCHINDUCTOR_CACHE_DIR": str(scratch / "inductor"),
        "TRITON_CACHE_DIR": str(scratch / "triton"),
        "KERAS_HOME": str(scratch / "keras"),
        "TMPDIR": str(tmp or scratch),
    }


CHECKOUT = str(Path(__file__).resolve().parents[2])  # where harness/, backends/ and tasks/ are


def child_env(cell: Cell, scratch: Path, tmp: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    if cell.python:
        # Another environment's interpreter: bench's own code from this checkout, every framework and plugin
        # from that environment, none from this one's site-packages.
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys([os.getcwd(), CHECKOUT]))
    else:
        # The worker must import what this process imports (plugins installed in odd places, tests).
        paths = [p for p in sys.path if p and os.path.isdir(p)]
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys([os.getcwd(), *paths]))
    env.update(private_caches(scratch, tmp))
    return env


def describe_exit(code: int) -> tuple[str, str]:
    if code < 0:
        sig = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
        if -code == signal.SIGKILL:
            return "oom", f"worker killed by {sig} (most likely the kernel's out-of-memory killer)"
        return "error", f"worker crashed with signal {sig}"
    return "error", f"worker exited with code {code} before reporting a result"


def kill_group(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL, to the worker's whole process group."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            proc.wait(timeout=KILL_GRACE_S)
            return
        except subprocess.TimeoutExpired:
            continue


def run_cell_process(cell: Cell, log_path: Path, tmp: Path | None = None, on_event: OnEvent | None = None,
                     stopping: Callable[[], bool] = lambda: False,
                     extra_env: dict[str, str] | None = None) -> tuple[dict[str, Any] | None, float]:
    """Run one cell in a worker subprocess, its output in `log_path`; `extra_env` is added to the worker's
    environment (an executor's choice of GPU, the driver's settings on a remote node).

    Returns (values, wall seconds); values is None when `stopping()` turned true first (the worker
    is killed and nothing is recorded), else the worker's result, checked and fit for a record, or a
    status saying why there is none. Raises SaveError if the log cannot be written; every process the
    cell started is gone when this returns, whatever happened.
    """
    on_event = on_event or (lambda event, elapsed: None)
    mark = lifetime.new_mark()
    scratch = lifetime.owned_tmpdir(lifetime.CELL_TMP)
    pipes = {name: os.pipe() for name in ("events", "output", "lifeline")}
    env = {**child_env(cell, scratch, tmp), **(extra_env or {})}
    env.update({EVENT_FD_ENV: str(pipes["events"][1]), lifetime.LIFELINE_FD_ENV: str(pipes["lifeline"][0]),
                lifetime.MARK_ENV: mark, lifetime.PARENT_ENV: str(os.getpid())})
    started = time.monotonic()
    env[SPAWNED_ENV] = repr(started)
    proc: subprocess.Popen | None = None
    log: CappedLog | None = None
    worker_ends = [pipes["events"][1], pipes["output"][1], pipes["lifeline"][0]]
    try:
        log = CappedLog(log_path)
        try:
            proc = subprocess.Popen(
                [cell.python or sys.executable, "-m", "harness.cell.worker"], stdin=subprocess.PIPE,
                stdout=pipes["output"][1],
                stderr=subprocess.STDOUT, pass_fds=(pipes["events"][1], pipes["lifeline"][0]),
                start_new_session=True, env=env,
            )
        except OSError as exc:  # e.g. no more processes or memory to start one
            values, outcome = f"cannot start the worker: {exc.strerror or exc}", "unstarted"
        else:
            while worker_ends:  # only the worker (and what it starts) may hold them from now on
                os.close(worker_ends.pop())
            try:
                proc.stdin.write(json.dumps(cell.to_dict()).encode())
                proc.stdin.close()
            except BrokenPipeError:
                pass
            values, outcome = _follow(proc, pipes["events"][0], pipes["output"][0], log, cell, started, on_event,
                                      stopping)
    finally:
        for fd in worker_ends:
            os.close(fd)
        if proc is not None:
            kill_group(proc)  # the worker's whole process group, helpers included
            proc.wait()
        lifetime.kill_marked(mark)  # and whatever left the group
        for fd in (pipes["events"][0], pipes["output"][0], pipes["lifeline"][1]):
            os.close(fd)
        shutil.rmtree(scratch, ignore_errors=True)
        if log is not None:
            log.close()
    wall = time.monotonic() - started
    if outcome == "stopped":
        return None, wall
    if outcome == "timeout":
        return {"status": "timeout", "message": f"no result within the {cell.timeout_s:g} s timeout"}, wall
    if outcome == "malformed":
        return {"status": "error", "message": f"worker sent a malformed event: {values}"}, wall
    if outcome == "unstarted":
        return {"status": "error", "message": values}, wall
    if outcome == "exited":
        status, message = describe_exit(proc.returncode)
        return {"status": status, "message": message}, wall
    return record.measured(values), wall


def _pidfd(pid: int) -> int | None:
    """A file descriptor that turns readable when the process exits (Linux 5.3+), else None (polled)."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _follow(proc: subprocess.Popen, events_fd: int, output_fd: int, log: CappedLog, cell: Cell, started: float,
            on_event: OnEvent, stopping: Callable[[], bool]) -> tuple[Any, str]:
    """Copy the worker's output to the log and read its events until it reports a result, exits, sends
    something malformed, its time is up, or we are stopping. Returns (the result's values, or what was
    malformed, and the outcome: result, exited, malformed, timeout or stopped)."""
    deadline = started + cell.timeout_s
    pidfd = _pidfd(proc.pid)
    buffer = bytearray()
    result: Any = None
    done_by: float | None = None  # the worker exited or reported: read what is left until then
    open_fds = {events_fd, output_fd}
    try:
        while True:
            now = time.monotonic()
            if done_by is not None and now >= done_by:
                break
            if done_by is None and now >= deadline:
                return None, "timeout"
            if stopping():
                return None, "stopped"
            exited = proc.poll() is not None
            if exited and done_by is None:
                done_by = now + DRAIN_S
            watch = [*open_fds] + ([pidfd] if pidfd is not None and not exited else [])
            wait = 0 if exited else min(max((done_by or deadline) - now, 0), 0.5)
            ready = select.select(watch, [], [], wait)[0] if watch else []
            data_ready = False
            for fd in ready:
                if fd == pidfd:
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    open_fds.discard(fd)
                    continue
                data_ready = True
                if fd == output_fd:
                    log.write(chunk)
                    continue
                if result is not None:
                    continue  # nothing after the result counts
                buffer += chunk
                if b"\n" not in chunk:  # split only when a line ends: a long line costs linear time
                    lines = []
                else:
                    *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    try:
                        event = events.parse(line)
                    except events.MalformedEvent as exc:
                        return str(exc), "malformed"
                    if event["event"] == "result":
                        result = event["values"]
                        done_by = time.monotonic() + DRAIN_S
                        break
                    on_event(event, time.monotonic() - started)
                if len(buffer) > events.MAX_LINE_BYTES:
                    return f"an event line longer than {events.MAX_LINE_BYTES} bytes", "malformed"
            if exited and not data_ready:
                break
            if not ready and not exited:
                on_event({"event": "tick"}, time.monotonic() - started)
    finally:
        if pidfd is not None:
            os.close(pidfd)
    return (result, "result") if result is not None else (None, "exited")
