"""Initial weights drawn with NumPy, so every backend starts from the very same numbers."""

from __future__ import annotations

import numpy as np

from harness.api import Weights
from harness.model import LSTM, Conv2D, Dense, ModelSpec, output_shapes


def glorot_uniform(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int, fan_out: int) -> np.ndarray:
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(np.float32)


def orthogonal(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    a = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q = q * np.sign(np.diag(r))
    return (q if rows >= cols else q.T).astype(np.float32)


def init_weights(spec: ModelSpec, seed: int) -> Weights:
    """Keras' defaults: Glorot-uniform kernels, orthogonal recurrent kernels, zero biases,
    LSTM forget-gate bias 1."""
    rng = np.random.default_rng(seed)
    weights: Weights = []
    in_shape = spec.input_shape
    for layer, out_shape in zip(spec.layers, output_shapes(spec)):
        if isinstance(layer, Dense):
            fan_in = in_shape[-1]
            weights.append({
                "kernel": glorot_uniform(rng, (fan_in, layer.units), fan_in, layer.units),
                "bias": np.zeros(layer.units, np.float32),
            })
        elif isinstance(layer, Conv2D):
            k, cin, cout = layer.kernel_size, in_shape[-1], layer.filters
            weights.append({
                "kernel": glorot_uniform(rng, (k, k, cin, cout), k * k * cin, k * k * cout),
                "bias": np.zeros(cout, np.float32),
            })
        elif isinstance(layer, LSTM):
            u, features = layer.units, in_shape[-1]
            bias = np.zeros(4 * u, np.float32)
            bias[u: 2 * u] = 1.0
            weights.append({
                "kernel": glorot_uniform(rng, (features, 4 * u), features, 4 * u),
                "recurrent_kernel": orthogonal(rng, u, 4 * u),
                "bias": bias,
            })
        else:
            weights.append({})
        in_shape = out_shape
    return weights
