"""The worker's one phase clock: every clock read is preceded by the backend's sync of the current state."""

from __future__ import annotations

import pytest

from harness.measure import clock


def test_every_clock_read_follows_a_sync_of_the_current_state(monkeypatch):
    log: list[str] = []
    ticks = iter(range(100))

    def fake_clock() -> float:
        log.append("clock")
        return float(next(ticks))

    monkeypatch.setattr(clock, "clock", fake_clock)
    phases = clock.PhaseClock(lambda state: log.append(f"sync {state}"))

    _, seconds = phases.run(lambda: log.append("import"))  # no state yet: nothing to sync
    assert log == ["clock", "import", "clock"] and seconds == 1.0
    log.clear()
    state, _ = phases.run(lambda: "built", new_state=True)  # its own work is waited for before the clock stops
    assert state == "built" and log == ["clock", "sync built", "clock"]
    log.clear()
    phases.run(lambda: "epoch 1", new_state=True)  # queued work of the last phase is not counted in this one
    assert log == ["sync built", "clock", "sync epoch 1", "clock"]
    log.clear()
    outputs, _ = phases.run(lambda: "predictions")  # a result that is not the state leaves the state alone
    assert outputs == "predictions" and phases.state == "epoch 1"
    assert log == ["sync epoch 1", "clock", "sync epoch 1", "clock"]


def test_a_time_read_in_one_process_is_comparable_in_another():
    """cold_start_s subtracts the launcher's clock reading (another process) from the worker's: a reading
    taken here and passed on must give, in a child process, an elapsed time within what really elapsed."""
    import os
    import subprocess
    import sys
    import time

    from harness.cell.worker_phases import SPAWNED_ENV

    before = time.monotonic()
    spawned = clock.clock()
    child = subprocess.run(
        [sys.executable, "-c",
         "from harness.measure.clock import clock; from harness.cell.worker_phases import spawn_time;"
         "now = clock(); print(now - spawn_time(now))"],
        env={**os.environ, SPAWNED_ENV: repr(spawned)}, capture_output=True, text=True, check=True)
    elapsed_outside = time.monotonic() - before
    elapsed_inside = float(child.stdout)
    assert 0 < elapsed_inside <= elapsed_outside


def test_a_phase_that_raises_raises_through_the_clock():
    with pytest.raises(ZeroDivisionError):
        clock.PhaseClock(lambda s: None).run(lambda: 1 / 0)
