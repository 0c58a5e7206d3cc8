"""Weight layouts and the forward pass: what build loads is what get_weights returns, and the
backend computes what the float64 NumPy reference computes."""

from __future__ import annotations

import copy

import numpy as np

from harness.conformance.support import (
    Case,
    Subject,
    batch_order,
    nonzero_bias_weights,
    weights_differences,
)
from harness.measure import metrics, reference

LOSS_RTOL = 1e-5


def _build(subject: Subject, opened, case: Case, weights):
    cell = subject.cell(case)
    backend = opened(cell)
    state = backend.build(case.task, cell, subject.data(case.task), copy.deepcopy(weights))
    backend.sync(state)
    return backend, state


def test_get_weights_returns_the_weights_given_to_build(subject: Subject, opened, case: Case):
    weights = nonzero_bias_weights(case.task, seed=3)
    backend, state = _build(subject, opened, case, weights)
    problems = weights_differences(backend.get_weights(state), weights)
    assert not problems, "get_weights is not the inverse of build's layout mapping:\n" + "\n".join(problems)


def test_initial_loss_matches_the_reference(subject: Subject, opened, case: Case):
    weights = nonzero_bias_weights(case.task, seed=4)
    backend, state = _build(subject, opened, case, weights)
    data = subject.data(case.task)
    batch = batch_order(0, 0, len(data.x_train), case.hp.batch_size)[0]
    got = float(backend.loss(state, batch))
    expected = metrics.loss_value(case.task.loss, reference.forward(case.task.model(), weights, data.x_train[batch]),
                                  data.y_train[batch])
    assert abs(got - expected) <= LOSS_RTOL * abs(expected), \
        f"loss {got!r} on the first batch, reference {expected!r} (relative tolerance {LOSS_RTOL:g})"
    problems = weights_differences(backend.get_weights(state), weights)
    assert not problems, "loss() changed the weights:\n" + "\n".join(problems)


def test_predictions_match_the_reference(subject: Subject, opened, case: Case):
    weights = nonzero_bias_weights(case.task, seed=5)
    backend, state = _build(subject, opened, case, weights)
    data = subject.data(case.task)
    expected = reference.forward(case.task.model(), weights, data.x_test)
    got = np.asarray(backend.predict(state, "test"))
    if case.task.loss == "cross_entropy":
        assert got.shape == expected.shape, f"predict gave shape {got.shape}, expected {expected.shape} (logits)"
    else:
        assert got.size == expected.size, f"predict gave shape {got.shape}, expected {expected.shape}"
        got = got.reshape(expected.shape)
    scale = float(np.max(np.abs(expected))) or 1.0
    worst = float(np.max(np.abs(got - expected)))
    assert worst <= 1e-4 * scale, f"predictions differ from the reference by up to {worst:.3g} (scale {scale:.3g})"
