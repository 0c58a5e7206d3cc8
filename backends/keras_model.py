"""A ModelSpec as the seeds write it: a keras.Sequential of Keras's own layers, loss and metric objects.

Keras's parameter layouts are the harness's canonical ones (harness/model.py took them from Keras:
Dense (in, out), Conv2D HWIO on channels-last images, LSTM gates i, f, c, o with one bias), on every
engine, so loading the task's weights is only a matter of order: per layer, kernel, (recurrent
kernel,) bias, the order of `Model.get_weights()`. Imported only inside a worker, after Keras.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from harness.api import Weights
from harness.model import LSTM, Conv2D, Dense, Flatten, MaxPool2D, ModelSpec, ReLU

# The order of each parameterised layer's arrays in Keras's get_weights/set_weights.
KERAS_ORDER = {Dense: ("kernel", "bias"), Conv2D: ("kernel", "bias"), LSTM: ("kernel", "recurrent_kernel", "bias")}


class ZeroAtZeroL1L2(keras.regularizers.L1L2):
    """keras.regularizers.L1L2 whose L1 term has the gradient l1 * sign(w), 0 at 0, on every engine: the same
    value, l1 * sum(w * sign(w)) = l1 * sum(|w|), with sign(w) held constant. Keras's own takes the gradient
    of ops.absolute, which is 1 at 0 on JAX (jnp.abs), so a weight at exactly 0 (every bias, at the start)
    would get l1 where bench's rule has 0."""

    def __call__(self, x):
        total = ops.convert_to_tensor(0.0, dtype=x.dtype)
        if self.l1 != 0.0:
            total += ops.cast(self.l1, x.dtype) * ops.sum(ops.multiply(x, ops.stop_gradient(ops.sign(x))))
        if self.l2 != 0.0:
            total += ops.cast(self.l2, x.dtype) * ops.sum(ops.square(x))
        return total


def regularizer(weight_decay: float, l1: float) -> keras.regularizers.Regularizer | None:
    """The cell's penalties as one Keras regularizer for every parameter, or None. Coupled L2 (the harness's
    weight_decay, added to every parameter's gradient) is Keras's L2 with coefficient weight_decay / 2:
    d/dw (wd/2 * sum w^2) = wd * w; L1 is Keras's L1 with coefficient l1, whose gradient l1 * sign(w) is 0 at
    0 on TensorFlow and torch, and ZeroAtZeroL1L2 on JAX, where it would not be."""
    if not weight_decay and not l1:
        return None
    kind = ZeroAtZeroL1L2 if l1 and keras.backend.backend() == "jax" else keras.regularizers.L1L2
    return kind(l1=l1, l2=weight_decay / 2)


def build_model(spec: ModelSpec, weight_decay: float, l1: float = 0.0) -> keras.Sequential:
    """The network as keras.Sequential. A ReLU right after a Dense or Conv2D becomes that layer's
    `activation="relu"` (the seeds' way); any other ReLU is a keras.layers.ReLU. The penalties are one
    regularizer on every parameter (`regularizer`)."""
    reg = regularizer(weight_decay, l1)
    layers: list = [keras.Input(shape=spec.input_shape)]
    kinds = spec.layers
    for i, layer in enumerate(kinds):
        if isinstance(layer, ReLU):
            if i and isinstance(kinds[i - 1], (Dense, Conv2D)):
                continue  # folded into the layer before
            layers.append(keras.layers.ReLU())
            continue
        relu = "relu" if i + 1 < len(kinds) and isinstance(kinds[i + 1], ReLU) else None
        if isinstance(layer, Dense):
            layers.append(keras.layers.Dense(layer.units, activation=relu, use_bias=True,
                                             kernel_regularizer=reg, bias_regularizer=reg))
        elif isinstance(layer, Conv2D):
            layers.append(keras.layers.Conv2D(layer.filters, layer.kernel_size, strides=1, padding="valid",
                                              data_format="channels_last", activation=relu, use_bias=True,
                                              kernel_regularizer=reg, bias_regularizer=reg))
        elif isinstance(layer, MaxPool2D):
            layers.append(keras.layers.MaxPooling2D(layer.pool_size, strides=layer.pool_size, padding="valid",
                                                    data_format="channels_last"))
        elif isinstance(layer, Flatten):
            layers.append(keras.layers.Flatten(data_format="channels_last"))
        elif isinstance(layer, LSTM):
            layers.append(keras.layers.LSTM(layer.units, return_sequences=layer.return_sequences,
                                            activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                                            kernel_regularizer=reg, recurrent_regularizer=reg,
                                            bias_regularizer=reg))
        else:
            raise TypeError(f"unknown layer kind {type(layer).__name__}")
    return keras.Sequential(layers)


def to_keras(spec: ModelSpec, weights: Weights) -> list[np.ndarray]:
    """The canonical weights as the flat list `Model.set_weights` takes."""
    return [np.asarray(params[key], np.float32)
            for layer, params in zip(spec.layers, weights) for key in KERAS_ORDER.get(type(layer), ())]


def from_keras(spec: ModelSpec, arrays: list[np.ndarray]) -> Weights:
    """`Model.get_weights()` back in the canonical per-layer dicts (copies)."""
    flat = iter(arrays)
    return [{key: np.array(next(flat), np.float32) for key in KERAS_ORDER.get(type(layer), ())}
            for layer in spec.layers]


def loss_object(kind: str) -> keras.losses.Loss:
    """Mean softmax cross-entropy from logits and integer labels, or mean squared error."""
    if kind == "cross_entropy":
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="sum_over_batch_size")
    if kind == "mse":
        return keras.losses.MeanSquaredError(reduction="sum_over_batch_size")
    raise ValueError(f"unknown loss {kind!r}")


def metric_object(kind: str) -> keras.metrics.Metric:
    """The task's headline metric, tracked by fit as a Keras user would ask for it."""
    if kind == "accuracy":
        return keras.metrics.SparseCategoricalAccuracy(name="accuracy")
    if kind == "mse":
        return keras.metrics.MeanSquaredError(name="mse")
    raise ValueError(f"unknown metric {kind!r}")
