"""The three MNIST classifiers: shared data handling, one class per network."""

from __future__ import annotations

from harness.api import Dataset, Hyperparams, Target, Task, Weights
from harness.model import LSTM, Conv2D, Dense, Flatten, MaxPool2D, ModelSpec, ReLU
from tasks import mnist
from tasks.init import init_weights

# Default lr per optimizer when a user swaps the task's own optimizer for another.
_LR_BY_OPTIMIZER = {"sgd": 0.1, "momentum": 0.01, "adam": 1e-3, "rmsprop": 1e-3, "adagrad": 0.01}


class MnistTask(Task):
    loss = "cross_entropy"
    metric = "accuracy"
    lr_by_optimizer = _LR_BY_OPTIMIZER

    def prepare(self) -> None:
        mnist.prepare()

    def load(self, train_size: int | None = None, test_size: int | None = None) -> Dataset:
        return Dataset(*mnist.load_mnist(train_size, test_size))

    def train_samples(self, train_size: int | None) -> int:
        return min(train_size or mnist.TRAIN_SAMPLES, mnist.TRAIN_SAMPLES)

    def size_problem(self, train_size: int | None, test_size: int | None) -> str | None:
        for option, asked, has in (("--train-size", train_size, mnist.TRAIN_SAMPLES),
                                   ("--test-size", test_size, mnist.TEST_SAMPLES)):
            if asked is not None and asked > has:
                return f"{option} {asked:,} asks for more than the {has:,} samples of MNIST's split ({self.name})"
        return None

    def init_weights(self, seed: int) -> Weights:
        return init_weights(self.model(), seed)


class MnistMLP(MnistTask):
    name = "mnist_mlp"
    description = "MNIST, Flatten → Dense(128, relu) → Dense(10)"
    # Targets sit below what a correct implementation reaches in nearly every run at the defaults, so that a miss
    # says something is wrong, not that the seed was unlucky: over 72 cells (20 seeds x torch, tensorflow, jax,
    # and the reference run's Keras cells) the MLP reached 0.9701-0.9784, mean 0.9752, sd 0.0016; 0.975, its
    # median, was met by 61% (python -m benchmarks.targets, results/reference-targets-cpu-20261204).
    targets = (Target("accuracy", ">=", 0.970),)
    defaults = Hyperparams(optimizer="adam", lr=1e-3, batch_size=128, epochs=5)

    def model(self) -> ModelSpec:
        return ModelSpec((28, 28, 1), (Flatten(), Dense(128), ReLU(), Dense(10)))


class MnistCNN(MnistTask):
    name = "mnist_cnn"
    description = "MNIST, Conv(32,3) → MaxPool 2 → Conv(64,3) → MaxPool 2 → Dense(64) → Dense(10)"
    targets = (Target("accuracy", ">=", 0.985),)
    # 4 epochs, not 3: after 3 the accuracy over seeds and frameworks spread from 0.984 to 0.989
    # (framework rounding alone moves it by 0.002), after 4 from 0.988 to 0.991. 27 cells over 15 seeds at 4:
    # 0.9869-0.9913, mean 0.9887, sd 0.0010: all meet 0.985.
    defaults = Hyperparams(optimizer="adam", lr=1e-3, batch_size=128, epochs=4)

    def model(self) -> ModelSpec:
        return ModelSpec((28, 28, 1), (
            Conv2D(32, 3), ReLU(), MaxPool2D(2),
            Conv2D(64, 3), ReLU(), MaxPool2D(2),
            Flatten(), Dense(64), ReLU(), Dense(10),
        ))


class MnistLSTM(MnistTask):
    name = "mnist_lstm"
    description = "MNIST rows as a 28-step sequence, LSTM(64) ×3 → Dense(10)"
    # 26 cells over 15 seeds: 0.9696-0.9868, mean 0.9809, sd 0.0037; 0.97 was missed once (96%).
    targets = (Target("accuracy", ">=", 0.965),)
    defaults = Hyperparams(optimizer="adam", lr=2e-3, batch_size=128, epochs=3)

    def load(self, train_size: int | None = None, test_size: int | None = None) -> Dataset:
        data = super().load(train_size, test_size)
        return Dataset(data.x_train[..., 0], data.y_train, data.x_test[..., 0], data.y_test)

    def model(self) -> ModelSpec:
        return ModelSpec((28, 28), (LSTM(64, True), LSTM(64, True), LSTM(64), Dense(10)))
