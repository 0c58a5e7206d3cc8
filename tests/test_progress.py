"""Live progress: cell lines, throttled epoch lines, and a heartbeat that says what a silent cell is doing."""

from __future__ import annotations

import io

import pytest

from harness.api import Cell
from harness.run.progress import ConsoleProgress
from tasks.linear_regression import LinearRegression


def make_cell() -> Cell:
    return Cell("fake", "linear_regression", "eager", "cpu", LinearRegression().hyperparams())


def test_a_silent_cell_says_what_it_is_doing(monkeypatch):
    out = io.StringIO()
    progress = ConsoleProgress(out)
    cell = make_cell()
    progress.cell_started(2, 5, cell)
    progress.event(cell, {"event": "tick"}, 1.0)  # just started: nothing to add yet
    monkeypatch.setattr(ConsoleProgress, "HEARTBEAT_S", 0.0)
    progress.event(cell, {"event": "phase", "phase": "setup"}, 3.0)
    progress.event(cell, {"event": "tick"}, 40.0)
    progress.event(cell, {"event": "epoch_start", "epoch": 1, "epochs": 3}, 41.0)
    progress.event(cell, {"event": "tick"}, 95.0)
    lines = out.getvalue().splitlines()
    assert len(lines) == 3, lines
    assert lines[0].endswith("[2/5] fake linear_regression eager cpu: starting")
    assert lines[1].endswith(": still setting up (data to the device, model, optimizer) (40 s into the cell)")
    assert lines[2].endswith(": still training epoch 1/3 (95 s into the cell)")


def test_epoch_lines_are_throttled_but_the_last_epoch_always_shows():
    out = io.StringIO()
    progress = ConsoleProgress(out)
    cell = make_cell()
    progress.cell_started(1, 1, cell)
    for epoch in (1, 2, 3):
        progress.event(cell, {"event": "epoch", "epoch": epoch, "epochs": 3, "train_s": epoch * 0.1,
                              "metric": "mse", "value": 0.5 / epoch}, epoch * 0.1)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and "epoch 3/3 mse 0.1667 (trained 0.3 s)" in lines[-1], lines


def test_time_left_comes_from_earlier_runs_of_the_same_cells_scaled_by_this_run(tmp_path):
    import json

    from harness.api import Cell, Hyperparams
    from harness.run.estimate import Estimates

    def cell(task: str, repeat: int) -> Cell:
        return Cell("fake", task, "eager", "cpu", Hyperparams(epochs=2), repeat=repeat)

    earlier = tmp_path / "20260101-000000-aaaa"
    earlier.mkdir()
    lines = [{"cell_id": cell("a", 0).cell_id, "status": "ok", "wall_s": 60.0},
             {"cell_id": cell("a", 1).cell_id, "status": "ok", "wall_s": 80.0},  # median of a: 70
             {"cell_id": cell("b", 0).cell_id, "status": "ok", "wall_s": 110.0},
             {"cell_id": cell("b", 1).cell_id, "status": "error", "wall_s": 1.0},  # not ok: not counted
             {"cell_id": cell("c", 0).cell_id, "status": "ok", "wall_s": "garbage"}]
    (earlier / "records.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines) + "{not json\n")
    todo = [cell("a", 2), cell("b", 2)]  # other repeats of the same configurations
    estimates = Estimates.for_cells(todo, tmp_path)
    assert estimates.seconds_left() == 180.0
    assert "about 3 min" in estimates.total_line()
    assert estimates.seconds_left({todo[0].cell_id: 30.0}) == 150.0  # a running cell counts what it has left
    estimates.finished(todo[0].cell_id, 140.0)  # this machine runs them twice as long as the earlier run
    assert estimates.seconds_left() == pytest.approx(110 * (140 + 60) / (70 + 60))  # 60 s of prior agreement
    # A tiny first cell that took three times its earlier time barely moves an estimate; a large one does.
    tiny = Estimates({"t": 2.0, "big": 600.0})
    tiny.finished("t", 6.0)
    assert 600 < tiny.seconds_left() < 650
    tiny.finished("t", 600.0)
    assert tiny.seconds_left() > 2000
    unknown = Estimates.for_cells([cell("c", 2)], tmp_path)
    assert unknown.seconds_left() is None and unknown.total_line() == ""
