"""The built-in executors, registered like any plugin's through the `bench_executors` hook."""

from __future__ import annotations

from harness import hookimpl
from harness.executors.local import LocalExecutor
from harness.executors.ray_tasks import RayExecutor
from harness.executors.slurm_jobs import SlurmExecutor

BUILTIN = (LocalExecutor, SlurmExecutor, RayExecutor)


@hookimpl
def bench_executors() -> list[type]:
    return list(BUILTIN)
