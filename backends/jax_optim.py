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
optimizer, so the decay term goes through the moments like the gradient does.
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
    if hp.weight_decay:
        return (optax.chain(optax.add_decayed_weights(hp.weight_decay), core),
                f"optax.add_decayed_weights({hp.weight_decay:g}) then {text}")
    return core, text
