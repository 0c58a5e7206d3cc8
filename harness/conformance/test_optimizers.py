"""Each declared optimizer follows the update rule in harness.api.Hyperparams, checked on linear regression
(a single Dense layer, whose MSE gradient is exact in closed form)."""

from __future__ import annotations

import numpy as np
import pytest

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


def test_optimizer_follows_the_update_rule(subject: Subject, opened, mode: str, optimizer: str):
    case = subject.first_case(("linear_regression",), mode)
    if case is None or case.task.name != "linear_regression":
        pytest.skip(f"the update rules are checked on linear_regression, which mode {mode} does not support")
    hp = case.hp.replace(optimizer=optimizer, **CHECKED)
    cell = subject.cell(case, hp=hp)
    reason = subject.backend.unsupported_reason(case.task, cell)
    assert reason is None, f"{optimizer} is declared but the cell is unsupported: {reason}"
    weights = nonzero_bias_weights(case.task, seed=11)
    data = subject.data(case.task)
    order = batch_order(0, 0, len(data.x_train), hp.batch_size)[:STEPS]

    backend = opened(cell)
    state = backend.build(case.task, cell, data, [dict(p) for p in weights])
    state = backend.train_epoch(state, order)
    backend.sync(state)

    params = {k: v.astype(np.float64) for k, v in weights[0].items()}
    rule = ReferenceOptimizer(hp, params)
    for rows in order:
        params = rule.step(params, linear_mse_grads(params, data.x_train[rows].astype(np.float64),
                                                    data.y_train[rows].astype(np.float64)))
    problems = weights_differences(backend.get_weights(state), [params], exact=False, rtol=1e-5, atol=2e-6)
    assert not problems, (f"{optimizer} after {STEPS} steps differs from the rule in harness.api.Hyperparams "
                          f"(weight decay coupled; every hyperparameter from the cell):\n" + "\n".join(problems))
