"""A float64 NumPy forward pass of any ModelSpec: the ground truth backends are checked against."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from harness.model import LSTM, Conv2D, Dense, Flatten, MaxPool2D, ModelSpec, ReLU

if TYPE_CHECKING:
    from harness.api import Weights


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def conv2d_valid(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """x (N, H, W, C) with an HWIO kernel, stride 1, no padding."""
    kh, kw = kernel.shape[:2]
    windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(1, 2))  # N, H', W', C, kh, kw
    return np.einsum("nhwcij,ijco->nhwo", windows, kernel, optimize=True) + bias


def max_pool(x: np.ndarray, p: int) -> np.ndarray:
    n, h, w, c = x.shape
    h2, w2 = h // p, w // p
    return x[:, : h2 * p, : w2 * p].reshape(n, h2, p, w2, p, c).max(axis=(2, 4))


def lstm(x: np.ndarray, params: dict[str, np.ndarray], return_sequences: bool) -> np.ndarray:
    """x (N, T, F); gates ordered input, forget, cell candidate, output."""
    n, steps, _ = x.shape
    units = params["recurrent_kernel"].shape[0]
    h = np.zeros((n, units))
    c = np.zeros((n, units))
    outputs = []
    for t in range(steps):
        z = x[:, t] @ params["kernel"] + h @ params["recurrent_kernel"] + params["bias"]
        i, f, g, o = np.split(z, 4, axis=1)
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        h = _sigmoid(o) * np.tanh(c)
        outputs.append(h)
    return np.stack(outputs, axis=1) if return_sequences else h


def forward(spec: ModelSpec, weights: Weights, x: np.ndarray) -> np.ndarray:
    """Outputs of the network for inputs x (batch first), computed in float64."""
    out = x.astype(np.float64)
    for layer, params in zip(spec.layers, weights):
        p = {k: v.astype(np.float64) for k, v in params.items()}
        if isinstance(layer, Dense):
            out = out @ p["kernel"] + p["bias"]
        elif isinstance(layer, Conv2D):
            out = conv2d_valid(out, p["kernel"], p["bias"])
        elif isinstance(layer, MaxPool2D):
            out = max_pool(out, layer.pool_size)
        elif isinstance(layer, Flatten):
            out = out.reshape(len(out), -1)
        elif isinstance(layer, ReLU):
            out = np.maximum(out, 0.0)
        elif isinstance(layer, LSTM):
            out = lstm(out, p, layer.return_sequences)
        else:
            raise TypeError(f"unknown layer kind {type(layer).__name__}")
    return out
