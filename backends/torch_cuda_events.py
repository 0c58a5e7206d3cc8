"""A cross-check of the torch backend's sync on a GPU: one steady epoch timed by CUDA events, beside the
harness's wall clock for the same epoch.

The harness times each epoch with a host clock read after Backend.sync (torch.cuda.synchronize). Had sync
returned before the GPU finished, that figure would come out shorter than the GPU's own account of the
epoch: two CUDA events recorded on the stream around the epoch's work. The events add two records to one
epoch and nothing else; they are read after training, in details(). Only on cuda: the CPU path is untouched.

The record then holds both: details["cuda_event_epoch_s"] and epoch_s[details["cuda_event_epoch"] - 1].
With an honest sync the event time is at most the wall-clock time (less when the GPU waits for Python).
"""

from __future__ import annotations

from typing import Any

STEADY_EPOCH = 2  # the first epoch after the one that compiles, captures and warms up


class SteadyEpochEvents:
    """Counts train_epoch calls; on the STEADY_EPOCH-th, when it is a whole epoch, records a CUDA event pair."""

    def __init__(self, device: Any):
        self.device = device  # a cuda torch.device
        self.calls = 0
        self.first_steps: int | None = None
        self.pair: tuple[Any, Any] | None = None
        self.note: str | None = None

    def begin(self, steps: int) -> Any | None:
        """Called as train_epoch starts: the end event to record once the epoch's work is queued, or None."""
        self.calls += 1
        if self.calls == 1:
            self.first_steps = steps
        if self.calls != STEADY_EPOCH:
            return None
        if steps != self.first_steps:  # one epoch in all: this call is the harness's single-step latency phase
            self.note = f"not timed: call {STEADY_EPOCH} ran {steps} steps, the first epoch {self.first_steps}"
            return None
        import torch

        stream = torch.cuda.current_stream(self.device)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record(stream)
        self.pair = (start, end)
        return end

    def finish(self, end: Any) -> None:
        import torch

        end.record(torch.cuda.current_stream(self.device))

    def facts(self) -> dict[str, Any]:
        """What details() records: the epoch and its CUDA-event seconds, or why there are none."""
        if self.pair is None:
            return {"cuda_event_epoch": None, "cuda_event_epoch_s": None,
                    "cuda_event_note": self.note or f"not timed: fewer than {STEADY_EPOCH} epochs ran"}
        start, end = self.pair
        end.synchronize()
        return {"cuda_event_epoch": STEADY_EPOCH, "cuda_event_epoch_s": start.elapsed_time(end) / 1e3,
                "cuda_event_note": ("torch.cuda.Event pair on the current stream around the epoch's work; "
                                    f"the harness's synced wall clock for it is epoch_s[{STEADY_EPOCH - 1}]")}
