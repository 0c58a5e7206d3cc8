"""Epoch runners: the plain op-by-op loop (eager) and the compiled ones.

Every runner has the signature epoch(params, opt_state, x_all, y_all, order) ->
(params, opt_state), with the data and the order already on the device, and takes
one optimizer step per row of `order`, gathering that row's batch on the device.
Imports JAX; only ever imported by jax_backend inside the worker.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import optax
from jax import lax

from backends.jax_loops import EPOCH_LOOPS

Epoch = Callable[[Any, Any, Any, Any, Any], tuple[Any, Any]]


def make_step(loss_fn: Callable, opt: optax.GradientTransformation) -> Callable:
    """One optimizer step on the batch x_all[row], y_all[row]; pure, so it can run eagerly or be traced."""
    grad_fn = jax.grad(loss_fn)

    def step(params, opt_state, x_all, y_all, row):
        grads = grad_fn(params, x_all[row], y_all[row])
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    return step


def eager_epoch(step: Callable) -> Epoch:
    """No jax.jit anywhere: every primitive of the forward, backward and update is dispatched one by one."""

    def epoch(params, opt_state, x_all, y_all, order):
        # order[i], not `for row in order`: iterating a device array compiles a slicing program
        # per chunk of rows the first time (seconds), which would be charged to the first epoch.
        for i in range(order.shape[0]):
            params, opt_state = step(params, opt_state, x_all, y_all, order[i])
        return params, opt_state

    return epoch


def compiled_epoch(step: Callable, loop: str) -> Epoch:
    """loop "scan": the whole epoch is one XLA program, lax.scan over the rows of the order.
    loop "step": one jitted step per row, driven from Python; the row is sliced inside the program.
    Params and optimizer state are donated, so XLA updates them in place."""
    if loop == "scan":
        def epoch(params, opt_state, x_all, y_all, order):
            def body(carry, row):
                return step(*carry, x_all, y_all, row), None

            (params, opt_state), _ = lax.scan(body, (params, opt_state), order)
            return params, opt_state

        return jax.jit(epoch, donate_argnums=(0, 1))
    if loop == "step":
        jitted = jax.jit(lambda params, opt_state, x_all, y_all, order, i:
                         step(params, opt_state, x_all, y_all, order[i]), donate_argnums=(0, 1))

        def stepwise(params, opt_state, x_all, y_all, order):
            for i in range(order.shape[0]):
                params, opt_state = jitted(params, opt_state, x_all, y_all, order, i)
            return params, opt_state

        return stepwise
    raise ValueError(f"unknown epoch loop {loop!r} (choose from: {', '.join(EPOCH_LOOPS)})")
