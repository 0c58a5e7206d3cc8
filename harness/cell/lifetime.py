"""A cell's processes and temporary folders live no longer than the cell, nor than the bench process
that started it.

- Everything a cell starts inherits a marker in its environment (MARK_ENV), even a process that left
  the cell's process group and session (double fork + setsid); after the cell, every process carrying
  the marker is killed (`kill_marked`). A process that clears its own environment escapes this; only
  a cgroup would catch that.
- The worker dies with its parent: the kernel kills it when the parent dies (PR_SET_PDEATHSIG), and a
  guardian process it forks first watches a lifeline pipe whose only writer is the parent; at end of
  file the guardian kills the cell's process group and every marked process.
- Temporary folders are named after the pid of the process that owns them; a run removes those whose
  owner is gone (`remove_stale`), with any marked process left by a run that was killed.

Standard library only: the worker calls `watch_parent` before it imports anything else.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import tempfile
import time
from pathlib import Path

MARK_ENV = "BENCH_CELL_MARK"  # "<pid of the bench process>-<random>", one per cell
LIFELINE_FD_ENV = "BENCH_LIFELINE_FD"
PARENT_ENV = "BENCH_PARENT_PID"
RUN_TMP, CELL_TMP = "bench-run-", "bench-cell-"
_OWNED = re.compile(r"bench-(?:run|cell)-(\d+)-.+")
_PR_SET_PDEATHSIG = 1


def new_mark() -> str:
    return f"{os.getpid()}-{secrets.token_hex(8)}"


def owned_tmpdir(prefix: str) -> Path:
    """A fresh temporary folder whose name says which process owns it."""
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-"))


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _marks() -> dict[int, str]:
    """Every process whose environment carries a cell marker, with its marker (zombies have none)."""
    key = f"{MARK_ENV}=".encode()
    found = {}
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                environ = f.read()
        except OSError:  # gone, or not ours to read
            continue
        at = (b"\0" + environ).find(b"\0" + key)
        if at >= 0:
            value = environ[at + len(key):].split(b"\0", 1)[0]
            found[int(entry)] = value.decode("ascii", "replace")
    return found


def _kill_until_none(select) -> int:
    """SIGKILL every process `select(marks)` names, again until none is left (one may fork meanwhile)."""
    killed: set[int] = set()
    for _ in range(50):
        pids = select(_marks())
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        killed.update(pids)
        time.sleep(0.01)
    return len(killed)


def kill_marked(mark: str) -> int:
    """Kill every process carrying this cell's marker; how many there were."""
    return _kill_until_none(lambda marks: [pid for pid, m in marks.items() if m == mark])


def remove_stale(tmp_root: str | os.PathLike | None = None) -> None:
    """Remove what killed runs left: temporary folders whose owning process is gone, and processes
    marked by a bench process that is gone."""
    def orphaned(marks: dict[int, str]) -> list[int]:
        owners = {pid: m.partition("-")[0] for pid, m in marks.items()}
        return [pid for pid, owner in owners.items() if owner.isdigit() and not alive(int(owner))]

    _kill_until_none(orphaned)
    root = Path(tmp_root or tempfile.gettempdir())
    try:
        entries = list(os.scandir(root))
    except OSError:
        return
    for entry in entries:
        match = _OWNED.fullmatch(entry.name)
        if match and entry.is_dir(follow_symlinks=False) and not alive(int(match.group(1))):
            shutil.rmtree(entry.path, ignore_errors=True)


def watch_parent() -> None:
    """In a worker: die with the parent named in the environment, and take the cell's processes along."""
    parent = os.environ.get(PARENT_ENV, "")
    lifeline = os.environ.get(LIFELINE_FD_ENV, "")
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the guardian alone
        pass
    if parent.isdigit() and os.getppid() != int(parent):  # the parent died before prctl
        os._exit(1)
    if lifeline.isdigit():
        _start_guardian(int(lifeline), os.environ.get(MARK_ENV, ""))


def _start_guardian(lifeline: int, mark: str) -> None:
    """Fork the guardian: it waits for the lifeline's end of file (the parent closed it or died), then
    kills every marked process and the cell's process group, itself included."""
    worker = os.getpid()
    if os.fork():
        os.close(lifeline)
        return
    try:
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.closerange(3, lifeline)
        os.closerange(lifeline + 1, 1 << 16)
        while True:
            try:
                if not os.read(lifeline, 4096):
                    break
            except InterruptedError:
                continue
        if mark:
            kill_marked(mark)
        if os.getpgrp() == worker:  # the worker leads its own group (start_new_session), never the caller's
            os.killpg(0, signal.SIGKILL)
    finally:
        os._exit(0)
