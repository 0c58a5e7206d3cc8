"""The same seed gives the same result, and one run leaves nothing behind that changes the next."""

from __future__ import annotations

import numpy as np

from harness.conformance.support import Subject, batch_order, weights_differences

EPOCHS = 2


def _train(subject: Subject, opened, case, seed: int):
    cell = subject.cell(case, seed=seed)
    backend = opened(cell)  # a fresh instance per run, as each cell gets its own process
    data = subject.data(case.task)
    state = backend.build(case.task, cell, data, case.task.init_weights(seed))
    for epoch in range(EPOCHS):
        state = backend.train_epoch(state, batch_order(seed, epoch, len(data.x_train), case.hp.batch_size))
    backend.sync(state)
    return backend.get_weights(state), np.asarray(backend.predict(state, "test"))


def test_same_seed_same_weights_and_predictions(subject: Subject, opened, mode: str):
    case = subject.first_case(("mnist_mlp", "linear_regression", "mnist_cnn", "mnist_lstm"), mode)
    first_w, first_p = _train(subject, opened, case, seed=0)
    other_w, _ = _train(subject, opened, case, seed=1)
    again_w, again_p = _train(subject, opened, case, seed=0)
    problems = weights_differences(again_w, first_w)
    assert not problems, f"{case.id}: seed 0 trained twice gave different weights:\n" + "\n".join(problems)
    assert np.array_equal(again_p, first_p), f"{case.id}: seed 0 trained twice gave different predictions"
    assert weights_differences(other_w, first_w), f"{case.id}: seeds 0 and 1 gave identical weights"
