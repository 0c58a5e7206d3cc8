"""torch.optim optimizers configured to the update rules of harness.api.Hyperparams.

Each one is used only in the configuration that computes exactly the spec'd rule (checked
against a NumPy implementation in tests/test_backend_torch.py), with every hyperparameter
passed explicitly so that no torch default leaks in:
  sgd / momentum: SGD with dampening 0, no Nesterov (the first momentum step, buf = g,
                  equals v = momentum * 0 + g);
  adam:           Adam without amsgrad and with coupled weight decay (not AdamW);
  rmsprop:        RMSprop with alpha = rho, not centered, no momentum;
  adagrad:        Adagrad with lr_decay 0 and the accumulator starting at initial_accumulator.
torch.optim has coupled L2 (`weight_decay`) but no L1: `add_l1` adds l1 * sign(w) (torch.sign(0) = 0)
to every gradient before the optimizer's step, so the rule sees it as it sees the L2 term.
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


def add_l1(optimizer: torch.optim.Optimizer, l1: float) -> None:
    """g += l1 * sign(w) for every parameter with a gradient, in place, before `optimizer.step()`."""
    if not l1:
        return
    with torch.no_grad():
        for group in optimizer.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.grad.add_(torch.sign(p), alpha=l1)


def penalty(params: Iterable[torch.Tensor], hp: Hyperparams) -> float:
    """l1 * ||w||_1 + (weight_decay / 2) * ||w||^2 over `params`, in their own precision (the objective's part
    that `Backend.loss` adds to the data loss)."""
    total = 0.0
    with torch.no_grad():
        for p in params:
            if hp.l1:
                total += hp.l1 * float(p.abs().sum())
            if hp.weight_decay:
                total += 0.5 * hp.weight_decay * float(p.square().sum())
    return total


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


class FunctionalOptimizer:
    """The same update rules as plain in-place tensor ops, for a step that torch.compile traces whole.

    torch.optim's step sits behind the autograd engine's backward, so dynamo compiles it as a
    graph of its own; written out here, forward, backward and update are one graph, which
    inductor fuses (the MLP's steady epoch on the 2-core CPU: 0.47 s against 0.78 s).
    The step count lives in a device tensor, so the step also replays in a CUDA graph.
    """

    def __init__(self, params: list[torch.Tensor], hp: Hyperparams):
        self.hp = hp
        self.t = torch.zeros((), dtype=torch.float32, device=params[0].device)
        moments = {"momentum": 1, "adam": 2, "rmsprop": 1, "adagrad": 1}.get(hp.optimizer, 0)
        if hp.optimizer not in ("sgd", "momentum", "adam", "rmsprop", "adagrad"):
            raise ValueError(f"unknown optimizer {hp.optimizer!r}")
        self.state = [[torch.zeros_like(p) for p in params] for _ in range(moments)]
        self.reset()

    def reset(self) -> None:
        """Back to the state before the first step, in place (a captured graph keeps the same tensors)."""
        self.t.zero_()
        for slot in self.state:
            for value in slot:
                value.fill_(self.hp.initial_accumulator if self.hp.optimizer == "adagrad" else 0.0)

    def step(self, params: list[torch.Tensor], grads: list[torch.Tensor], state: list[list[torch.Tensor]],
             t: torch.Tensor) -> None:
        """One update of every parameter, in place; `state` and `t` are this optimizer's, passed in so
        that a compiled caller sees them as graph inputs."""
        hp = self.hp
        t.add_(1)
        for i, (w, g) in enumerate(zip(params, grads)):
            if hp.weight_decay:
                g = g + hp.weight_decay * w
            if hp.l1:
                g = g + hp.l1 * torch.sign(w)
            if hp.optimizer == "sgd":
                w.sub_(hp.lr * g)
            elif hp.optimizer == "momentum":
                v = state[0][i]
                v.mul_(hp.momentum).add_(g)
                w.sub_(hp.lr * v)
            elif hp.optimizer == "adam":
                m, v = state[0][i], state[1][i]
                m.mul_(hp.beta1).add_(g, alpha=1 - hp.beta1)
                v.mul_(hp.beta2).addcmul_(g, g, value=1 - hp.beta2)
                m_hat = m / (1 - hp.beta1 ** t)
                v_hat = v / (1 - hp.beta2 ** t)
                w.sub_(hp.lr * m_hat / (v_hat.sqrt() + hp.eps))
            elif hp.optimizer == "rmsprop":
                s = state[0][i]
                s.mul_(hp.rho).addcmul_(g, g, value=1 - hp.rho)
                w.sub_(hp.lr * g / (s.sqrt() + hp.eps))
            else:  # adagrad
                a = state[0][i]
                a.addcmul_(g, g)
                w.sub_(hp.lr * g / (a.sqrt() + hp.eps))

    def describe(self) -> str:
        hp = self.hp
        names = {"sgd": ("lr",), "momentum": ("lr", "momentum"), "adam": ("lr", "beta1", "beta2", "eps"),
                 "rmsprop": ("lr", "rho", "eps"), "adagrad": ("lr", "initial_accumulator", "eps")}[hp.optimizer]
        args = ", ".join(f"{n}={getattr(hp, n):g}" for n in (*names, "weight_decay", "l1"))
        return f"{hp.optimizer} written in tensor ops, traced into the step ({args})"
