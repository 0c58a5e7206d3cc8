"""Dispatch overhead per cell of each executor, on this machine: the cell's wall time as the driver sees it
(from handing it to the executor until its outcome is back) minus the worker's own wall time (total_s,
from import to finish, measured inside the worker).

Each cell is the NumPy fake backend on a tiny linear regression, so nearly all of a cell is overhead;
cells go one at a time, so nothing queues behind another. The split: `spawn` is the launcher's wall time
minus the worker's (starting Python and the harness in a fresh process, what every executor pays, local
too); `transport` is the driver's wall time minus the launcher's (submission, scheduling, the job or task
starting on the node, the result coming back). Without SLURM_CONF or --ray-address the script starts its
own one-node SLURM cluster and Ray head on loopback (tests/cluster), and stops them after.

    python benchmarks/dispatch_overhead.py --cells 10
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from harness.api import (
    Cell,  # noqa: E402
    class_ref,  # noqa: E402
)
from harness.executor import Executor, Launch  # noqa: E402
from tasks.linear_regression import LinearRegression  # noqa: E402
from tests.fakes import FakeBackend  # noqa: E402


def cells(count: int) -> list[Cell]:
    hp = LinearRegression().hyperparams(epochs=1)
    return [Cell("fake", "linear_regression", "eager", "cpu", hp, repeat=i, train_size=256, test_size=64,
                 latency_steps=0, timeout_s=120, backend_ref=class_ref(FakeBackend),
                 task_ref=class_ref(LinearRegression)) for i in range(count)]


def measure(executor: Executor, todo: list[Cell], folder: Path) -> list[tuple[float, float, float]]:
    """(driver wall, launcher wall, worker wall) per cell, each cell dispatched alone."""
    logs = folder / "logs" / executor.name
    logs.mkdir(parents=True)
    launch = Launch(f"dispatch-{executor.name}-{os.getpid()}", logs, folder, lambda cell: None,
                    lambda cell, event, elapsed: None, lambda: False)
    executor.prepare(todo)
    times = []
    for cell in todo:
        began = time.monotonic()
        (finished,) = list(executor.map_unordered([cell], launch))
        driver = time.monotonic() - began
        if finished.values.get("status") != "ok":
            raise SystemExit(f"{executor.name}: {cell.cell_id}: {finished.values.get('message')}")
        times.append((driver, finished.wall_s, finished.values["total_s"]))
    return times


def summary(name: str, times: list[tuple[float, float, float]]) -> str:
    overhead = [d - w for d, _, w in times]
    spawn = [launcher - w for _, launcher, w in times]
    transport = [d - launcher for d, launcher, _ in times]

    def ms(values: list[float]) -> str:
        return f"{statistics.median(values) * 1e3:7.0f}"

    return (f"| {name:5} | {len(times):5} | {ms(overhead)} | {min(overhead) * 1e3:5.0f}–{max(overhead) * 1e3:.0f} | "
            f"{ms(spawn)} | {ms(transport)} | {statistics.median(w for _, _, w in times) * 1e3:6.0f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=10, help="cells per executor (default 10)")
    parser.add_argument("--executors", default="local,slurm,ray", help="comma-separated (default: all three)")
    parser.add_argument("--ray-address", help="a running Ray head (default: a head started on loopback here)")
    args = parser.parse_args()
    from harness.execute.local import LocalExecutor
    from harness.execute.ray_tasks import RayExecutor
    from harness.execute.slurm_jobs import SlurmExecutor
    from tests.cluster import ray_head, slurm

    names = args.executors.split(",")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-dispatch-") as tmp:
        folder = Path(tmp)
        started: list[tuple[object, Path]] = []
        try:
            address = args.ray_address
            if "slurm" in names and not os.environ.get("SLURM_CONF"):
                os.environ["SLURM_CONF"] = str(slurm.up(folder / "slurm"))
                started.append((slurm, folder / "slurm"))
            if "ray" in names and not address:
                address = ray_head.up(folder / "ray", env={**os.environ, "PYTHONPATH": str(REPO)})
                started.append((ray_head, folder / "ray"))
                os.environ.update({**ray_head.loopback_env({}), **ray_head.driver_env(folder / "ray")})
            for name in names:
                executor = {"local": lambda: LocalExecutor(),
                            "slurm": lambda: SlurmExecutor({"folder": str(folder / "jobs")}),
                            "ray": lambda: RayExecutor({"address": address})}[name]()
                try:
                    times = measure(executor, cells(args.cells), folder)
                finally:
                    executor.close()
                rows.append(summary(name, times))
                print(rows[-1], file=sys.stderr, flush=True)
        finally:
            for module, where in reversed(started):
                module.down(where)
    print("| executor | cells | overhead, median (ms) | overhead, range (ms) | spawn (ms) | transport (ms) | "
          "worker (ms) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
