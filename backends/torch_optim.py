"""torch.optim optimizers configured to the update rules of harness.api.Hyperparams.

Each one is used only in the configuration that computes exactly the spec'd rule (checked
against a NumPy implementation in tests/test_backend_torch.py), with every hyperparameter
passed explicitly so that no torch default leaks in:
  sgd / momentum: SGD with dampening 0, no Nesterov (the first momentum step, buf = g,
                  equals v = momentum * 0 + g);
  adam:           Adam without amsgrad and with coupled weight decay (not AdamW);
  rmsprop:        RMSprop with alpha = rho, not centered, no momentum;
  adagrad:        Adagrad with lr_decay 0 and the accumulator starting at initial_accumulator.
"""

from __future__ import annotations

from typing import Any, Iterable

import torch

from harness.api import Hyperparams


def optimizer_settings(hp: Hyperparams) -> tuple[type[torch.optim.Optimizer], dict[str, Any]]:
    """The torch optimizer class and its full keyword arguments for `hp`."""
    common = {"lr": hp.lr, "weight_decay": hp.weight_decay, "maximize": False, "differentiable": False}
    if hp.optimizer in ("sgd", "momentum"):
        momentum = hp.momentum if hp.optimizer == "momentum" else 0.0
        return torch.optim.SGD, {**common, "momentum": momentum, "dampening": 0.0, "nesterov": False}
    if hp.optimizer == "adam":
        return torch.optim.Adam, {**common, "betas": (hp.beta1, hp.beta2), "eps": hp.eps, "amsgrad": False,
                                  "decoupled_weight_decay": False}
    if hp.optimizer == "rmsprop":
        return torch.optim.RMSprop, {**common, "alpha": hp.rho, "eps": hp.eps, "momentum": 0.0, "centered": False}
    if hp.optimizer == "adagrad":
        return torch.optim.Adagrad, {**common, "lr_decay": 0.0, "eps": hp.eps,
                                     "initial_accumulator_value": hp.initial_accumulator}
    raise ValueError(f"unknown optimizer {hp.optimizer!r}")


def make_optimizer(params: Iterable[torch.Tensor], hp: Hyperparams, capturable: bool = False) -> torch.optim.Optimizer:
    """The optimizer for `hp`; `capturable` keeps Adam's and RMSprop's step counts on the device
    so that a CUDA graph can replay the step (SGD and Adagrad need nothing: with lr_decay 0,
    Adagrad's only host-side value is the constant lr)."""
    cls, kwargs = optimizer_settings(hp)
    if capturable and cls in (torch.optim.Adam, torch.optim.RMSprop):
        kwargs = {**kwargs, "capturable": True}
    return cls(list(params), **kwargs)


def reset_state(optimizer: torch.optim.Optimizer, hp: Hyperparams) -> None:
    """Put every state tensor back to its value before the first step, in place (the tensors
    a CUDA graph captured stay the same objects). A zero momentum buffer behaves exactly
    like torch's lazily created one, since momentum * 0 + g = g."""
    for state in optimizer.state.values():
        for key, value in state.items():
            if not isinstance(value, torch.Tensor):
                continue
            if key == "sum":  # Adagrad's accumulator
                value.fill_(hp.initial_accumulator)
            else:  # step counts, moments, square averages, momentum buffers
                value.zero_()
