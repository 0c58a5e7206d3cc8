"""The built-in executors, registered like any plugin's through the `bench_executors` hook."""

from __future__ import annotations

from harness import hookimpl
from harness.execute.local import LocalExecutor
from harness.execute.ray_tasks import RayExecutor
from harness.execute.slurm_jobs import SlurmExecutor

BUILTIN = (LocalExecutor, SlurmExecutor, RayExecutor)


@hookimpl
def bench_executors() -> list[type]:
    return list(BUILTIN)
