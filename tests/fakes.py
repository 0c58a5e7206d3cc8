"""A tiny NumPy backend for harness tests: Dense layers with ReLU, plain SGD, CPU only.

`FAULT` (an environment variable read in the worker) makes it misbehave on purpose.
"""

from __future__ import annotations

import os
import time

import numpy as np

from harness import hookimpl
from harness.api import Backend, Availability


class FakeBackend(Backend):
    name = "fake"
    module = "numpy"
    distributions = ("numpy",)
    modes = ("eager", "compiled")
    optimizers = ("sgd",)
    layer_kinds = frozenset({"Dense", "ReLU", "Flatten"})

    @classmethod
    def availability(cls) -> Availability:
        return Availability(True, "0.0-fake")

    def import_framework(self, cell) -> None:
        self.fault = os.environ.get("FAKE_FAULT", "")

    def build(self, task, cell, data, weights):
        return {"w": [dict(p) for p in weights], "layers": task.model().layers, "data": data, "lr": cell.hp.lr,
                "loss": task.loss}

    def _forward(self, state, x):
        acts = [x.reshape(len(x), -1)]
        for layer, p in zip(state["layers"], state["w"]):
            kind = type(layer).__name__
            out = acts[-1]
            if kind == "Dense":
                out = out @ p["kernel"] + p["bias"]
            elif kind == "ReLU":
                out = np.maximum(out, 0)
            acts.append(out)
        return acts

    def train_epoch(self, state, order):
        if self.fault == "hang":
            time.sleep(3600)
        if self.fault == "raise":
            raise RuntimeError("injected failure\nsecond line of the message")
        x_all, y_all = state["data"].x_train, state["data"].y_train
        for idx in order:
            x, y = x_all[idx], y_all[idx]
            acts = self._forward(state, x)
            out = acts[-1]
            if state["loss"] == "mse":
                grad = 2 * (out - y) / len(x)
            else:
                z = np.exp(out - out.max(1, keepdims=True))
                grad = z / z.sum(1, keepdims=True)
                grad[np.arange(len(y)), y] -= 1
                grad /= len(x)
            for i in reversed(range(len(state["layers"]))):
                kind = type(state["layers"][i]).__name__
                p = state["w"][i]
                if kind == "Dense":
                    gk, gb = acts[i].T @ grad, grad.sum(0)
                    grad = grad @ p["kernel"].T
                    p["kernel"] = p["kernel"] - state["lr"] * gk
                    p["bias"] = p["bias"] - state["lr"] * gb
                elif kind == "ReLU":
                    grad = grad * (acts[i] > 0)
        if self.fault == "nan":
            for p in state["w"]:
                for k in p:
                    p[k] = p[k] * np.nan
        return state

    def sync(self, state) -> None:
        pass

    def predict(self, state, split):
        x, _ = state["data"].split(split)
        return self._forward(state, x)[-1]

    def loss(self, state, indices):
        from harness.metrics import loss_value

        out = self._forward(state, state["data"].x_train[indices])[-1]
        return loss_value(state["loss"], out, state["data"].y_train[indices])

    def get_weights(self, state):
        return [dict(p) for p in state["w"]]


@hookimpl
def bench_backends():
    return [FakeBackend]
