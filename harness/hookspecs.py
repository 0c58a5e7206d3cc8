"""Every hook a bench plugin can implement. All hooks are prefixed `bench_`.

A plugin is a module (or object) with functions decorated by `harness.hookimpl`.
Built-in plugins are registered from an explicit list; third-party plugins are
found through the `bench.plugins` entry-point group.
"""

from __future__ import annotations

from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("bench")


@hookspec
def bench_backends() -> list[type]:
    """Return the Backend subclasses this plugin provides.

    Called once when the registry is built (by `bench run`, `bench list`,
    `bench plugins`, ...). Must not import a framework: return classes only.
    Every plugin's answer is collected; names must be unique across plugins.
    """


@hookspec
def bench_tasks() -> list[type]:
    """Return the Task subclasses this plugin provides.

    Called once when the registry is built. Names must be unique across plugins.
    """


@hookspec
def bench_executors() -> list[type]:
    """Return the Executor subclasses (harness.executor.Executor) this plugin provides.

    Called once when the registry is built. An executor moves planned cells to where they run and
    brings their results back (`bench run --executor NAME`); its options come from its `options`
    (keys `NAME_OPTION` in `--executor-config`). Must not import the engine: return classes only.
    Names must be unique across plugins; bench's own are local, slurm and ray.
    """


@hookspec
def bench_environment() -> dict[str, Any]:
    """Return extra facts about the machine to record with every result (e.g. a driver version).

    Called once per run in the parent process, after the harness collected its
    own environment; keys from all plugins are merged (later plugins win).
    """


@hookspec
def bench_cell_finished(record: dict[str, Any]) -> None:
    """Observe one finished cell's results record (any status), right after it is saved.

    Called in the parent process, once per cell; use it to stream results to a
    dashboard. An exception here is reported and does not stop the run.
    """
