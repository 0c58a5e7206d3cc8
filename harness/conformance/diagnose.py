"""What a plugin author has to fix when trained weights differ from the update rule: the rule itself, or the
batch order. A backend that reverses, drops or ignores the harness's order trains with the right rule on the
wrong batches; saying "differs from the rule" would send its author to the optimizer."""

from __future__ import annotations

from typing import Callable

import numpy as np

Params = dict[str, np.ndarray]


def order_variants(order: np.ndarray, n_train: int) -> list[tuple[str, np.ndarray]]:
    """Orders a backend may have used instead of `order` (steps x batch_size), each with what it means."""
    steps, batch = order.shape
    variants = [("the batches were taken in reverse order", order[::-1]),
                ("the last batch was dropped", order[:-1]),
                ("the first batch was dropped", order[1:]),
                ("the harness's order was ignored: batches taken in index order",
                 np.arange(steps * batch).reshape(steps, batch) % n_train)]
    return [(what, rows) for what, rows in variants if len(rows)]


def batch_order_cause(train: Callable[[np.ndarray], Params], got: Params, order: np.ndarray, n_train: int,
                      rtol: float, atol: float) -> str | None:
    """The first way of misusing `order` under which the reference rule (`train`) gives `got`, as a sentence
    naming it; None when none does (the rule itself is what differs)."""
    for what, rows in order_variants(order, n_train):
        expected = train(rows)
        if all(np.allclose(np.asarray(got[k], dtype=np.float64), expected[k], rtol=rtol, atol=atol)
               for k in expected):
            return (f"{what}: the update rule is right, the batch order is not (train_epoch must take one step per "
                    "row of `order`, in that order)")
    return None
