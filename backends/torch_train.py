"""One optimizer step of a torch network, three ways: eager, torch.compile'd, and CUDA-graph replayed.

Every step function takes a device tensor of training-set indices (one row of the
harness's order) and returns nothing: no host round-trip, no `.item()`, so a GPU can
run ahead of Python for a whole epoch.
"""

from __future__ import annotations

import contextlib
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from harness.api import Hyperparams
from backends.torch_optim import reset_state

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


def eager_step(loss_at: LossFn, optimizer: torch.optim.Optimizer) -> Step:
    """The loop a user writes first."""

    def step(idx: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_at(idx).backward()
        optimizer.step()

    return step


def compiled_step(loss_at: LossFn, optimizer: torch.optim.Optimizer) -> Step:
    """Forward + loss compiled by inductor (AOTAutograd compiles the backward with it) and the
    optimizer update compiled separately: torch's documented way to compile a whole step."""
    compiled_loss = torch.compile(loss_at, dynamic=False)

    @torch.compile(dynamic=False)
    def update() -> None:
        optimizer.step()

    def step(idx: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        compiled_loss(idx).backward()
        update()

    return step


def graphed_step(step: Step, optimizer: torch.optim.Optimizer, params: list[torch.Tensor], hp: Hyperparams,
                 batch_size: int, device: torch.device, warmup: int = 3) -> Step:
    """Capture `step` (gather, forward, backward, optimizer update) in one CUDA graph and replay it.

    Warm-up steps (needed to compile, autotune and create the optimizer state before capture)
    change the weights, so the weights and optimizer state are put back afterwards, in place.
    """
    static_idx = torch.zeros(batch_size, dtype=torch.int64, device=device)
    saved = [p.detach().clone() for p in params]
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(warmup):
            step(static_idx)
    torch.cuda.current_stream(device).wait_stream(side)
    with torch.no_grad():
        for p, value in zip(params, saved):
            p.copy_(value)
    reset_state(optimizer, hp)
    optimizer.zero_grad(set_to_none=True)  # grads are then allocated from the graph's private pool
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step(static_idx)

    def replay(idx: torch.Tensor) -> None:
        static_idx.copy_(idx)
        graph.replay()

    return replay
