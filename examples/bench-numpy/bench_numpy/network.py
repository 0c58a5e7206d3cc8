"""A sequential network of Dense, ReLU and Flatten layers in float32, with hand-written gradients."""

from __future__ import annotations

import numpy as np

from harness.api import Weights
from harness.model import Dense, Flatten, ModelSpec, ReLU

SUPPORTED = (Dense, ReLU, Flatten)


class Network:
    """Parameters in the canonical layouts (Dense kernel (in, out)), so loading and reading them
    back needs no mapping; a backend for another framework would convert here."""

    def __init__(self, spec: ModelSpec, weights: Weights):
        for layer in spec.layers:
            if not isinstance(layer, SUPPORTED):
                raise TypeError(f"bench-numpy has no {type(layer).__name__} layer")
        self.layers = spec.layers
        self.params = [{k: np.array(v, dtype=np.float32, copy=True) for k, v in p.items()} for p in weights]
        # Nothing before the first parameterised layer needs a gradient: backprop stops there.
        self._first = next((i for i, p in enumerate(self.params) if p), len(self.params))

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """Outputs and every layer's input (what the backward pass needs)."""
        inputs = []
        out = x
        for layer, p in zip(self.layers, self.params):
            inputs.append(out)
            if isinstance(layer, Dense):
                out = out @ p["kernel"]
                out += p["bias"]
            elif isinstance(layer, ReLU):
                out = np.maximum(out, 0)
            else:  # Flatten: NHWC rows flatten in (H, W, C) order, the canonical order
                out = out.reshape(len(out), -1)
        return out, inputs

    def backward(self, inputs: list[np.ndarray], grad: np.ndarray) -> list[dict[str, np.ndarray]]:
        """Gradients of the loss w.r.t. every parameter, given d loss / d outputs."""
        grads: list[dict[str, np.ndarray]] = [{} for _ in self.layers]
        for i in range(len(self.layers) - 1, self._first - 1, -1):
            layer, x = self.layers[i], inputs[i]
            if isinstance(layer, Dense):
                grads[i] = {"kernel": x.T @ grad, "bias": grad.sum(axis=0)}
                if i > self._first:
                    grad = grad @ self.params[i]["kernel"].T
            elif isinstance(layer, ReLU):
                grad = grad * (x > 0)
            else:
                grad = grad.reshape(x.shape)
        return grads

    def predict(self, x: np.ndarray, chunk: int = 2000) -> np.ndarray:
        """Outputs for all of x, `chunk` rows at a time to bound memory."""
        return np.concatenate([self.forward(x[i: i + chunk])[0] for i in range(0, len(x), chunk)])

    def weights(self) -> Weights:
        return [{k: v.copy() for k, v in p.items()} for p in self.params]
