"""Losses and metrics computed by the harness from a backend's predictions, identically for all."""

from __future__ import annotations

import numpy as np


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean cross-entropy of integer labels under softmax(logits), in float64."""
    z = logits.astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    log_probs = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-log_probs[np.arange(len(labels)), labels].mean())


def mean_squared_error(pred: np.ndarray, target: np.ndarray) -> float:
    diff = pred.astype(np.float64).reshape(target.shape) - target
    return float(np.mean(diff * diff))


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(logits, axis=1) == labels))


def loss_value(loss: str, outputs: np.ndarray, targets: np.ndarray) -> float:
    if loss == "cross_entropy":
        return softmax_cross_entropy(outputs, targets)
    if loss == "mse":
        return mean_squared_error(outputs, targets)
    raise ValueError(f"unknown loss {loss!r}")


def score(loss: str, metric: str, outputs: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """{"loss": ..., metric: ...} for one split's outputs."""
    values = {"loss": loss_value(loss, outputs, targets)}
    if metric == "accuracy":
        values["accuracy"] = accuracy(outputs, targets)
    elif metric == "mse":
        values["mse"] = mean_squared_error(outputs, targets)
    else:
        raise ValueError(f"unknown metric {metric!r}")
    return values


def penalty(weights: list[dict[str, np.ndarray]], l1: float, weight_decay: float) -> float:
    """l1 * ||w||_1 + (weight_decay / 2) * ||w||^2 over every parameter, in float64: what the Hyperparams
    penalties add to the objective (their gradients are l1 * sign(w) and weight_decay * w)."""
    if not l1 and not weight_decay:
        return 0.0
    arrays = [np.asarray(value, np.float64) for params in weights for value in params.values()]
    l1_norm = sum(float(np.abs(a).sum()) for a in arrays)
    squares = sum(float(np.square(a).sum()) for a in arrays)
    return l1 * l1_norm + 0.5 * weight_decay * squares
