"""Each declared optimizer follows the update rule in harness.api.Hyperparams, checked on linear regression
(a single Dense layer, whose MSE gradient is exact in closed form): with coupled L2, and with L1 as well."""

from __future__ import annotations

import numpy as np
import pytest

from harness.conformance.diagnose import batch_order_cause
from harness.conformance.support import (
    Subject,
    batch_order,
    nonzero_bias_weights,
    weights_differences,
)
from harness.conformance.update_rules import ReferenceOptimizer, linear_mse_grads

STEPS = 6
# Off-default values everywhere, so a framework default used in place of the cell's value shows;
# a large eps separates "eps outside the sqrt" from Keras' epsilon-hat and from eps inside the sqrt.
CHECKED = dict(lr=0.05, batch_size=16, weight_decay=0.01, momentum=0.8, beta1=0.8, beta2=0.99, eps=1e-3, rho=0.8,
               initial_accumulator=0.2)


# L1 large enough beside the batch gradients (~1 here) that its term moves every rule's result well past the
# tolerance, also through Adam's and RMSprop's normalisation.
L1 = 0.05
RTOL, ATOL = 1e-5, 2e-6


def _linear_case(subject: Subject, mode: str):
    case = subject.first_case(("linear_regression",), mode)
    if case is None or case.task.name != "linear_regression":
        pytest.skip(f"the update rules are checked on linear_regression, which mode {mode} does not support")
    return case


def _reference(hp, weights, data, order) -> dict[str, np.ndarray]:
    params = {k: v.astype(np.float64) for k, v in weights[0].items()}
    rule = ReferenceOptimizer(hp, params)
    for rows in order:
        params = rule.step(params, linear_mse_grads(params, data.x_train[rows].astype(np.float64),
                                                    data.y_train[rows].astype(np.float64)))
    return params


def _trained(subject: Subject, opened, case, cell, weights, order):
    backend = opened(cell)
    state = backend.build(case.task, cell, subject.data(case.task), [dict(p) for p in weights])
    state = backend.train_epoch(state, order)
    backend.sync(state)
    return backend.get_weights(state)


def test_optimizer_follows_the_update_rule(subject: Subject, opened, mode: str, optimizer: str):
    case = _linear_case(subject, mode)
    hp = case.hp.replace(optimizer=optimizer, **CHECKED)
    cell = subject.cell(case, hp=hp)
    reason = subject.backend.unsupported_reason(case.task, cell)
    assert reason is None, f"{optimizer} is declared but the cell is unsupported: {reason}"
    weights = nonzero_bias_weights(case.task, seed=11)
    data = subject.data(case.task)
    order = batch_order(0, 0, len(data.x_train), hp.batch_size)[:STEPS]

    got = _trained(subject, opened, case, cell, weights, order)
    problems = weights_differences(got, [_reference(hp, weights, data, order)], exact=False, rtol=RTOL, atol=ATOL)
    if problems and isinstance(got, list) and got and isinstance(got[0], dict):
        cause = batch_order_cause(lambda rows: _reference(hp, weights, data, rows), got[0], order,
                                  len(data.x_train), RTOL, ATOL)
        assert cause is None, f"{optimizer} after {STEPS} steps: {cause}"
    assert not problems, (f"{optimizer} after {STEPS} steps differs from the rule in harness.api.Hyperparams "
                          f"(weight decay coupled; every hyperparameter from the cell):\n" + "\n".join(problems))


def test_l1_follows_the_update_rule(subject: Subject, opened, mode: str, optimizer: str):
    """g = grad + weight_decay * w + l1 * sign(w), with sign(0) = 0: the bias starts at exactly 0, where an
    abs whose gradient is 1 at 0 (jnp.abs) gives the first step l1 too many."""
    case = _linear_case(subject, mode)
    hp = case.hp.replace(optimizer=optimizer, **CHECKED, l1=L1)
    cell = subject.cell(case, hp=hp)
    reason = subject.backend.unsupported_reason(case.task, cell)
    if reason is not None:  # declared so (Backend.penalties): the cell is skipped, never trained without L1
        assert "l1" not in subject.backend.penalties, f"l1 is declared but the cell is unsupported: {reason}"
        pytest.skip(f"L1 not supported: {reason}")
    weights = nonzero_bias_weights(case.task, seed=11)
    weights[0]["bias"] = np.zeros_like(weights[0]["bias"])
    data = subject.data(case.task)
    order = batch_order(0, 0, len(data.x_train), hp.batch_size)[:STEPS]
    want = _reference(hp, weights, data, order)
    without = _reference(hp.replace(l1=0.0), weights, data, order)
    assert not all(np.allclose(without[k], want[k], rtol=RTOL, atol=ATOL) for k in want), "L1 moves nothing here"

    got = _trained(subject, opened, case, cell, weights, order)
    problems = weights_differences(got, [want], exact=False, rtol=RTOL, atol=ATOL)
    assert not problems, (f"{optimizer} with l1={L1:g} after {STEPS} steps differs from the rule in "
                          f"harness.api.Hyperparams (g + weight_decay * w + l1 * sign(w), sign(0) = 0, on every "
                          f"parameter):\n" + "\n".join(problems))
