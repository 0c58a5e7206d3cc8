"""Linear regression on y = 2x + 1 + N(0, 0.1²): the smallest workload, for per-step overhead."""

from __future__ import annotations

import numpy as np

from harness.api import Dataset, Hyperparams, Target, Task, Weights
from harness.model import Dense, ModelSpec
from tasks.init import init_weights

TRUE_W, TRUE_B, NOISE = 2.0, 1.0, 0.1


class LinearRegression(Task):
    name = "linear_regression"
    description = "y = 2x + 1 + N(0, 0.1²), one feature, Dense(1); train_size scales it (1e2 to 1e7 samples)"
    loss = "mse"
    metric = "mse"
    targets = (Target("mse", "<=", 0.012), Target("w_error", "<=", 0.02), Target("b_error", "<=", 0.02))
    defaults = Hyperparams(optimizer="sgd", lr=0.1, batch_size=32, epochs=20)
    lr_by_optimizer = {"sgd": 0.1, "momentum": 0.01, "adam": 0.01, "rmsprop": 0.01, "adagrad": 0.1}
    default_train_size = 1000
    default_test_size = 1000

    def load(self, train_size: int | None = None, test_size: int | None = None) -> Dataset:
        # Test data come from their own stream so the test set doesn't change with train_size.
        def draw(stream: int, n: int) -> tuple[np.ndarray, np.ndarray]:
            rng = np.random.default_rng([2024, stream])
            x = rng.uniform(-1.0, 1.0, size=(n, 1)).astype(np.float32)
            y = (TRUE_W * x + TRUE_B + rng.normal(0.0, NOISE, size=(n, 1))).astype(np.float32)
            return x, y

        x_train, y_train = draw(0, train_size or self.default_train_size)
        x_test, y_test = draw(1, test_size or self.default_test_size)
        return Dataset(x_train, y_train, x_test, y_test)

    def train_samples(self, train_size: int | None) -> int:
        return train_size or self.default_train_size

    def model(self) -> ModelSpec:
        return ModelSpec((1,), (Dense(1),))

    def init_weights(self, seed: int) -> Weights:
        return init_weights(self.model(), seed)

    def extra_metrics(self, weights: Weights) -> dict[str, float]:
        w = float(weights[0]["kernel"][0, 0])
        b = float(weights[0]["bias"][0])
        return {"w": w, "b": b, "w_error": abs(w - TRUE_W), "b_error": abs(b - TRUE_B)}
