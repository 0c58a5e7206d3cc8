"""How the TensorFlow backend runs an epoch: one GradientTape step, eagerly or compiled four ways.

Imported only inside a worker, after TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import tensorflow as tf

from backends.tf_model import Net, loss_fn
from backends.tf_optim import Optimizer

EAGER = "nothing: GradientTape loop op by op (no tf.function)"
STRATEGIES = {
    "xla_epoch": "whole epoch (tf.range loop over the order) in one tf.function(jit_compile=True)",
    "xla_step": "train step (forward, backward, update) in tf.function(jit_compile=True), Python loop",
    "graph_epoch": "whole epoch (tf.range loop over the order) in one tf.function (graph, no XLA)",
    "graph_step": "train step (forward, backward, update) in tf.function (graph, no XLA), Python loop",
}


@dataclass
class Programs:
    run_epoch: Callable[[tf.Tensor], None]  # order (steps, batch) int64, on the device
    forward: Callable[[tf.Tensor], tf.Tensor]  # inputs -> fp32 outputs
    batch_loss: Callable[[tf.Tensor, tf.Tensor], tf.Tensor]  # inputs, targets -> scalar loss


def make_programs(net: Net, optimizer: Optimizer, loss_kind: str, compute_dtype: tf.DType,
                  train: tuple[tf.Tensor, tf.Tensor], batch_size: int, strategy: str | None) -> Programs:
    """strategy None: eager; else one of STRATEGIES."""
    variables = net.variables_in_order
    x_all, y_all = train

    def forward(x):
        return net(x, compute_dtype)

    def batch_loss(x, y):
        return loss_fn(loss_kind, forward(x), y)

    def step_at(x_all, y_all, idx):
        with tf.GradientTape() as tape:
            loss = batch_loss(tf.gather(x_all, idx), tf.gather(y_all, idx))
        optimizer.apply(tape.gradient(loss, variables), variables)

    def epoch_loop(x_all, y_all, order):
        for i in tf.range(tf.shape(order)[0]):  # autograph: a tf.while_loop over the steps
            step_at(x_all, y_all, order[i])

    if strategy is None:
        def run_epoch(order):
            for idx in tf.unstack(order):
                step_at(x_all, y_all, idx)

        return Programs(run_epoch, forward, batch_loss)

    if strategy not in STRATEGIES:
        raise ValueError(f"unknown compiled strategy {strategy!r} (choose from: {', '.join(STRATEGIES)})")
    jit = strategy.startswith("xla")
    # The data are arguments, not captured constants: XLA would otherwise embed them in the program.
    data_spec = (tf.TensorSpec(x_all.shape, x_all.dtype), tf.TensorSpec(y_all.shape, y_all.dtype))
    if strategy.endswith("epoch"):
        # Any number of steps, one trace; XLA still compiles once per distinct epoch length.
        order_spec = tf.TensorSpec([None, batch_size], tf.int64)
        compiled_epoch = tf.function(epoch_loop, jit_compile=jit, input_signature=(*data_spec, order_spec))

        def run_epoch(order):
            compiled_epoch(x_all, y_all, order)
    else:
        compiled_step = tf.function(step_at, jit_compile=jit,
                                    input_signature=(*data_spec, tf.TensorSpec([batch_size], tf.int64)))

        def run_epoch(order):
            for idx in tf.unstack(order):
                compiled_step(x_all, y_all, idx)

    x_spec = tf.TensorSpec([None, *x_all.shape[1:]], x_all.dtype)
    y_spec = tf.TensorSpec([None, *y_all.shape[1:]], y_all.dtype)
    return Programs(run_epoch,
                    tf.function(forward, jit_compile=jit, input_signature=(x_spec,)),
                    tf.function(batch_loss, jit_compile=jit, input_signature=(x_spec, y_spec)))
