"""How long the cells of a run will take, from earlier runs of the same cells, so progress can say what is left.

An earlier record matches a cell when it ran the same configuration (the cell id without its repeat) and
finished ok; the newest runs under the results root are read, committed reference runs included, so a
fresh clone estimates from the reference run. As cells finish, estimates are scaled by how this run
compares with them (this machine may be faster or slower), and a cell no earlier run has timed counts as
the median of those finished here.
"""

from __future__ import annotations

import json
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from harness import results

if TYPE_CHECKING:
    from harness.api import Cell

RUNS_READ = 40  # the newest runs under the root; older ones rarely add a configuration
# Seconds of agreement assumed before any cell finishes: the first cells of a run are often tiny (a linear
# regression in a few seconds, mostly start-up), and their ratio alone would scale an hour's estimate by 2-4x.
PRIOR_S = 60.0
_REPEAT = re.compile(r"-r\d+$")


def config_key(cell_id: str) -> str:
    return _REPEAT.sub("", cell_id)


def earlier_wall_times(root: Path, keys: set[str]) -> dict[str, float]:
    """Per configuration key among `keys`: the median wall time of its ok records in the newest runs."""
    found: dict[str, list[float]] = {}
    for run_dir in results.run_dirs(root)[-RUNS_READ:]:
        try:
            lines = (run_dir / results.RECORDS).read_bytes().splitlines()
        except OSError:
            continue
        for line in lines:
            try:
                record = json.loads(line)
                key = config_key(record["cell_id"])
                wall = float(record["wall_s"])
            except (ValueError, KeyError, TypeError, RecursionError):
                continue
            if key in keys and record.get("status") == "ok" and wall > 0:
                found.setdefault(key, []).append(wall)
    return {key: statistics.median(walls) for key, walls in found.items()}


@dataclass
class Estimates:
    expected: dict[str, float | None]  # cell id -> seconds expected from earlier runs, None when unknown
    actual: dict[str, float] = field(default_factory=dict)  # cell id -> seconds it took in this run

    @classmethod
    def for_cells(cls, cells: list[Cell], root: Path) -> "Estimates":
        earlier = earlier_wall_times(root, {config_key(c.cell_id) for c in cells})
        return cls({c.cell_id: earlier.get(config_key(c.cell_id)) for c in cells})

    def finished(self, cell_id: str, wall_s: float | None) -> None:
        if cell_id in self.expected and isinstance(wall_s, (int, float)) and wall_s > 0:
            self.actual[cell_id] = float(wall_s)

    def _scale(self) -> float:
        pairs = [(self.actual[i], self.expected[i]) for i in self.actual if self.expected.get(i)]
        actual, expected = sum(a for a, _ in pairs) + PRIOR_S, sum(e for _, e in pairs) + PRIOR_S
        return min(4.0, max(0.25, actual / expected))

    def seconds_left(self, running: dict[str, float] | None = None) -> float | None:
        """Seconds until every cell has finished, or None when nothing is known yet; `running` maps the cells
        running now to the seconds they have run."""
        running = running or {}
        left = [i for i in self.expected if i not in self.actual]
        if not left:
            return None  # nothing planned here, or all done: the finish line says the rest
        scale = self._scale()
        unknown = statistics.median(self.actual.values()) if self.actual else None
        total = 0.0
        for cell_id in left:
            expected = self.expected[cell_id]
            guess = expected * scale if expected else unknown
            if guess is None:
                return None
            total += max(0.0, guess - running.get(cell_id, 0.0))
        return total

    def total_line(self) -> str:
        """', about N min' when every cell has an earlier figure, else ''."""
        if not self.expected or any(v is None for v in self.expected.values()):
            return ""
        return f", about {_duration(sum(self.expected.values()))} by earlier runs of the same cells"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def left_text(seconds: float | None) -> str:
    """'about 7 min left', or '' when unknown."""
    return "" if seconds is None else f"about {_duration(seconds)} left"
