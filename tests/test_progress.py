"""Live progress: cell lines, throttled epoch lines, and a heartbeat that says what a silent cell is doing."""

from __future__ import annotations

import io

from harness.api import Cell
from harness.progress import ConsoleProgress
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
