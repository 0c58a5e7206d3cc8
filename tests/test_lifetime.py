"""Nothing of a cell outlives it or the bench process that started it; killed runs are cleaned up after."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from harness.cell import lifetime
from tests.conftest import REPO


def running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] not in "ZX"  # a zombie has finished
    except OSError:
        return False


def wait_gone(pids: list[int], seconds: float = 5) -> list[int]:
    deadline = time.monotonic() + seconds
    while (left := [p for p in pids if running(p)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def _python(code: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True, **kwargs)


def test_the_kernel_kills_a_worker_whose_parent_dies():
    worker = ("import time; from harness.cell import lifetime; lifetime.watch_parent(); print('ready', flush=True); "
              "time.sleep(60)")
    parent = _python(f"import os, subprocess, sys, time\n"
                     f"p = subprocess.Popen([sys.executable, '-c', {worker!r}], "
                     f"env={{**os.environ, {lifetime.PARENT_ENV!r}: str(os.getpid())}})\n"
                     f"print(p.pid, flush=True); time.sleep(60)")
    child = int(parent.stdout.readline())
    assert parent.stdout.readline().strip() == "ready"
    parent.kill()  # no lifeline here: only PR_SET_PDEATHSIG can take the worker along
    parent.wait()
    assert wait_gone([child]) == []


def test_the_guardian_kills_the_cells_group_and_marked_processes_when_the_parent_is_gone():
    read, write = os.pipe()
    mark = lifetime.new_mark()
    worker = ("import subprocess, time; from harness.cell import lifetime; lifetime.watch_parent()\n"
              "helper = subprocess.Popen(['sleep', '60'])\n"
              "escaped = subprocess.Popen(['sleep', '60'], start_new_session=True)\n"
              "print(helper.pid, escaped.pid, flush=True); time.sleep(60)")
    proc = _python(worker, pass_fds=(read,), start_new_session=True,
                   env={**os.environ, lifetime.LIFELINE_FD_ENV: str(read), lifetime.MARK_ENV: mark})
    os.close(read)
    pids = [proc.pid, *map(int, proc.stdout.readline().split())]
    assert all(running(p) for p in pids)
    os.close(write)  # as when bench run dies: the lifeline's only writer is gone
    assert wait_gone(pids) == []
    proc.wait()


def test_a_run_removes_what_killed_runs_left_and_nothing_else(tmp_path):
    gone = subprocess.Popen(["true"])
    gone.wait()
    dead, me = gone.pid, os.getpid()
    for name in (f"bench-run-{dead}-a", f"bench-cell-{dead}-b", f"bench-run-{me}-c", "bench-run-old", "other"):
        (tmp_path / name).mkdir()
    orphan = subprocess.Popen(["sleep", "60"], env={**os.environ, lifetime.MARK_ENV: f"{dead}-x"})
    ours = subprocess.Popen(["sleep", "60"], env={**os.environ, lifetime.MARK_ENV: f"{me}-y"})
    try:
        lifetime.remove_stale(tmp_path)
        assert sorted(p.name for p in tmp_path.iterdir()) == [f"bench-run-{me}-c", "bench-run-old", "other"]
        assert orphan.wait(timeout=5) == -signal.SIGKILL
        assert ours.poll() is None  # its bench process is alive: not stale
    finally:
        ours.kill()
        ours.wait()
