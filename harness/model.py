"""The framework-neutral model vocabulary tasks describe their networks with.

Canonical parameter layouts (what `Task.init_weights` returns and what
`Backend.get_weights` must give back), all float32:

- Dense:  kernel (in, out), bias (out,)
- Conv2D: kernel (kh, kw, in_channels, out_channels) ("HWIO"), bias (out,);
  stride 1, no padding ("valid")
- LSTM:   kernel (in, 4u), recurrent_kernel (u, 4u), bias (4u,), gates in the
  order input, forget, cell candidate, output; zero initial state
- Images are NHWC and Flatten flattens in (H, W, C) order, so a backend that
  works in NCHW must permute the following Dense kernel's rows, not the data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union


@dataclass(frozen=True)
class Dense:
    units: int


@dataclass(frozen=True)
class Conv2D:
    filters: int
    kernel_size: int


@dataclass(frozen=True)
class MaxPool2D:
    pool_size: int


@dataclass(frozen=True)
class Flatten:
    pass


@dataclass(frozen=True)
class ReLU:
    pass


@dataclass(frozen=True)
class LSTM:
    units: int
    return_sequences: bool = False


Layer = Union[Dense, Conv2D, MaxPool2D, Flatten, ReLU, LSTM]
LAYER_KINDS: tuple[type, ...] = (Dense, Conv2D, MaxPool2D, Flatten, ReLU, LSTM)


@dataclass(frozen=True)
class ModelSpec:
    """A sequential network: `layers` applied in order to inputs of `input_shape` (no batch axis)."""

    input_shape: tuple[int, ...]
    layers: tuple[Layer, ...]

    def layer_kinds(self) -> set[str]:
        return {type(layer).__name__ for layer in self.layers}


def output_shapes(spec: ModelSpec) -> list[tuple[int, ...]]:
    """Shape (without batch axis) after each layer; used to size parameters."""
    shape = spec.input_shape
    shapes = []
    for layer in spec.layers:
        if isinstance(layer, Dense):
            shape = (*shape[:-1], layer.units)
        elif isinstance(layer, Conv2D):
            h, w, _ = shape
            k = layer.kernel_size
            shape = (h - k + 1, w - k + 1, layer.filters)
        elif isinstance(layer, MaxPool2D):
            h, w, c = shape
            p = layer.pool_size
            shape = (h // p, w // p, c)
        elif isinstance(layer, Flatten):
            size = 1
            for dim in shape:
                size *= dim
            shape = (size,)
        elif isinstance(layer, LSTM):
            steps, _ = shape
            shape = (steps, layer.units) if layer.return_sequences else (layer.units,)
        elif isinstance(layer, ReLU):
            pass
        else:
            raise TypeError(f"unknown layer kind {type(layer).__name__}")
        shapes.append(shape)
    return shapes
