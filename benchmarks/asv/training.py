"""Training time, quality and memory of every backend x task x mode, as asv track_ benchmarks.

Times are bench's own measurements (device-synced phases in a fresh worker process),
not asv's timing of a call, so they mean what they mean in `bench run`. Each cell
trains once per asv run; every class below reads its numbers from the same record.
"""

from __future__ import annotations

import math
import os

from . import cells

_REGISTRY = cells.registry()
BACKENDS = sorted(_REGISTRY.backends)
TASKS = sorted(_REGISTRY.tasks)
MB = 2.0**20  # bench records MiB; asv formats bytes
MODES = sorted({mode for backend in _REGISTRY.backends.values() for mode in backend.modes})


class _Cell:
    params = [BACKENDS, TASKS, MODES]
    param_names = ["backend", "task", "mode"]
    timeout = 3600  # seconds, for one cell (and for setup_cache)
    metric: str | None = None  # only tasks whose headline metric this is
    columns: tuple[str, ...] = ()  # record columns the benchmarks read; a cell without them is skipped

    def setup_cache(self) -> str:
        # Inherited, so one key: asv runs it once, in a temporary folder all these benchmarks share.
        folder = os.path.abspath("cells")
        os.makedirs(folder, exist_ok=True)
        return folder

    def setup(self, folder: str, backend: str, task: str, mode: str) -> None:
        # NotImplementedError in setup is asv's "skipped" (n/a in its tables).
        if self.metric and _REGISTRY.tasks[task].metric != self.metric:
            raise NotImplementedError(f"{task} is not scored by {self.metric}")
        cell, reason = cells.plan_cell(_REGISTRY, backend, task, mode)
        if reason:
            raise NotImplementedError(reason)
        self.record = cells.record(folder, cell)
        status = self.record["status"]
        if status == "skipped":
            raise NotImplementedError(self.record.get("message") or "skipped")
        if status != "ok":
            raise RuntimeError(f"{cell.cell_id}: {status}: {self.record.get('message')}")
        missing = [c for c in self.columns if not _measured(self.record.get(c))]
        if missing:
            raise NotImplementedError(f"not measured for this cell: {', '.join(missing)}")


def _measured(value) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


class Time(_Cell):
    columns = ("train_s", "first_epoch_s", "step_ms_p50")

    def track_train_s(self, folder, backend, task, mode) -> float:
        """Training time, all epochs, compile included (bench's train_s)."""
        return float(self.record["train_s"])

    track_train_s.unit = "seconds"

    def track_epoch_s(self, folder, backend, task, mode) -> float:
        """Steady-state epoch time (the only epoch's time when there is one)."""
        steady = self.record.get("steady_epoch_s")
        return float(steady if _measured(steady) else self.record["first_epoch_s"])

    track_epoch_s.unit = "seconds"

    def track_step_s(self, folder, backend, task, mode) -> float:
        """Median latency of one synced training step, after warm-up."""
        return float(self.record["step_ms_p50"]) / 1e3

    track_step_s.unit = "seconds"


class Compile(_Cell):
    columns = ("compile_s",)

    def track_compile_s(self, folder, backend, task, mode) -> float:
        """Compile time as the framework itself reports it (the record's compile_source says how); skipped
        where the framework cannot tell."""
        return float(self.record["compile_s"])

    track_compile_s.unit = "seconds"


class Accuracy(_Cell):
    metric = "accuracy"
    columns = ("metric_value",)

    def track_accuracy(self, folder, backend, task, mode) -> float:
        """Test accuracy after training."""
        return float(self.record["metric_value"])

    track_accuracy.unit = "accuracy"


class Mse(_Cell):
    metric = "mse"
    columns = ("metric_value",)

    def track_mse(self, folder, backend, task, mode) -> float:
        """Test mean squared error after training."""
        return float(self.record["metric_value"])

    track_mse.unit = "mse"


class HostMemory(_Cell):
    columns = ("peak_host_mb",)

    def track_peak_host_mb(self, folder, backend, task, mode) -> float:
        """Peak resident memory of the worker process."""
        return float(self.record["peak_host_mb"]) * MB

    track_peak_host_mb.unit = "bytes"


class DeviceMemory(_Cell):
    columns = ("peak_device_mb",)

    def track_peak_device_mb(self, folder, backend, task, mode) -> float:
        """Peak accelerator memory, where the framework reports it (skipped on CPU)."""
        return float(self.record["peak_device_mb"]) * MB

    track_peak_device_mb.unit = "bytes"
