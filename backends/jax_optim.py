"""The five optimizers of the Hyperparams docstring (harness/api.py) as optax transformations.

optax is used where its update is the spec'd one, term for term (checked against
optax 0.2.8's source and tested against NumPy in tests/test_backend_jax.py):
  sgd      optax.sgd(lr):                         u = -lr g
  momentum optax.sgd(lr, momentum):               v = momentum v + g;  u = -lr v
  adam     optax.adam(.., eps_root=0):            m/(1-b1^t) / (sqrt(v/(1-b2^t)) + eps)
  rmsprop  optax.rmsprop(.., eps_in_sqrt=False, initial_scale=0): g / (sqrt(s) + eps)
Adagrad is written here: optax.scale_by_rss divides by sqrt(a + eps) (eps inside
the root) where the spec has sqrt(a) + eps.
Coupled L2 weight decay is optax.add_decayed_weights chained *before* the
optimizer, so the decay term goes through the moments like the gradient does;
L1 likewise, as add_l1_subgradient (optax has no L1 transformation): l1 * sign(w),
with jnp.sign(0) = 0 (jax.grad of jnp.abs would give 1 at 0).
Imports JAX; only ever imported by jax_backend inside the worker.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from harness.api import Hyperparams


class AdagradState(NamedTuple):
    sum_of_squares: Any


def scale_by_adagrad(initial_accumulator: float, eps: float) -> optax.GradientTransformation:
    """a += g^2 (a starts at initial_accumulator);  u = g / (sqrt(a) + eps)."""

    def init(params):
        return AdagradState(jax.tree.map(lambda p: jnp.full_like(p, initial_accumulator), params))

    def update(updates, state, params=None):
        del params
        acc = jax.tree.map(lambda g, a: a + g * g, updates, state.sum_of_squares)
        scaled = jax.tree.map(lambda g, a: g / (jnp.sqrt(a) + eps), updates, acc)
        return scaled, AdagradState(acc)

    return optax.GradientTransformation(init, update)


def add_l1_subgradient(l1: float) -> optax.GradientTransformation:
    """u = g + l1 * sign(w), sign(0) = 0: L1's subgradient added to the gradient, as the L2 term is."""

    def init(params):
        del params
        return optax.EmptyState()

    def update(updates, state, params=None):
        return jax.tree.map(lambda g, p: g + l1 * jnp.sign(p), updates, params), state

    return optax.GradientTransformation(init, update)


def penalty(params: Any, hp: Hyperparams) -> float:
    """l1 * ||w||_1 + (weight_decay / 2) * ||w||^2 over the params pytree, in float32 (what `loss` adds)."""
    leaves = jax.tree.leaves(params)
    total = 0.0
    if hp.l1:
        total += hp.l1 * sum(float(jnp.sum(jnp.abs(p))) for p in leaves)
    if hp.weight_decay:
        total += 0.5 * hp.weight_decay * sum(float(jnp.sum(jnp.square(p))) for p in leaves)
    return total


def make_optimizer(hp: Hyperparams) -> tuple[optax.GradientTransformation, str]:
    """The optimizer for hp, every constant taken from hp, and a line saying what it is."""
    name = hp.optimizer
    if name == "sgd":
        core, text = optax.sgd(hp.lr), f"optax.sgd(lr={hp.lr:g})"
    elif name == "momentum":
        core = optax.sgd(hp.lr, momentum=hp.momentum, nesterov=False)
        text = f"optax.sgd(lr={hp.lr:g}, momentum={hp.momentum:g}, nesterov=False)"
    elif name == "adam":
        core = optax.adam(hp.lr, b1=hp.beta1, b2=hp.beta2, eps=hp.eps, eps_root=0.0)
        text = f"optax.adam(lr={hp.lr:g}, b1={hp.beta1:g}, b2={hp.beta2:g}, eps={hp.eps:g}, eps_root=0)"
    elif name == "rmsprop":
        core = optax.rmsprop(hp.lr, decay=hp.rho, eps=hp.eps, initial_scale=0.0, eps_in_sqrt=False,
                             centered=False, momentum=None, bias_correction=False)
        text = f"optax.rmsprop(lr={hp.lr:g}, decay={hp.rho:g}, eps={hp.eps:g}, eps_in_sqrt=False, initial_scale=0)"
    elif name == "adagrad":
        core = optax.chain(scale_by_adagrad(hp.initial_accumulator, hp.eps), optax.scale_by_learning_rate(hp.lr))
        text = (f"jnp adagrad (eps outside sqrt; optax's has it inside): lr={hp.lr:g}, "
                f"initial_accumulator={hp.initial_accumulator:g}, eps={hp.eps:g}")
    else:
        raise ValueError(f"unknown optimizer {name!r}")
    if hp.l1:
        core, text = optax.chain(add_l1_subgradient(hp.l1), core), f"add_l1_subgradient({hp.l1:g}) then {text}"
    if hp.weight_decay:
        return (optax.chain(optax.add_decayed_weights(hp.weight_decay), core),
                f"optax.add_decayed_weights({hp.weight_decay:g}) then {text}")
    return core, text
