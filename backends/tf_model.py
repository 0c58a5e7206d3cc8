"""A ModelSpec as raw TensorFlow ops: one tf.Variable per canonical parameter, a forward pass in tf.nn.

Raw ops rather than Keras layers: the canonical layouts are TensorFlow's own (Dense (in, out),
Conv2D HWIO on NHWC, LSTM gates i, f, g, o), so weights load without any mapping, and eager
steps skip Keras 3's per-layer call overhead. Imported only inside a worker, after TensorFlow.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from harness.api import Weights
from harness.model import LSTM, Conv2D, Dense, Flatten, MaxPool2D, ModelSpec, ReLU


class Net(tf.Module):
    """The network's parameters (fp32 master copies) and its forward pass."""

    def __init__(self, spec: ModelSpec, weights: Weights):
        super().__init__(name="net")
        self.layers = spec.layers
        # Per layer: a list of (name, variable) in the canonical dict order.
        self.params = [
            [(key, tf.Variable(np.asarray(value, np.float32), name=f"l{i}_{key}")) for key, value in p.items()]
            for i, p in enumerate(weights)
        ]
        # One flat, fixed order: gradients, optimizer slots and updates all follow it.
        self.variables_in_order = [v for layer in self.params for _, v in layer]

    def get_weights(self) -> Weights:
        return [{key: np.array(v.numpy()) for key, v in layer} for layer in self.params]  # copies, not views

    def __call__(self, x: tf.Tensor, compute_dtype: tf.DType = tf.float32) -> tf.Tensor:
        """Outputs for a batch; with compute_dtype bf16 the weights are cast per call (mixed precision)."""
        out = tf.cast(x, compute_dtype)
        for layer, params in zip(self.layers, self.params):
            p = {key: tf.cast(v, compute_dtype) if compute_dtype != tf.float32 else v for key, v in params}
            if isinstance(layer, Dense):
                out = dense(out, p["kernel"], p["bias"])
            elif isinstance(layer, Conv2D):
                out = tf.nn.bias_add(tf.nn.conv2d(out, p["kernel"], strides=1, padding="VALID"), p["bias"])
            elif isinstance(layer, MaxPool2D):
                out = tf.nn.max_pool2d(out, layer.pool_size, layer.pool_size, padding="VALID")
            elif isinstance(layer, Flatten):
                out = tf.reshape(out, [tf.shape(out)[0], -1])  # NHWC, so rows come out in (H, W, C) order
            elif isinstance(layer, ReLU):
                out = tf.nn.relu(out)
            elif isinstance(layer, LSTM):
                out = lstm(out, p["kernel"], p["recurrent_kernel"], p["bias"], layer.return_sequences)
            else:
                raise TypeError(f"unknown layer kind {type(layer).__name__}")
        return tf.cast(out, tf.float32)


def dense(x: tf.Tensor, kernel: tf.Tensor, bias: tf.Tensor) -> tf.Tensor:
    if x.shape.rank == 2:
        return tf.nn.bias_add(tf.matmul(x, kernel), bias)
    return tf.tensordot(x, kernel, axes=1) + bias


def lstm(x: tf.Tensor, kernel: tf.Tensor, recurrent: tf.Tensor, bias: tf.Tensor,
         return_sequences: bool) -> tf.Tensor:
    """x (N, T, F), zero initial state. The input projection of all steps is one matmul (as cuDNN
    and torch do); the T recurrent steps are unrolled, T being static (28 for MNIST rows)."""
    steps, features = x.shape[1], x.shape[2]
    units = recurrent.shape[0]
    xz = tf.reshape(tf.matmul(tf.reshape(x, [-1, features]), kernel) + bias, [-1, steps, 4 * units])
    h = c = tf.zeros([tf.shape(x)[0], units], x.dtype)
    outputs = []
    for z_x in tf.unstack(xz, axis=1):
        z = z_x + tf.matmul(h, recurrent)
        i, f, g, o = tf.split(z, 4, axis=1)
        c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
        h = tf.sigmoid(o) * tf.tanh(c)
        outputs.append(h)
    return tf.stack(outputs, axis=1) if return_sequences else h


def loss_fn(kind: str, outputs: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
    """Mean softmax cross-entropy from logits and int labels, or mean squared error."""
    if kind == "cross_entropy":
        return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=outputs))
    if kind == "mse":
        return tf.reduce_mean(tf.square(outputs - targets))
    raise ValueError(f"unknown loss {kind!r}")
