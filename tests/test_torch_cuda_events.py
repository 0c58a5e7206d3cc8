"""The torch backend's cross-check of its sync on a GPU: one steady epoch timed by CUDA events beside the
harness's synced wall clock (backends/torch_cuda_events.py). On a CPU the record has none of it."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from backends.torch_backend import TorchBackend
from backends.torch_cuda_events import STEADY_EPOCH, SteadyEpochEvents
from harness.api import Cell, class_ref
from harness.cell.worker import run_cell
from tasks.mnist_tasks import MnistMLP


def _cell(mode: str, device: str, epochs: int, train_size: int) -> Cell:
    task = MnistMLP()
    return Cell("torch", task.name, mode, device, task.hyperparams(epochs=epochs), train_size=train_size,
                test_size=256, threads=1, latency_steps=2, backend_ref=class_ref(TorchBackend),
                task_ref=class_ref(MnistMLP))


def test_a_cpu_cell_records_no_cuda_events():
    r = run_cell(_cell("eager", "cpu", epochs=2, train_size=512))
    assert r["status"] == "ok", r.get("message")
    assert not any(key.startswith("cuda_event") for key in r["details"])


def test_a_single_step_in_the_steady_slot_is_not_taken_for_an_epoch():
    """One epoch in all: the second train_epoch call is the latency phase's single step, which is not timed."""
    events = SteadyEpochEvents(device=None)
    assert events.begin(64) is None  # the first epoch: never timed
    assert events.begin(1) is None  # no CUDA call is made, so this runs without a GPU
    facts = events.facts()
    assert facts["cuda_event_epoch_s"] is None and "1 steps, the first epoch 64" in facts["cuda_event_note"]


@pytest.mark.gpu
@pytest.mark.parametrize("mode", TorchBackend.modes)
def test_the_cuda_event_time_of_a_steady_epoch_is_within_the_synced_wall_clock(mode):
    r = run_cell(_cell(mode, "cuda", epochs=3, train_size=16384))
    assert r["status"] == "ok", r.get("message")
    details = r["details"]
    assert details["cuda_event_epoch"] == STEADY_EPOCH, details.get("cuda_event_note")
    wall, events = r["epoch_s"][STEADY_EPOCH - 1], details["cuda_event_epoch_s"]
    # An honest sync: the GPU's own account of the epoch never exceeds the clock that waited for it.
    assert events <= wall * 1.02 + 1e-4, (events, wall)
    assert events > 0.25 * wall, (events, wall)  # the events enclose the epoch's work, not an empty stretch
