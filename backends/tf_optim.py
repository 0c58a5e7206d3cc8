"""The five update rules of harness.api.Hyperparams, written in TensorFlow ops.

Keras' optimizers differ from the spec (Adam's epsilon-hat, RMSprop's epsilon inside the
square root, Adagrad's default accumulator, decoupled weight decay), so each rule is spelled
out here with tf.Variable slots. Works the same eagerly and inside tf.function / XLA.
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

from harness.api import Hyperparams


class Optimizer:
    """Holds the slots of one optimizer for a fixed list of variables; `apply` does one step."""

    def __init__(self, hp: Hyperparams, variables: Sequence[tf.Variable]):
        if hp.optimizer not in ("sgd", "momentum", "adam", "rmsprop", "adagrad"):
            raise ValueError(f"unknown optimizer {hp.optimizer!r}")
        self.hp = hp
        self.kind = hp.optimizer

        def slots(name: str, value: float = 0.0) -> list[tf.Variable]:
            return [tf.Variable(tf.fill(v.shape, tf.constant(value, v.dtype)), trainable=False,
                                name=f"{name}_{i}") for i, v in enumerate(variables)]

        if self.kind == "momentum":
            self.velocity = slots("velocity")
        elif self.kind == "adam":
            self.m, self.v = slots("m"), slots("v")
            self.t = tf.Variable(0.0, trainable=False, name="t")
        elif self.kind == "rmsprop":
            self.s = slots("s")
        elif self.kind == "adagrad":
            self.a = slots("accumulator", hp.initial_accumulator)

    def apply(self, grads: Sequence[tf.Tensor], variables: Sequence[tf.Variable]) -> None:
        hp = self.hp
        if hp.weight_decay:  # coupled L2: part of the gradient every rule sees
            grads = [g + hp.weight_decay * w for g, w in zip(grads, variables)]
        if self.kind == "sgd":
            for g, w in zip(grads, variables):
                w.assign_sub(hp.lr * g)
        elif self.kind == "momentum":
            for g, w, vel in zip(grads, variables, self.velocity):
                w.assign_sub(hp.lr * vel.assign(hp.momentum * vel + g))
        elif self.kind == "adam":
            t = self.t.assign_add(1.0)
            m_correction = 1.0 - tf.pow(hp.beta1, t)
            v_correction = 1.0 - tf.pow(hp.beta2, t)
            for g, w, m, v in zip(grads, variables, self.m, self.v):
                m_new = m.assign(hp.beta1 * m + (1.0 - hp.beta1) * g)
                v_new = v.assign(hp.beta2 * v + (1.0 - hp.beta2) * tf.square(g))
                w.assign_sub(hp.lr * (m_new / m_correction) / (tf.sqrt(v_new / v_correction) + hp.eps))
        elif self.kind == "rmsprop":
            for g, w, s in zip(grads, variables, self.s):
                s_new = s.assign(hp.rho * s + (1.0 - hp.rho) * tf.square(g))
                w.assign_sub(hp.lr * g / (tf.sqrt(s_new) + hp.eps))
        elif self.kind == "adagrad":
            for g, w, a in zip(grads, variables, self.a):
                a_new = a.assign_add(tf.square(g))
                w.assign_sub(hp.lr * g / (tf.sqrt(a_new) + hp.eps))
