"""A ModelSpec as a pure JAX function over a params pytree that mirrors the canonical weights.

The params are a list with one dict per layer, the very layouts harness/model.py
documents (Dense (in, out), Conv2D HWIO on NHWC images, LSTM gates i, f, g, o), so
loading and reading weights back is a copy, with no mapping to get wrong.
Imports JAX; only ever imported by jax_backend inside the worker.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from backends.jax_loops import TIME_LOOPS
from harness.model import LSTM, Conv2D, Dense, Flatten, MaxPool2D, ReLU

Params = list[dict[str, Any]]
Apply = Callable[[Params, Any], Any]


def params_from_weights(weights: Sequence[dict[str, np.ndarray]], device: Any) -> Params:
    return [{k: jax.device_put(np.asarray(v, np.float32), device) for k, v in layer.items()} for layer in weights]


def weights_from_params(params: Params) -> list[dict[str, np.ndarray]]:
    return [{k: np.array(v, dtype=np.float32) for k, v in layer.items()} for layer in params]


def conv2d(p: dict[str, Any], x: Any) -> Any:
    out = lax.conv_general_dilated(x, p["kernel"], window_strides=(1, 1), padding="VALID",
                                   dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return out + p["bias"]


def max_pool(x: Any, size: int) -> Any:
    """Non-overlapping max-pool; rows and columns that don't fill a window are dropped ("VALID").

    A reshape and a max rather than lax.reduce_window: the same values, but on CPU
    reduce_window's gradient (a variadic argmax reduce-window, then a scatter) made
    the CNN's jitted step about 1.3x slower. The two differ only in how a tie shares
    the gradient, and ties here are ReLU zeros, whose gradient is zero either way.
    """
    n, h, w, c = x.shape
    h2, w2 = h // size, w // size
    return x[:, : h2 * size, : w2 * size].reshape(n, h2, size, w2, size, c).max(axis=(2, 4))


def lstm(p: dict[str, Any], x: Any, return_sequences: bool, time_loop: str) -> Any:
    """x (N, T, F) -> (N, T, U) or (N, U); zero initial state.

    The input projection stays inside the time loop: hoisting it out as one big matmul
    (what fused kernels do) measured 8% slower per epoch on a 2-core CPU under lax.scan
    (benchmarks/raw/compare_harness, 20000 samples: 4.41 s against 4.03 s).
    """
    n, steps, features = x.shape
    units = p["recurrent_kernel"].shape[0]
    recurrent = p["recurrent_kernel"]

    def cell(carry, x_t):
        h, c = carry
        i, f, g, o = jnp.split(x_t @ p["kernel"] + h @ recurrent + p["bias"], 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (h, c), h

    zeros = jnp.zeros((n, units), x.dtype)
    if time_loop == "scan":
        (h, _), hs = lax.scan(cell, (zeros, zeros), jnp.swapaxes(x, 0, 1))
        return jnp.swapaxes(hs, 0, 1) if return_sequences else h
    carry, hs = (zeros, zeros), []
    for t in range(steps):
        carry, h = cell(carry, x[:, t])
        hs.append(h)
    return jnp.stack(hs, axis=1) if return_sequences else carry[0]


def make_apply(layers: Sequence[Any], time_loop: str = "scan", compute_dtype: Any = jnp.float32) -> Apply:
    """apply(params, x) -> float32 outputs. With a narrower compute_dtype (bf16), the fp32 master
    params and the inputs are cast for the forward pass; gradients still reach the fp32 params."""
    if time_loop not in TIME_LOOPS:
        raise ValueError(f"unknown time loop {time_loop!r} (choose from: {', '.join(TIME_LOOPS)})")
    layers = tuple(layers)
    cast = jnp.dtype(compute_dtype) != jnp.float32

    def apply(params: Params, x: Any) -> Any:
        if cast:
            params = jax.tree.map(lambda a: a.astype(compute_dtype), params)
            x = x.astype(compute_dtype)
        for layer, p in zip(layers, params):
            if isinstance(layer, Dense):
                x = x @ p["kernel"] + p["bias"]
            elif isinstance(layer, Conv2D):
                x = conv2d(p, x)
            elif isinstance(layer, MaxPool2D):
                x = max_pool(x, layer.pool_size)
            elif isinstance(layer, Flatten):
                x = x.reshape(x.shape[0], -1)  # NHWC row-major: the canonical (H, W, C) order
            elif isinstance(layer, ReLU):
                x = jax.nn.relu(x)
            elif isinstance(layer, LSTM):
                x = lstm(p, x, layer.return_sequences, time_loop)
            else:
                raise TypeError(f"unknown layer kind {type(layer).__name__}")
        return x.astype(jnp.float32) if cast else x

    return apply


def make_loss(apply: Apply, loss: str) -> Callable[[Params, Any, Any], Any]:
    """loss(params, x, y) -> scalar: mean softmax cross-entropy (int labels) or mean squared error."""
    if loss == "cross_entropy":
        def cross_entropy(params, x, y):
            logits = apply(params, x)
            log_probs = jax.nn.log_softmax(logits, axis=-1)
            return -jnp.mean(jnp.sum(jax.nn.one_hot(y, logits.shape[-1], dtype=log_probs.dtype) * log_probs, -1))
        return cross_entropy
    if loss == "mse":
        def mean_squared_error(params, x, y):
            pred = apply(params, x)
            return jnp.mean(jnp.square(pred - y.reshape(pred.shape)))
        return mean_squared_error
    raise ValueError(f"unknown loss {loss!r}")
