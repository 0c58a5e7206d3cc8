"""What a process can see of interference while it is timed: its own CPU time (against the wall clock),
the involuntary context switches it suffered (the scheduler preempting it), the CPU time the hypervisor stole
from this virtual machine, the load average, and the other bench cells running on the machine.

Read around each training epoch by the worker (harness.cell.worker_phases), so that a record says whether its
figures were taken on a busy machine; reports and compare read these columns (harness.report.busy).
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass

from harness.measure.lockstep import TURNS_ENV, group_of

WORKER_ARGV = (b"-m", b"harness.cell.worker")  # how every bench worker is started
TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _ppid(pid: str) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[1])  # after the command name, which may hold spaces
    except (OSError, ValueError, IndexError):
        return None


def _turns_group(pid: int) -> str | None:
    """The lockstep group a worker takes turns in (harness.measure.lockstep), from its environment; None: alone."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            found = [v for v in f.read().split(b"\0") if v.startswith(TURNS_ENV.encode() + b"=")]
    except OSError:
        return None
    return group_of(found[0].split(b"=", 1)[1].decode(errors="replace")) if found else None


def worker_pids(group: str | None = None) -> set[int]:
    """bench workers alive on this machine now, of any run (`python -m harness.cell.worker`), but for those of
    lockstep `group` (harness.measure.lockstep), which take turns with it and never run beside it. A worker's
    guardian is a fork of it, with the same command line: a process whose parent is a worker is not counted."""
    found: dict[int, int | None] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if tuple(argv[1:3]) == WORKER_ARGV:
            found[int(entry.name)] = _ppid(entry.name)
    pids = {pid for pid, parent in found.items() if parent not in found}
    return {pid for pid in pids if _turns_group(pid) != group} if group else pids


def cells_running_here(group: str | None = None) -> int:
    """How many bench cells run on this machine now (whoever shares the node with a cell); a lockstep group's
    cells, which take turns, count as one."""
    return len(worker_pids(group)) + (1 if group else 0)


def steal_seconds() -> float | None:
    """CPU time the hypervisor has taken from this machine's CPUs since boot, summed over them (the 8th
    field of /proc/stat's cpu line); None where it cannot be read."""
    try:
        with open("/proc/stat") as stat:
            fields = stat.readline().split()
        return int(fields[8]) / TICKS if fields[0] == "cpu" and len(fields) > 8 else None
    except (OSError, ValueError, IndexError):
        return None


@dataclass(frozen=True)
class Snapshot:
    wall: float
    cpu: float  # this process, every thread, user + system
    involuntary: int  # context switches forced on this process
    steal: float | None

    @classmethod
    def now(cls) -> "Snapshot":
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return cls(time.monotonic(), usage.ru_utime + usage.ru_stime, usage.ru_nivcsw, steal_seconds())


def window(before: Snapshot, after: Snapshot, me: int | None = None,
           group: str | None = None) -> dict[str, float | int | None]:
    """What happened between two snapshots: this process's CPU seconds and involuntary switches, the seconds
    stolen from the machine, the 1-minute load average at the end, and the bench cells running besides this
    one (`me`: this process's pid, left out of the count, as are the cells of its lockstep `group`)."""
    others = worker_pids(group) - {me if me is not None else os.getpid()}
    return {"cpu_s": after.cpu - before.cpu, "involuntary": after.involuntary - before.involuntary,
            "steal_s": None if before.steal is None or after.steal is None else after.steal - before.steal,
            "load": os.getloadavg()[0], "other_cells": len(others)}
