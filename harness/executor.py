"""The executor contract: what moves planned cells to where they run and brings their results back.

The runner plans, and is the only writer of the run folder; an executor takes the cells to run and
yields each one's outcome as it finishes, in any order (`map_unordered`), and cancels what is still
queued or running when asked. Wherever a cell runs, it runs the same worker through
harness.cell.parent (see harness.cell.parent_node), so isolation, statuses and logs are the same everywhere.
Executors come from the `bench_executors` hook; `local`, `slurm` and `ray` are built in.
"""

from __future__ import annotations

import hashlib
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator

from harness.api import Cell

# Provenance columns an executor fills in every record it brings back (see results.SCHEMA).
PLACEMENT = ("host", "device_name", "gpu_uuid", "executor", "job_id", "node_cells")
LOG_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,199}")


def log_name(cell: Cell) -> str:
    """The cell's log, relative to the run folder: logs/<cell id>.log, or a digest of the id where the id
    is not a plain file name (names are checked when plugins load and when a plan is reopened; this
    keeps a path from ever being built from anything else)."""
    if LOG_NAME.fullmatch(cell.cell_id):
        return f"logs/{cell.cell_id}.log"
    return f"logs/cell-{hashlib.sha256(cell.cell_id.encode('utf-8', 'backslashreplace')).hexdigest()[:16]}.log"


@dataclass(frozen=True)
class Option:
    """One setting of an executor: `--executor-config` key `<executor>_<name>`, and a flag where `flag` is set.

    `parse` turns a flag's text or a TOML value into the setting, raising ValueError with a message
    that says what is expected."""

    name: str
    parse: Callable[[Any], Any]
    default: Any
    help: str
    flag: str | None = None


@dataclass
class Launch:
    """What the runner gives an executor with the cells: where local logs go, and its callbacks."""

    run_id: str
    log_dir: Path  # the run's logs folder: a cell run on this machine writes its log here directly
    tmp: Path  # the run's temporary folder on this machine, shared by its local cells
    started: Callable[[Cell], None]  # a cell started running (not merely queued)
    event: Callable[[Cell, dict[str, Any], float], None]  # a worker event, or {"event": "tick"}; seconds in
    stopping: Callable[[], bool]  # true once the run is interrupted: stop starting cells, cancel the rest

    def log_path(self, cell: Cell) -> Path:
        return self.log_dir.parent / log_name(cell)


@dataclass
class Finished:
    """One cell's outcome, as an executor brings it back to the machine that runs `bench run`."""

    cell: Cell
    values: dict[str, Any]  # the worker's values, or a status and message saying why there are none
    wall_s: float | None  # the cell's wall time as its launcher saw it, process start included
    placement: dict[str, Any] = field(default_factory=dict)  # PLACEMENT columns
    log: bytes | None = None  # the cell's log, to be saved by the runner; None: already in launch.log_path


class ExecutorError(Exception):
    """The engine failed in the middle of a run (e.g. a submission refused); the message says how, in one line."""


class Executor(ABC):
    """Runs cells somewhere. Subclasses set `name`, `description` and `options`."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    options: ClassVar[tuple[Option, ...]] = ()
    no_gpu_reason: ClassVar[str] = (
        "no CUDA GPU visible on this machine (neither nvidia-smi nor the NVIDIA driver lists one)"
    )

    def __init__(self, settings: dict[str, Any] | None = None):
        """`settings`: option name -> parsed value; options left out take their defaults."""
        self.settings = {o.name: o.default for o in self.options}
        self.settings.update(settings or {})
        self.cancelled: list[str] = []  # cell ids `cancel` took off the engine (queued or running), for the user

    def gpu_present(self) -> bool:
        """Whether cells can get a CUDA GPU here: decides `--device auto`, and without one cuda cells are
        skipped with `no_gpu_reason`. May connect to the engine (raise UsageError if it can't)."""
        from harness.measure.envinfo import gpu_present

        return gpu_present()

    def prepare(self, cells: list[Cell]) -> None:
        """Check that these cells can be run (engine installed, cluster reachable, resources exist) and
        connect; raise harness.exits.UsageError, in one line, if not. Called before the run folder is
        written and before anything is submitted."""

    @abstractmethod
    def map_unordered(self, cells: list[Cell], launch: Launch) -> Iterator[Finished]:
        """Run the cells; yield each one's outcome as it finishes. Once `launch.stopping()` turns true,
        cancel everything still queued or running and return without yielding the cut-short cells.
        Closing the generator early must cancel the same way."""

    @abstractmethod
    def cancel(self) -> None:
        """Cancel every cell still queued or running, add their ids to `cancelled`, and return once none is
        left on the engine."""

    def close(self) -> None:
        """Release the engine (disconnect, stop what `prepare` started). Called once, at the end."""


# -- option value parsers: a flag's text or a TOML value in, the setting out, ValueError naming what's expected --

def whole(minimum: int = 1) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        try:
            number = int(value) if isinstance(value, str) else value
        except ValueError:
            number = None
        if not isinstance(number, int) or isinstance(number, bool) or number < minimum:
            raise ValueError(f"a whole number >= {minimum}")
        return number
    return parse


def seconds(value: Any) -> float:
    try:
        number = float(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else value
    except ValueError:
        number = None
    if not isinstance(number, float) or not 0 <= number < float("inf"):
        raise ValueError("a number of seconds >= 0")
    return number


def text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or not value.isprintable():
        raise ValueError("a non-empty text on one line")
    return value.strip()


def boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
        return value.lower() in ("true", "yes", "1")
    raise ValueError("true or false")


def texts(value: Any) -> list[str]:
    """A list of texts, or one text split like a shell would (flags give one text)."""
    import shlex

    if isinstance(value, str):
        try:
            value = shlex.split(value)
        except ValueError as exc:
            raise ValueError(f"text a shell could split ({exc})") from None
    if not isinstance(value, list) or not all(isinstance(v, str) and v.isprintable() for v in value):
        raise ValueError("a list of texts")
    return value


SETTINGS_PREFIX = "BENCH_"


def driver_settings() -> dict[str, str]:
    """bench's own environment variables (backend settings, data and cache folders) on the machine that runs
    `bench run`: remote cells get them too, so they run under the same settings as local ones."""
    import os

    return {k: v for k, v in os.environ.items() if k.startswith(SETTINGS_PREFIX)}
