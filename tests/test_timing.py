"""The worker's one phase clock: every clock read is preceded by the backend's sync of the current state."""

from __future__ import annotations

import pytest

from harness import timing


def test_every_clock_read_follows_a_sync_of_the_current_state(monkeypatch):
    log: list[str] = []
    ticks = iter(range(100))

    def clock() -> float:
        log.append("clock")
        return float(next(ticks))

    monkeypatch.setattr(timing, "clock", clock)
    phases = timing.PhaseClock(lambda state: log.append(f"sync {state}"))

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


def test_the_clock_is_the_machine_wide_monotonic_one():
    import time

    # cold_start_s subtracts the launcher's clock (another process) from the worker's: it must be one clock.
    assert timing.clock is time.monotonic
    with pytest.raises(ZeroDivisionError):
        timing.PhaseClock(lambda s: None).run(lambda: 1 / 0)
