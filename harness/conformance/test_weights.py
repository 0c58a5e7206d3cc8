"""Weight layouts and the forward pass: what build loads is what get_weights returns, and the
backend computes what the float64 NumPy reference computes."""

from __future__ import annotations

import copy

import numpy as np
import pytest

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
    before = [{k: np.array(v, copy=True) for k, v in layer.items()} for layer in backend.get_weights(state)]
    got = float(backend.loss(state, batch))
    expected = metrics.loss_value(case.task.loss, reference.forward(case.task.model(), weights, data.x_train[batch]),
                                  data.y_train[batch])
    assert abs(got - expected) <= LOSS_RTOL * abs(expected), \
        f"loss {got!r} on the first batch, reference {expected!r} (relative tolerance {LOSS_RTOL:g})"
    after = backend.get_weights(state)
    changed = [f"layer {i} {k}" for i, (b, a) in enumerate(zip(before, after)) for k in b
               if not np.array_equal(b[k], np.asarray(a.get(k)))]  # against itself: a layout or dtype fault is not this
    assert not changed, "loss() changed the weights (it must not update anything): " + ", ".join(changed)


# Both penalties large enough beside the data loss that leaving either out of `loss` shows (MLP: ~3.5 and ~0.6).
PENALTIES = {"l1": 1e-3, "weight_decay": 5e-3}


def test_initial_loss_with_penalties_matches_the_reference(subject: Subject, opened, case: Case):
    """Backend.loss is the objective: the data loss plus l1 * ||w||_1 + (weight_decay / 2) * ||w||^2."""
    hp = case.hp.replace(**PENALTIES)
    cell = subject.cell(case, hp=hp)
    reason = subject.backend.unsupported_reason(case.task, cell)
    if reason is not None:
        undeclared = [p for p in PENALTIES if p not in subject.backend.penalties]
        assert undeclared, f"both penalties are declared but the cell is unsupported: {reason}"
        pytest.skip(f"penalties not supported: {reason}")
    weights = nonzero_bias_weights(case.task, seed=4)
    backend = opened(cell)
    data = subject.data(case.task)
    state = backend.build(case.task, cell, data, copy.deepcopy(weights))
    backend.sync(state)
    batch = batch_order(0, 0, len(data.x_train), hp.batch_size)[0]
    got = float(backend.loss(state, batch))
    data_loss = metrics.loss_value(case.task.loss, reference.forward(case.task.model(), weights,
                                                                     data.x_train[batch]), data.y_train[batch])
    expected = data_loss + metrics.penalty(weights, hp.l1, hp.weight_decay)
    assert abs(got - expected) <= LOSS_RTOL * abs(expected), \
        (f"loss {got!r} on the first batch with l1={hp.l1:g}, weight_decay={hp.weight_decay:g}; reference "
         f"{expected!r} = data loss {data_loss!r} + penalty {expected - data_loss!r} (relative tolerance "
         f"{LOSS_RTOL:g}): Backend.loss must add both penalties (harness.api.Hyperparams)")


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


def test_predict_rows_are_the_splits_predictions_at_those_rows(subject: Subject, opened, case: Case):
    """predict_rows (used to score the trained model on part of the training split) gives, for any rows in any
    order, what predict gives for the whole split at those rows."""
    weights = nonzero_bias_weights(case.task, seed=6)
    backend, state = _build(subject, opened, case, weights)
    n = len(subject.data(case.task).x_train)
    rows = np.random.default_rng(6).permutation(n)[: n // 2]
    whole = np.asarray(backend.predict(state, "train"))
    got = np.asarray(backend.predict_rows(state, "train", rows))
    assert got.shape == whole[rows].shape, f"predict_rows gave shape {got.shape}, expected {whole[rows].shape}"
    scale = float(np.max(np.abs(whole))) or 1.0
    worst = float(np.max(np.abs(got - whole[rows])))
    assert worst <= 1e-5 * scale, f"predict_rows differs from predict at those rows by up to {worst:.3g}"
