"""The optimizer update rules of harness.api.Hyperparams, in float64 NumPy: what backends are checked against."""

from __future__ import annotations

import numpy as np

from harness.api import Hyperparams


class ReferenceOptimizer:
    """Applies one rule to a dict of named float64 parameters, step by step."""

    def __init__(self, hp: Hyperparams, params: dict[str, np.ndarray]):
        self.hp = hp
        self.t = 0
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}
        self.acc = {k: np.full_like(v, hp.initial_accumulator) for k, v in params.items()}

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        hp = self.hp
        self.t += 1
        new = {}
        for k, w in params.items():
            g = grads[k] + hp.weight_decay * w + hp.l1 * np.sign(w)  # coupled L2; L1's subgradient, 0 at 0
            if hp.optimizer == "sgd":
                w = w - hp.lr * g
            elif hp.optimizer == "momentum":
                self.v[k] = hp.momentum * self.v[k] + g
                w = w - hp.lr * self.v[k]
            elif hp.optimizer == "adam":
                self.m[k] = hp.beta1 * self.m[k] + (1 - hp.beta1) * g
                self.v[k] = hp.beta2 * self.v[k] + (1 - hp.beta2) * g * g
                m_hat = self.m[k] / (1 - hp.beta1 ** self.t)
                v_hat = self.v[k] / (1 - hp.beta2 ** self.t)
                w = w - hp.lr * m_hat / (np.sqrt(v_hat) + hp.eps)
            elif hp.optimizer == "rmsprop":
                self.v[k] = hp.rho * self.v[k] + (1 - hp.rho) * g * g
                w = w - hp.lr * g / (np.sqrt(self.v[k]) + hp.eps)
            elif hp.optimizer == "adagrad":
                self.acc[k] = self.acc[k] + g * g
                w = w - hp.lr * g / (np.sqrt(self.acc[k]) + hp.eps)
            else:
                raise ValueError(f"unknown optimizer {hp.optimizer!r}")
            new[k] = w
        return new


def linear_mse_grads(params: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """Gradients of mean((x @ kernel + bias - y)^2) for a single Dense layer."""
    diff = x @ params["kernel"] + params["bias"] - y
    d = 2.0 * diff / diff.size
    return {"kernel": x.T @ d, "bias": d.sum(axis=0)}
