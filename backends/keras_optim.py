"""The five update rules of harness.api.Hyperparams as keras.optimizers, every hyperparameter set explicitly.

sgd and momentum are Keras's own SGD: its momentum rule (m = momentum m - lr g; w += m) is the
spec's (v = momentum v + g; w -= lr v) with m = -lr v, the same at a constant learning rate.
Keras's Adam, RMSprop and Adagrad put epsilon elsewhere than the spec (Adam: epsilon-hat, added to
the uncorrected sqrt(v); RMSprop and Adagrad: inside the square root), so those three are Keras's
classes with `update_step` overridden to the spec's rule: the Keras way of writing an optimizer,
run by Keras's own apply loop on every engine. Weight decay is not the optimizers' business here:
Keras's `weight_decay` is decoupled, so coupled L2 is done with regularizers (keras_model.build_model).
Imported only inside a worker, after Keras.
"""

from __future__ import annotations

import keras
from keras import ops

from harness.api import Hyperparams

# Settings every optimizer gets, so no Keras default decides anything: no decoupled decay, no
# clipping, no EMA, no loss scaling, no gradient accumulation.
PLAIN = dict(weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None, use_ema=False,
             loss_scale_factor=None, gradient_accumulation_steps=None)


def _in_dtype_of(variable, learning_rate, gradient) -> tuple:
    return ops.cast(learning_rate, variable.dtype), ops.cast(gradient, variable.dtype)


class SpecAdam(keras.optimizers.Adam):
    """w -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)."""

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        lr, g = _in_dtype_of(variable, learning_rate, gradient)
        t = ops.cast(self.iterations + 1, dtype)
        m = self._momentums[self._get_variable_index(variable)]
        v = self._velocities[self._get_variable_index(variable)]
        self.assign(m, ops.add(ops.multiply(self.beta_1, m), ops.multiply(1 - self.beta_1, g)))
        self.assign(v, ops.add(ops.multiply(self.beta_2, v), ops.multiply(1 - self.beta_2, ops.square(g))))
        m_hat = ops.divide(m, ops.subtract(1.0, ops.power(ops.cast(self.beta_1, dtype), t)))
        v_hat = ops.divide(v, ops.subtract(1.0, ops.power(ops.cast(self.beta_2, dtype), t)))
        self.assign_sub(variable, ops.divide(ops.multiply(lr, m_hat), ops.add(ops.sqrt(v_hat), self.epsilon)))


class SpecRMSprop(keras.optimizers.RMSprop):
    """s = rho s + (1 - rho) g^2;  w -= lr g / (sqrt(s) + eps)."""

    def update_step(self, gradient, variable, learning_rate):
        lr, g = _in_dtype_of(variable, learning_rate, gradient)
        s = self._velocities[self._get_variable_index(variable)]
        self.assign(s, ops.add(ops.multiply(self.rho, s), ops.multiply(1 - self.rho, ops.square(g))))
        self.assign_sub(variable, ops.divide(ops.multiply(lr, g), ops.add(ops.sqrt(s), self.epsilon)))


class SpecAdagrad(keras.optimizers.Adagrad):
    """a += g^2 (a starts at initial_accumulator);  w -= lr g / (sqrt(a) + eps)."""

    def update_step(self, gradient, variable, learning_rate):
        lr, g = _in_dtype_of(variable, learning_rate, gradient)
        a = self._accumulators[self._get_variable_index(variable)]
        self.assign_add(a, ops.square(g))
        self.assign_sub(variable, ops.divide(ops.multiply(lr, g), ops.add(ops.sqrt(a), self.epsilon)))


IMPLEMENTATION = {
    "sgd": "keras.optimizers.SGD(momentum=0)",
    "momentum": "keras.optimizers.SGD(momentum, nesterov=False)",
    "adam": "keras.optimizers.Adam with update_step overridden: epsilon outside the bias-corrected sqrt "
            "(Keras's own: epsilon-hat)",
    "rmsprop": "keras.optimizers.RMSprop with update_step overridden: epsilon outside the sqrt (Keras's own: "
               "inside)",
    "adagrad": "keras.optimizers.Adagrad with update_step overridden: epsilon outside the sqrt (Keras's own: "
               "inside)",
}


def make_optimizer(hp: Hyperparams) -> keras.optimizers.Optimizer:
    """The cell's optimizer, each hyperparameter from the cell."""
    kind = hp.optimizer
    if kind == "sgd":
        return keras.optimizers.SGD(learning_rate=hp.lr, momentum=0.0, nesterov=False, **PLAIN)
    if kind == "momentum":
        return keras.optimizers.SGD(learning_rate=hp.lr, momentum=hp.momentum, nesterov=False, **PLAIN)
    if kind == "adam":
        return SpecAdam(learning_rate=hp.lr, beta_1=hp.beta1, beta_2=hp.beta2, epsilon=hp.eps, amsgrad=False,
                        **PLAIN)
    if kind == "rmsprop":
        return SpecRMSprop(learning_rate=hp.lr, rho=hp.rho, momentum=0.0, epsilon=hp.eps, centered=False, **PLAIN)
    if kind == "adagrad":
        return SpecAdagrad(learning_rate=hp.lr, initial_accumulator_value=hp.initial_accumulator, epsilon=hp.eps,
                           **PLAIN)
    raise ValueError(f"unknown optimizer {kind!r}")
