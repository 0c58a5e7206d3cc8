"""Registers the built-in tasks with the plugin manager."""

from harness import hookimpl
from tasks.linear_regression import LinearRegression
from tasks.mnist_tasks import MnistCNN, MnistLSTM, MnistMLP


@hookimpl
def bench_tasks() -> list[type]:
    return [LinearRegression, MnistMLP, MnistCNN, MnistLSTM]
