"""The five optimizers, exactly as harness.api.Hyperparams specifies them, updating in place.

Every hyperparameter comes from the cell; the penalties are added to the gradient of every
parameter before the rule is applied: weight decay as coupled L2 (weight_decay * w), L1 as its
subgradient l1 * sign(w), which np.sign makes 0 at 0 as the spec says.
"""

from __future__ import annotations

import math

import numpy as np

from harness.api import Hyperparams


class Optimizer:
    def __init__(self, hp: Hyperparams, params: list[dict[str, np.ndarray]]):
        self.hp = hp
        self.t = 0
        self.slots: list[dict[str, dict[str, np.ndarray]]] = [
            {name: self._slots(w) for name, w in p.items()} for p in params
        ]

    def _slots(self, w: np.ndarray) -> dict[str, np.ndarray]:
        kind = self.hp.optimizer
        if kind == "momentum":
            return {"v": np.zeros_like(w)}
        if kind == "adam":
            return {"m": np.zeros_like(w), "v": np.zeros_like(w)}
        if kind == "rmsprop":
            return {"s": np.zeros_like(w)}
        if kind == "adagrad":
            return {"a": np.full_like(w, self.hp.initial_accumulator)}
        if kind == "sgd":
            return {}
        raise ValueError(f"unknown optimizer {kind!r}")

    def step(self, params: list[dict[str, np.ndarray]], grads: list[dict[str, np.ndarray]]) -> None:
        """One update of every parameter; `grads` are consumed (modified in place)."""
        hp = self.hp
        self.t += 1
        for p, g, slots in zip(params, grads, self.slots):
            for name, w in p.items():
                self._update(hp, w, g[name], slots[name])

    def _update(self, hp: Hyperparams, w: np.ndarray, g: np.ndarray, s: dict[str, np.ndarray]) -> None:
        if hp.weight_decay:
            g += hp.weight_decay * w
        if hp.l1:
            g += hp.l1 * np.sign(w)
        kind = hp.optimizer
        if kind == "sgd":
            w -= hp.lr * g
        elif kind == "momentum":
            v = s["v"]
            v *= hp.momentum
            v += g
            w -= hp.lr * v
        elif kind == "adam":
            m, v = s["m"], s["v"]
            m *= hp.beta1
            m += (1 - hp.beta1) * g
            v *= hp.beta2
            v += (1 - hp.beta2) * (g * g)
            c1 = 1 - math.pow(hp.beta1, self.t)
            c2 = 1 - math.pow(hp.beta2, self.t)
            w -= hp.lr * (m / c1) / (np.sqrt(v / c2) + hp.eps)
        elif kind == "rmsprop":
            sq = s["s"]
            sq *= hp.rho
            sq += (1 - hp.rho) * (g * g)
            w -= hp.lr * g / (np.sqrt(sq) + hp.eps)
        elif kind == "adagrad":
            a = s["a"]
            a += g * g
            w -= hp.lr * g / (np.sqrt(a) + hp.eps)


def penalty(hp: Hyperparams, params: list[dict[str, np.ndarray]]) -> float:
    """What the penalties add to the objective: l1 * ||w||_1 + (weight_decay / 2) * ||w||^2 over every parameter."""
    arrays = [w for p in params for w in p.values()]
    total = 0.0
    if hp.l1:
        total += hp.l1 * sum(float(np.abs(w).sum()) for w in arrays)
    if hp.weight_decay:
        total += 0.5 * hp.weight_decay * sum(float(np.square(w).sum()) for w in arrays)
    return total
