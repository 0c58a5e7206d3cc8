"""Energy (harness.measure.energy, harness.cell.worker_energy): on this machine it is unavailable, with the
reason; the arithmetic on counter readings (units, wraparound, chained readings, short windows); RAPL's
powercap files read for real from a synthetic tree; a cell's epochs read around their synced ends."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import pytest

from harness.api import Cell, class_ref
from harness.cell.worker import run_cell
from harness.measure import energy
from harness.measure.clock import clock
from harness.measure.energy import (
    NVML_UPDATE_S,
    RAPL_UPDATE_S,
    Meter,
    Reading,
    Tally,
    open_meter,
    rapl_meter,
    window,
)
from tasks.linear_regression import LinearRegression
from tests.fakes import FakeBackend

RANGE_UJ = 262_143_328_850  # a package's max_energy_range_uj as Intel parts report it


def _zone(root: Path, name: str, energy_uj: int, range_uj: int = RANGE_UJ, label: str = "package-0") -> Path:
    zone = root / name
    zone.mkdir(parents=True, exist_ok=True)
    (zone / "name").write_text(label + "\n")
    (zone / "max_energy_range_uj").write_text(f"{range_uj}\n")
    _write(zone, energy_uj)
    return zone


def _write(zone: Path, energy_uj: int) -> None:
    tmp = zone / "energy_uj.tmp"
    tmp.write_text(f"{energy_uj}\n")
    os.replace(tmp, zone / "energy_uj")  # a reader sees the old value or the new, never an empty file


# -- unavailable here, with the reason -------------------------------------------------------------

def test_this_machine_has_no_rapl_and_says_what_was_tried():
    if Path("/sys/class/powercap").exists():
        pytest.skip("this machine has a powercap tree")
    assert open_meter("cpu") == ("no RAPL: /sys/class/powercap does not exist (no powercap driver here: a VM, or a "
                                 "kernel without intel_rapl)")


def test_without_nvidia_ml_py_a_gpus_energy_is_unavailable_not_an_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # what an environment without nvidia-ml-py gives
    assert open_meter("cuda") == ("no NVML: nvidia-ml-py is not installed (pip install nvidia-ml-py), so the GPU's "
                                  "energy counter cannot be read")


def test_with_nvidia_ml_py_but_no_driver_nvml_says_why():
    pynvml = pytest.importorskip("pynvml")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        pass
    else:
        pytest.skip("NVML works on this machine")
    assert open_meter("cuda").startswith("no NVML: nvmlInit failed: ")


def test_an_empty_or_unreadable_powercap_tree_is_unavailable(tmp_path):
    assert rapl_meter(tmp_path) == f"no RAPL: {tmp_path} has no intel-rapl:N package zone"
    zone = _zone(tmp_path, "intel-rapl:0", 5)
    if os.geteuid() == 0:
        pytest.skip("root reads a file whatever its mode")
    (zone / "energy_uj").chmod(0)
    assert "permission denied (energy_uj is root-only since Linux 5.10" in rapl_meter(tmp_path)


def test_a_cell_here_records_energy_as_unavailable_with_the_reason():
    task = LinearRegression()
    cell = Cell(backend="fake", task=task.name, mode="eager", device="cpu", hp=task.hyperparams(epochs=2),
                train_size=256, test_size=64, latency_steps=2, backend_ref=class_ref(FakeBackend),
                task_ref=class_ref(LinearRegression))
    out = run_cell(cell)
    assert out["status"] == "ok", out.get("message")
    assert out["energy_source"] == "unavailable" and out["energy_note"] == open_meter("cpu")
    assert out["energy_j"] is None and out["epoch_j"] is None and out["samples_per_j"] is None


# -- the arithmetic ---------------------------------------------------------------------------------

def test_nvml_millijoules_become_joules():
    assert window(Reading(0.0, (1_000,)), Reading(1.0, (3_500,)), 1e-3, (None,), NVML_UPDATE_S).joules == 2.5


class StandInNvml:
    """NVML's Python API as nvidia-ml-py names it, for this GPU-less machine: two GPUs whose energy counters (mJ)
    the test sets. Only the calls harness.measure.energy makes."""

    class NVMLError(Exception):
        pass

    def __init__(self) -> None:
        self.millijoules = {"GPU-aaa": 1_000, "GPU-bbb": 50_000}

    def nvmlInit(self) -> None:
        pass

    def nvmlDeviceGetHandleByIndex(self, index: int) -> str:
        return ["GPU-aaa", "GPU-bbb"][index]

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> str:
        if uuid not in self.millijoules:
            raise self.NVMLError("Not Found")
        return uuid

    def nvmlDeviceGetName(self, handle: str) -> bytes:
        return b"Stand-in GPU"

    def nvmlDeviceGetUUID(self, handle: str) -> str:
        return handle

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: str) -> int:
        return self.millijoules[handle]


def test_nvml_reads_the_cells_gpu_in_millijoules(monkeypatch):
    nvml = StandInNvml()
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-bbb,GPU-aaa")  # the first is the cell's (as gpu_of reads it)
    meter = energy.nvml_meter()
    assert isinstance(meter, Meter) and meter.source == "nvml: Stand-in GPU GPU-bbb"
    start = meter.read()
    nvml.millijoules["GPU-bbb"] += 2_500
    nvml.millijoules["GPU-aaa"] += 99_000  # another cell's GPU
    assert meter.window(start, meter.read()).joules == pytest.approx(2.5)
    assert isinstance(energy.nvml_meter("1"), Meter) and energy.nvml_meter("1").source.endswith("GPU-bbb")
    assert energy.nvml_meter("GPU-zzz").startswith("NVML cannot read the total energy of GPU GPU-zzz: Not Found")


def test_a_wrapped_rapl_counter_is_counted_across_its_range():
    start, end = Reading(0.0, (RANGE_UJ - 300_000,)), Reading(1.0, (1_028_850,))
    found = window(start, end, 1e-6, (RANGE_UJ,), RAPL_UPDATE_S)
    assert found.joules == pytest.approx(1.32885)  # 300,000 µJ to the range's end, then 1,028,850 from 0
    # Without the range the same readings say nothing: a counter that went back is never a negative energy.
    assert window(start, end, 1e-6, (None,), RAPL_UPDATE_S).joules is None


def test_packages_are_summed_each_with_its_own_wrap():
    start = Reading(0.0, (10, RANGE_UJ - 5))
    end = Reading(2.0, (2_000_010, 995))
    assert window(start, end, 1e-6, (RANGE_UJ, RANGE_UJ), RAPL_UPDATE_S).joules == pytest.approx(2.001)


def test_a_window_shorter_than_the_counters_update_period_is_flagged():
    def short(seconds: float, update_s: float) -> bool:
        return window(Reading(0.0, (0,)), Reading(seconds, (7,)), 1e-3, (None,), update_s).short

    assert short(0.05, NVML_UPDATE_S) and not short(0.1, NVML_UPDATE_S) and not short(0.05, RAPL_UPDATE_S)
    assert short(0.0005, RAPL_UPDATE_S)


def test_chained_readings_count_every_wrap_where_the_two_ends_alone_cannot():
    """A cell longer than the counter's range: reading at each epoch counts each wrap; the first and last
    reading alone would miss whole ranges."""
    values = iter([RANGE_UJ - 100, 50, RANGE_UJ - 100, 50])  # +150 µJ, then almost a whole range, then +150
    meter = Meter("synthetic", 1e-6, (RANGE_UJ,), RAPL_UPDATE_S, lambda: (next(values),))
    tally = Tally(meter)
    for _ in range(3):
        tally.read()
    assert tally.joules == pytest.approx((150 + (RANGE_UJ - 150) + 150) * 1e-6)
    assert window(Reading(0, (RANGE_UJ - 100,)), Reading(1, (50,)), 1e-6, (RANGE_UJ,), 1e-3).joules == \
        pytest.approx(150e-6)


def test_rapl_reads_the_package_zones_and_not_their_subzones(tmp_path):
    _zone(tmp_path, "intel-rapl:0", 1_000_000)
    _zone(tmp_path, "intel-rapl:0:0", 40, label="core")  # inside package 0: counting it would count twice
    _zone(tmp_path, "intel-rapl:1", RANGE_UJ - 500_000, label="package-1")
    (tmp_path / "intel-rapl-mmio:0").mkdir()  # another control type
    meter = rapl_meter(tmp_path)
    assert isinstance(meter, Meter), meter
    assert meter.source.startswith("rapl: package-0 + package-1 (") and meter.ranges == (RANGE_UJ, RANGE_UJ)
    start = meter.read()
    _write(tmp_path / "intel-rapl:0", 3_000_000)
    _write(tmp_path / "intel-rapl:0:0", 9_000_000_000)
    _write(tmp_path / "intel-rapl:1", 500_000)
    assert meter.window(start, meter.read()).joules == pytest.approx(3.0)


# -- a cell, read around its synced epochs ----------------------------------------------------------

class SteadyEpochs(FakeBackend):
    """The fake, with each epoch lasting at least EPOCH_S (a sleep), so an energy window spans many counter
    updates."""

    name = "steady"
    EPOCH_S = 0.4

    def train_epoch(self, state, order):
        started = time.perf_counter()
        state = super().train_epoch(state, order)
        time.sleep(max(0.0, self.EPOCH_S - (time.perf_counter() - started)))
        return state


def test_a_cells_epochs_are_read_around_their_synced_ends(tmp_path, monkeypatch):
    """A synthetic package counter advancing at `watts`, rewritten by a thread every 0.2 ms or whenever the
    interpreter and a loaded machine let it: each epoch's joules are `watts` times its seconds within 10% (a
    reading up to 40 ms stale), the steady epochs' samples per joule follow, and the cell's total covers them."""
    watts = 20.0
    zone = _zone(tmp_path, "intel-rapl:0", 0)
    started, stop = clock(), threading.Event()

    def advance() -> None:
        while not stop.is_set():
            _write(zone, int((clock() - started) * watts * 1e6))
            time.sleep(0.0002)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)  # the writer gets the interpreter often, as a kernel's counter needs no turn
    writer = threading.Thread(target=advance, daemon=True)
    writer.start()
    monkeypatch.setenv(energy.POWERCAP_ENV, str(tmp_path))
    task = LinearRegression()
    cell = Cell(backend="steady", task=task.name, mode="eager", device="cpu", hp=task.hyperparams(epochs=3),
                train_size=256, test_size=64, latency_steps=0, backend_ref=class_ref(SteadyEpochs),
                task_ref=class_ref(LinearRegression))
    try:
        out = run_cell(cell)
    finally:
        stop.set()
        writer.join()
        sys.setswitchinterval(interval)
    assert out["status"] == "ok", out.get("message")
    assert out["energy_source"].startswith("rapl: package-0 (")
    assert len(out["epoch_j"]) == 3
    for joules, seconds in zip(out["epoch_j"], out["epoch_s"]):
        assert joules == pytest.approx(watts * seconds, rel=0.1), (joules, seconds)
    steady_samples = 2 * (256 // 32) * 32
    assert out["samples_per_j"] == pytest.approx(steady_samples / sum(out["epoch_j"][1:]))
    assert sum(out["epoch_j"]) <= out["energy_j"] <= watts * out["total_s"] * 1.1
    assert out["energy_note"] == ""


def test_epochs_shorter_than_the_counters_update_period_are_said_so(tmp_path, monkeypatch):
    _zone(tmp_path, "intel-rapl:0", 123)  # a counter that never moves: a window's joules are 0
    monkeypatch.setenv(energy.POWERCAP_ENV, str(tmp_path))
    task = LinearRegression()
    cell = Cell(backend="fake", task=task.name, mode="eager", device="cpu", hp=task.hyperparams(epochs=3),
                train_size=32, test_size=16, latency_steps=0, backend_ref=class_ref(FakeBackend),
                task_ref=class_ref(LinearRegression))  # one step an epoch: well under RAPL's 1 ms
    out = run_cell(cell)
    assert out["status"] == "ok", out.get("message")
    assert out["epoch_j"] == [0.0, 0.0, 0.0] and out["samples_per_j"] is None
    short = sum(seconds < RAPL_UPDATE_S for seconds in out["epoch_s"])  # the first epoch may take longer
    assert short, out["epoch_s"]
    flagged = out["energy_note"].split(" window(s) shorter than the counter's 1 ms update period")[0]
    assert 1 <= int(flagged) <= short  # the meter's window holds the clock's, so it is never shorter
