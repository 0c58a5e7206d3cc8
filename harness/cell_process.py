"""One cell in its own worker process on this machine: start it, follow its events, enforce its timeout,
and kill everything it started. Every executor runs cells through this, on the machine that runs
`bench run` or on a cluster's node, so isolation, statuses and logs are the same everywhere."""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from harness.api import Cell
from harness.worker import EVENT_FD_ENV, SPAWNED_ENV

KILL_GRACE_S = 3.0

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


def child_env(cell: Cell, scratch: Path, tmp: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
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
    is killed and nothing is recorded), else the worker's result or a status saying why there is none.
    """
    on_event = on_event or (lambda event, elapsed: None)
    scratch = Path(tempfile.mkdtemp(prefix="bench-cell-"))
    read_fd, write_fd = os.pipe()
    env = {**child_env(cell, scratch, tmp), **(extra_env or {})}
    env[EVENT_FD_ENV] = str(write_fd)
    started = time.monotonic()
    env[SPAWNED_ENV] = repr(started)
    result: dict[str, Any] | None = None
    outcome = "exited"
    try:
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "harness.worker"], stdin=subprocess.PIPE, stdout=log,
                stderr=subprocess.STDOUT, pass_fds=(write_fd,), start_new_session=True, env=env,
            )
            os.close(write_fd)
            write_fd = -1
            try:
                proc.stdin.write(json.dumps(cell.to_dict()).encode())
                proc.stdin.close()
            except BrokenPipeError:
                pass
            result, outcome = _follow(read_fd, cell, started, on_event, stopping)
            kill_group(proc)  # the worker's whole process group, helpers included
            proc.wait()
    finally:
        os.close(read_fd)
        if write_fd >= 0:
            os.close(write_fd)
        shutil.rmtree(scratch, ignore_errors=True)
    wall = time.monotonic() - started
    if outcome == "stopped":
        return None, wall
    if outcome == "timeout":
        return {"status": "timeout", "message": f"no result within the {cell.timeout_s:g} s timeout"}, wall
    if result is None:
        status, message = describe_exit(proc.returncode)
        return {"status": status, "message": message}, wall
    return result, wall


def _follow(fd: int, cell: Cell, started: float, on_event: OnEvent,
            stopping: Callable[[], bool]) -> tuple[dict | None, str]:
    """Read the worker's events until it reports a result, exits, its time is up, or we are stopping."""
    deadline = started + cell.timeout_s
    buffer = b""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None, "timeout"
        if stopping():
            return None, "stopped"
        ready, _, _ = select.select([fd], [], [], min(remaining, 0.5))
        if not ready:
            on_event({"event": "tick"}, time.monotonic() - started)
            continue
        try:
            chunk = os.read(fd, 65536)
        except InterruptedError:
            continue
        if not chunk:  # worker closed its end: exited or crashed
            return None, "exited"
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("event") == "result":
                return event.get("values") or {}, "result"
            on_event(event, time.monotonic() - started)
