"""One optimizer step of a torch network: eager, torch.compile'd (whole, or in two graphs), CUDA-graph replayed.

Every step function takes a device tensor of training-set indices (one row of the
harness's order) and returns nothing: no host round-trip, no `.item()`, so a GPU can
run ahead of Python for a whole epoch.
"""

from __future__ import annotations

import contextlib
import time
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from backends.torch_optim import FunctionalOptimizer, add_l1
from harness.store.safe_text import last_line

Step = Callable[[torch.Tensor], None]
LossFn = Callable[[torch.Tensor], torch.Tensor]


def loss_function(kind: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    if kind == "cross_entropy":
        return F.cross_entropy  # mean over the batch, from logits and int64 labels
    if kind == "mse":
        return F.mse_loss  # mean over all elements; outputs and targets are (n, 1)
    raise ValueError(f"unknown loss {kind!r}")


def batch_loss(net: nn.Module, loss_kind: str, x: torch.Tensor, y: torch.Tensor,
               autocast: Callable[[], contextlib.AbstractContextManager]) -> LossFn:
    """The training loss of the batch at `idx`, gathered from the device-resident data."""
    criterion = loss_function(loss_kind)

    def loss_at(idx: torch.Tensor) -> torch.Tensor:
        with autocast():
            return criterion(net(x[idx]), y[idx])

    return loss_at


def eager_step(loss_at: LossFn, optimizer: torch.optim.Optimizer, l1: float = 0.0) -> Step:
    """The loop a user writes first (with L1 added to the gradients, which torch.optim has no option for)."""

    def step(idx: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_at(idx).backward()
        add_l1(optimizer, l1)
        optimizer.step()

    return step


def compiled_step(loss_at: LossFn, optimizer: torch.optim.Optimizer, l1: float = 0.0) -> Step:
    """Forward + loss compiled by inductor (AOTAutograd compiles the backward with it) and the
    optimizer update (L1's gradient term included) compiled separately: torch's documented way to
    compile a whole step."""
    compiled_loss = torch.compile(loss_at, dynamic=False)

    @torch.compile(dynamic=False)
    def update() -> None:
        add_l1(optimizer, l1)
        optimizer.step()

    def step(idx: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        compiled_loss(idx).backward()
        update()

    return step


def whole_step(net: nn.Module, loss_kind: str, x: torch.Tensor, y: torch.Tensor,
               autocast: Callable[[], contextlib.AbstractContextManager], optimizer: FunctionalOptimizer) -> Step:
    """Forward, backward (torch.func.grad) and update traced by torch.compile into one graph.

    The network's own parameter tensors are updated in place, so predict, loss and
    get_weights read the trained values without any copy."""
    criterion = loss_function(loss_kind)
    named = dict(net.named_parameters())
    trainable = {n: p.detach() for n, p in named.items() if p.requires_grad}
    frozen = {n: p.detach() for n, p in named.items() if not p.requires_grad}

    def loss_of(params: dict[str, torch.Tensor], idx: torch.Tensor) -> torch.Tensor:
        with autocast():
            return criterion(torch.func.functional_call(net, {**params, **frozen}, (x[idx],)), y[idx])

    @torch.compile(dynamic=False)
    def update(params: dict[str, torch.Tensor], state: list[list[torch.Tensor]], t: torch.Tensor,
               idx: torch.Tensor) -> None:
        grads = torch.func.grad(loss_of)(params, idx)
        with torch.no_grad():
            optimizer.step(list(params.values()), [grads[n] for n in params], state, t)

    def step(idx: torch.Tensor) -> None:
        update(trainable, optimizer.state, optimizer.t, idx)

    return step


def prepare_cpu_toolchain() -> float:
    """Have inductor set up its C++ toolchain now; return the seconds it took.

    Inductor detects the CPU's vector ISA and builds a 150 MB precompiled header, which a user
    pays once per machine, not per model (~28 s on the 2-core CPU with cold caches; the runner
    keeps the header for a whole run, and the torch backend takes the ISA from the CPU's flags).
    Done here, at setup, with a trivial kernel compiled through the same path, the first epoch's
    excess measures compiling this model."""
    start = time.perf_counter()
    torch.compile(lambda t: t + 1, dynamic=False)(torch.zeros(8))
    return time.perf_counter() - start


def cpu_vec_isa() -> str | None:
    """The vector ISA inductor compiles CPU kernels for (None where this torch doesn't say)."""
    try:
        from torch._inductor import cpu_vec_isa as isa
    except ImportError:
        return None
    return str(isa.pick_vec_isa()) or None


def graphed_step(step: Step, reset: Callable[[], None], params: list[torch.Tensor], batch_size: int,
                 device: torch.device, facts: dict, warmup: int = 3) -> Step:
    """`step` captured (gather, forward, backward, optimizer update) in one CUDA graph and replayed.

    The capture happens on the first call, inside the first timed epoch, so that its compilation
    counts as compile time as every other backend's does, not as setup; `facts["cuda_graph_capture_s"]`
    says how long the capture itself took (the warm-up steps compile through torch.compile, whose
    own clock counts that). Warm-up steps (needed to
    compile, autotune and create the optimizer state before capture) change the weights, so the
    weights and, through `reset`, the optimizer state are put back afterwards, in place. If capture
    fails, the step runs uncaptured from the same starting point, and `facts` says why.
    """
    replay: Step | None = None

    def first_captures(idx: torch.Tensor) -> None:
        nonlocal replay
        if replay is None:
            saved = [p.detach().clone() for p in params]
            try:
                replay = _capture(step, reset, params, saved, batch_size, device, warmup, facts)
                facts["cuda_graph"] = "whole step captured (gather, forward, backward, capturable optimizer)"
            except Exception as exc:  # noqa: BLE001 - run uncaptured, and say why
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                _restore(reset, params, saved)
                replay = step
                facts["cuda_graph"] = f"capture failed, running uncaptured: {last_line(exc)}"
        replay(idx)

    return first_captures


def _restore(reset: Callable[[], None], params: list[torch.Tensor], saved: list[torch.Tensor]) -> None:
    with torch.no_grad():
        for p, value in zip(params, saved):
            p.copy_(value)
    reset()


def _capture(step: Step, reset: Callable[[], None], params: list[torch.Tensor], saved: list[torch.Tensor],
             batch_size: int, device: torch.device, warmup: int, facts: dict) -> Step:
    static_idx = torch.zeros(batch_size, dtype=torch.int64, device=device)
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(warmup):
            step(static_idx)
    torch.cuda.current_stream(device).wait_stream(side)
    _restore(reset, params, saved)
    graph = torch.cuda.CUDAGraph()
    torch.cuda.synchronize(device)  # the clock reads below see the capture alone
    start = time.perf_counter()
    with torch.cuda.graph(graph):
        step(static_idx)
    torch.cuda.synchronize(device)
    facts["cuda_graph_capture_s"] = time.perf_counter() - start

    def replay(idx: torch.Tensor) -> None:
        static_idx.copy_(idx)
        graph.replay()

    return replay
