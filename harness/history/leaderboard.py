"""A machine's leaderboard: frameworks (rows) by tasks (columns), each entry the framework's best mode on
that task as its newest run measured it: steady epoch (or the chosen metric), time to target and the
task's quality metric. A column is a task at one setting (device, precision, optimizer, batch size,
epochs, learning rate, ...): frameworks are only ranked against each other at the same setting."""

from __future__ import annotations

import math
from dataclasses import dataclass

from harness.history.series import Series


@dataclass
class Entry:
    series: Series
    mode: str
    value: float | None  # the newest run's median, None when no run of the cell finished ok
    time_to_target_s: float | None
    metric_value: float | None
    started: object
    status: str  # the newest run's status text ("ok", "error 3", ...)


@dataclass
class Leaderboard:
    columns: list[tuple[str, str]]  # (task, setting)
    backends: list[str]
    entries: dict[tuple[str, tuple[str, str]], Entry]
    best: dict[tuple[str, str], str]  # column -> fastest backend

    def label(self, column: tuple[str, str]) -> str:
        task, setting = column
        shared = len({s for t, s in self.columns if t == task}) == 1
        return task if shared else f"{task} ({setting})"


def setting_of(series: Series) -> str:
    """The cell's configuration without backend, task and mode: what two frameworks must share to be ranked."""
    cell = series.cell
    prefix = f"{cell.get('backend')}-{cell.get('task')}-{cell.get('mode')}-"
    return series.config.removeprefix(prefix)


def _entry(series: Series) -> Entry:
    valued = series.valued
    if valued.empty:
        last = series.points.iloc[-1]
        return Entry(series, str(series.cell.get("mode")), None, None, None, last["started"], str(last["status"]))
    last = valued.iloc[-1]
    number = (lambda v: None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v))
    return Entry(series, str(series.cell.get("mode")), float(last["value"]), number(last["time_to_target_s"]),
                 number(last["metric_value"]), last["started"], str(last["status"]))


def build(series: list[Series]) -> Leaderboard:
    """The leaderboard of one machine's series."""
    entries: dict[tuple[str, tuple[str, str]], Entry] = {}
    for s in series:
        column = (str(s.cell.get("task")), setting_of(s))
        key = (str(s.cell.get("backend")), column)
        candidate = _entry(s)
        held = entries.get(key)
        if held is None or (candidate.value is not None and (held.value is None or candidate.value < held.value)):
            entries[key] = candidate
    columns = sorted({c for _, c in entries})
    backends = sorted({b for b, _ in entries})
    best = {}
    for column in columns:
        timed = [(e.value, b) for (b, c), e in entries.items() if c == column and e.value is not None]
        if timed:
            best[column] = min(timed)[1]
    return Leaderboard(columns, backends, entries, best)
