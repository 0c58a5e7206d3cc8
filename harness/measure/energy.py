"""Energy, measured and never estimated: a hardware energy counter read right after the synced clock reads
that bound a window (an epoch, a throughput window), the difference in joules.

Sources, by the cell's device:
- cuda: NVML's total-energy counter of the cell's GPU (nvmlDeviceGetTotalEnergyConsumption, millijoules since
  the driver loaded, Volta or newer), through nvidia-ml-py (`import pynvml`), imported only when a cuda cell
  opens a meter. The board's whole energy: a cuda cell owns its GPU (harness.execute.local), so it is the
  cell's. NVML refreshes the counter about every 100 ms (ml.energy, "Thermally Stable Profiling for Accurate
  GPU Energy Measurement"; PETSc's PetscLogGpuEnergyMeter says 20-100 ms on newer GPUs), so a shorter window
  may read 0 J or one update too many: such windows are flagged `short`, never corrected.
- cpu: RAPL's package counters in the Linux powercap tree (/sys/class/powercap/intel-rapl:N/energy_uj, also
  AMD's since Linux 5.8), microjoules, summed over the packages, each wrapping at its max_energy_range_uj
  (Documentation/power/powercap/powercap.rst). The package's whole energy, every process on it included.
  Updated about every 1 ms (the RAPL time unit, 976 µs; Hähnel et al., "Measuring Energy Consumption for
  Short Code Paths Using RAPL", 2012). energy_uj is root-only since Linux 5.10 (CVE-2020-8694).
Anything else, or a source that cannot be read, is `unavailable` with what was tried and why it failed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.measure.clock import clock

NVML_UPDATE_S = 0.1
RAPL_UPDATE_S = 0.001
POWERCAP = Path("/sys/class/powercap")
POWERCAP_ENV = "BENCH_POWERCAP_DIR"  # another powercap tree (a container's bind mount; the tests' synthetic one)
_PACKAGE = re.compile(r"^intel-rapl:\d+$")  # a package zone; intel-rapl:0:1 (core, dram...) lies inside it


@dataclass(frozen=True)
class Reading:
    """The counters of every domain of a meter, and when they were read (harness clock seconds)."""

    at: float
    counters: tuple[int, ...]


@dataclass(frozen=True)
class Window:
    """The energy between two readings. `joules` is None when a counter went backwards without a known range
    (the driver was reloaded): nothing can be said of that window."""

    joules: float | None
    seconds: float
    short: bool  # shorter than the counter's update period: the joules may be 0 or one update too many


@dataclass(frozen=True)
class Meter:
    """An energy counter: its domains' raw counts in `unit_j` joules each, each wrapping at its range (None:
    a 64-bit counter that does not wrap in practice)."""

    source: str  # what is read, for the record: "nvml: NVIDIA H200 GPU-..." or "rapl: package-0 ..."
    unit_j: float
    ranges: tuple[int | None, ...]
    update_s: float
    read_counters: Callable[[], tuple[int, ...]]

    def read(self) -> Reading:
        return Reading(clock(), tuple(self.read_counters()))

    def window(self, start: Reading, end: Reading) -> Window:
        return window(start, end, self.unit_j, self.ranges, self.update_s)


def counted(start: int, end: int, limit: int | None) -> int | None:
    """Counts between two readings of one counter that wraps to 0 after `limit`, at most once between them (a
    RAPL package range is typically 262,143 J: about 44 minutes at 100 W, so Tally reads at least every epoch);
    None when it went back with no limit."""
    if end >= start:
        return end - start
    if limit is None:
        return None
    return end + limit - start


def window(start: Reading, end: Reading, unit_j: float, ranges: tuple[int | None, ...], update_s: float) -> Window:
    """The joules between two readings of the same domains, summed over the domains."""
    seconds = end.at - start.at
    counts = [counted(a, b, r) for a, b, r in zip(start.counters, end.counters, ranges)]
    joules = None if any(c is None for c in counts) else sum(counts) * unit_j
    return Window(joules, seconds, seconds < update_s)


class Tally:
    """Every reading of one meter in a cell, chained: the total adds each pair of consecutive readings, so a
    wrap between any two of them is counted, however long the cell."""

    def __init__(self, meter: Meter):
        self.meter = meter
        self.last = meter.read()
        self.joules: float | None = 0.0
        self.short = 0  # windows asked for (`window`) that were shorter than the counter's update period

    def read(self) -> Reading:
        reading = self.meter.read()
        step = self.meter.window(self.last, reading).joules
        self.joules = None if step is None or self.joules is None else self.joules + step
        self.last = reading
        return reading

    def window(self, start: Reading, end: Reading) -> Window:
        found = self.meter.window(start, end)
        self.short += found.short
        return found


def open_meter(device: str, powercap: Path | None = None) -> Meter | str:
    """The meter for a cell on `device`, or why there is none (one line: what was tried, why it failed)."""
    if device == "cuda":
        return nvml_meter()
    if device == "cpu":
        return rapl_meter(powercap or Path(os.environ.get(POWERCAP_ENV) or POWERCAP))
    return f"no energy counter is known for device {device!r}"


def rapl_meter(powercap: Path = POWERCAP) -> Meter | str:
    """RAPL's package counters under `powercap`, or why they cannot be read."""
    if not powercap.is_dir():
        return f"no RAPL: {powercap} does not exist (no powercap driver here: a VM, or a kernel without intel_rapl)"
    zones = sorted((z for z in powercap.iterdir() if _PACKAGE.match(z.name)), key=lambda z: int(z.name.split(":")[1]))
    if not zones:
        return f"no RAPL: {powercap} has no intel-rapl:N package zone"
    names, ranges = [], []
    try:
        for zone in zones:
            names.append((zone / "name").read_text().strip() if (zone / "name").exists() else zone.name)
            ranges.append(int((zone / "max_energy_range_uj").read_text()))
            int((zone / "energy_uj").read_text())
    except PermissionError as exc:
        return (f"RAPL cannot be read: {exc.filename}: permission denied (energy_uj is root-only since Linux 5.10, "
                "CVE-2020-8694)")
    except (OSError, ValueError) as exc:
        return f"RAPL cannot be read: {exc}"
    files = [zone / "energy_uj" for zone in zones]

    def read() -> tuple[int, ...]:
        return tuple(int(f.read_text()) for f in files)

    source = (f"rapl: {' + '.join(names)} ({', '.join(str(z) for z in zones)}; the whole package, every process "
              "on it)")
    return Meter(source, 1e-6, tuple(ranges), RAPL_UPDATE_S, read)


def nvml_meter(visible: str | None = None) -> Meter | str:
    """NVML's total-energy counter of the cell's GPU (the first of CUDA_VISIBLE_DEVICES, an index or a UUID
    as nvidia-smi lists them, as harness.cell.parent_node.gpu_of reads it; GPU 0 when unset), or why not."""
    try:
        import pynvml
    except ImportError:
        return ("no NVML: nvidia-ml-py is not installed (pip install nvidia-ml-py), "
                "so the GPU's energy counter cannot be read")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        return f"no NVML: nvmlInit failed: {exc}"
    if visible is None:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    first = (visible or "0").split(",")[0].strip()
    try:
        if first.isdigit():
            handle = pynvml.nvmlDeviceGetHandleByIndex(int(first))
        else:
            handle = pynvml.nvmlDeviceGetHandleByUUID(first)
        name = _text(pynvml.nvmlDeviceGetName(handle))
        uuid = _text(pynvml.nvmlDeviceGetUUID(handle))
        pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    except pynvml.NVMLError as exc:
        return f"NVML cannot read the total energy of GPU {first}: {exc} (Volta or newer, not a MIG slice, is needed)"

    def read() -> tuple[int, ...]:
        return (int(pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)),)

    return Meter(f"nvml: {name} {uuid}", 1e-3, (None,), NVML_UPDATE_S, read)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
