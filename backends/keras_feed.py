"""What model.fit is fed: the harness's batch order, one gather per batch, as Keras's own array feeding does.

`model.fit(x, y, shuffle=True)` draws a permutation and gathers each batch from the arrays: on
TensorFlow through a tf.data pipeline (batched indices, a parallel gather map, prefetch), on JAX and
PyTorch in Python, batch by batch. Here the harness's order stands in for Keras's permutation and
everything else is the same kind of path: tf.data on TensorFlow, a keras.utils.PyDataset on JAX and
PyTorch. Nothing is shuffled (fit gets shuffle=False) and no batch is dropped or added. Imported
only inside a worker, after Keras.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np


class OrderedBatches(keras.utils.PyDataset):
    """Row i of the harness's order as batch i."""

    def __init__(self, x: np.ndarray, y: np.ndarray, order: np.ndarray):
        super().__init__(workers=1, use_multiprocessing=False, max_queue_size=10)
        self.x, self.y, self.order = x, y, order

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        rows = self.order[index]
        return self.x[rows], self.y[rows]


def tf_batches(x: Any, y: Any, order: np.ndarray) -> Any:
    """The order as a tf.data pipeline over host-resident tensors x, y."""
    import tensorflow as tf

    def gather(rows):
        return tf.gather(x, rows), tf.gather(y, rows)

    rows = tf.data.Dataset.from_tensor_slices(np.asarray(order, np.int64))
    return rows.map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(tf.data.AUTOTUNE)
