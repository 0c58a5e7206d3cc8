"""A ModelSpec as a torch nn.Sequential, and the weight mapping between canonical and torch layouts.

Module i of the network is spec layer i. Conv nets run on NCHW-shaped tensors stored
channels-last: that is exactly the NHWC data's memory (a permuted view, no copy), and
oneDNN's convolutions and pooling ran about twice as fast on it here (CPU) as on plain NCHW.
Flatten still flattens in torch's logical (C, H, W) order, so the Dense kernel that
follows it has its rows permuted at load time (and back in `read_weights`); the computed
function is exactly the canonical one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from harness.api import Weights
from harness.model import (
    LSTM,
    Conv2D,
    Dense,
    Flatten,
    MaxPool2D,
    ModelSpec,
    ReLU,
    output_shapes,
)


class LSTMLayer(nn.Module):
    """One Keras-style LSTM layer: zero initial state, gates i,f,g,o, one bias.

    torch's LSTM has two biases (input and hidden); the canonical bias goes into bias_ih
    and bias_hh stays a frozen zero, because training both would double the bias's step.
    `unrolled` computes the same function with explicit per-step ops, which torch.compile
    can trace and fuse (dynamo does not trace nn.LSTM).
    """

    def __init__(self, features: int, units: int, return_sequences: bool):
        super().__init__()
        self.lstm = nn.LSTM(features, units, batch_first=True)
        self.lstm.bias_hh_l0.requires_grad_(False)
        self.return_sequences = return_sequences
        self.unrolled = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self._unrolled(x) if self.unrolled else self.lstm(x)[0]
        return out if self.return_sequences else out[:, -1]

    def _unrolled(self, x: torch.Tensor) -> torch.Tensor:
        lstm = self.lstm
        n, steps, _ = x.shape
        # The input projection of all steps in one matmul; only the recurrence is sequential.
        xw = torch.nn.functional.linear(x, lstm.weight_ih_l0, lstm.bias_ih_l0 + lstm.bias_hh_l0)
        h = x.new_zeros(n, lstm.hidden_size)
        c = x.new_zeros(n, lstm.hidden_size)
        outputs = []
        for t in range(steps):
            z = xw[:, t] + h @ lstm.weight_hh_l0.T
            i, f, g, o = z.chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            outputs.append(h)
        return torch.stack(outputs, dim=1)


def is_conv_net(spec: ModelSpec) -> bool:
    """Whether this network computes on images, which torch wants as NCHW."""
    return any(isinstance(layer, (Conv2D, MaxPool2D)) for layer in spec.layers)


def device_inputs(spec: ModelSpec, x: np.ndarray, device: torch.device) -> torch.Tensor:
    """Inputs on the device in the layout the network computes in; done once, at build."""
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    if is_conv_net(spec):  # NHWC memory seen as NCHW: channels-last, the same bytes
        return t.permute(0, 3, 1, 2).to(device, memory_format=torch.channels_last)
    return t.to(device)


def build_network(spec: ModelSpec) -> nn.Sequential:
    """The network with freshly initialised parameters (load_weights overwrites them)."""
    net = nn.Sequential(*_modules(spec))
    return net.to(memory_format=torch.channels_last) if is_conv_net(spec) else net


def _modules(spec: ModelSpec) -> list[nn.Module]:
    modules: list[nn.Module] = []
    shape = spec.input_shape
    for layer, out_shape in zip(spec.layers, output_shapes(spec)):
        if isinstance(layer, Dense):
            modules.append(nn.Linear(shape[-1], layer.units))
        elif isinstance(layer, Conv2D):
            modules.append(nn.Conv2d(shape[-1], layer.filters, layer.kernel_size))
        elif isinstance(layer, MaxPool2D):
            modules.append(nn.MaxPool2d(layer.pool_size))
        elif isinstance(layer, Flatten):
            modules.append(nn.Flatten())
        elif isinstance(layer, ReLU):
            modules.append(nn.ReLU())
        elif isinstance(layer, LSTM):
            modules.append(LSTMLayer(shape[-1], layer.units, layer.return_sequences))
        else:
            raise TypeError(f"unknown layer kind {type(layer).__name__}")
        shape = out_shape
    return modules


def _flattened_images(spec: ModelSpec) -> list[tuple[int, int, int] | None]:
    """Per layer: for the first Dense after a Flatten of an NCHW activation, that activation's
    (H, W, C); else None. Only that Dense sees a different feature order than the spec's."""
    result: list[tuple[int, int, int] | None] = []
    pending = None
    nchw = is_conv_net(spec)
    shape = spec.input_shape
    for layer, out_shape in zip(spec.layers, output_shapes(spec)):
        if isinstance(layer, Flatten) and nchw and len(shape) == 3:
            pending = shape
        result.append(pending if isinstance(layer, Dense) else None)
        if isinstance(layer, Dense):
            pending = None
        shape = out_shape
    return result


def _dense_kernel_to_torch(kernel: np.ndarray, image: tuple[int, int, int] | None) -> np.ndarray:
    if image is not None:  # rows (H, W, C) -> (C, H, W)
        h, w, c = image
        kernel = kernel.reshape(h, w, c, -1).transpose(2, 0, 1, 3).reshape(h * w * c, -1)
    return kernel.T


def _dense_kernel_from_torch(weight: np.ndarray, image: tuple[int, int, int] | None) -> np.ndarray:
    kernel = weight.T
    if image is not None:  # rows (C, H, W) -> (H, W, C)
        h, w, c = image
        kernel = kernel.reshape(c, h, w, -1).transpose(1, 2, 0, 3).reshape(h * w * c, -1)
    return kernel


def torch_state(spec: ModelSpec, weights: Weights) -> dict[str, np.ndarray]:
    """Canonical weights as the network's state_dict entries (float32, torch layouts)."""
    state: dict[str, np.ndarray] = {}
    for i, (layer, params, image) in enumerate(zip(spec.layers, weights, _flattened_images(spec))):
        if isinstance(layer, Dense):
            state[f"{i}.weight"] = _dense_kernel_to_torch(params["kernel"], image)
            state[f"{i}.bias"] = params["bias"]
        elif isinstance(layer, Conv2D):
            state[f"{i}.weight"] = params["kernel"].transpose(3, 2, 0, 1)  # HWIO -> OIHW
            state[f"{i}.bias"] = params["bias"]
        elif isinstance(layer, LSTM):
            state[f"{i}.lstm.weight_ih_l0"] = params["kernel"].T
            state[f"{i}.lstm.weight_hh_l0"] = params["recurrent_kernel"].T
            state[f"{i}.lstm.bias_ih_l0"] = params["bias"]
            state[f"{i}.lstm.bias_hh_l0"] = np.zeros_like(params["bias"])
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in state.items()}


def load_weights(net: nn.Module, spec: ModelSpec, weights: Weights) -> None:
    """Copy canonical weights into the network's existing parameters (in place, so optimizers
    and captured graphs keep pointing at the same tensors)."""
    params = dict(net.named_parameters())
    state = torch_state(spec, weights)
    missing = set(params) ^ set(state)
    if missing:
        raise ValueError(f"weights and network disagree on parameters: {sorted(missing)}")
    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(torch.from_numpy(value))


def read_weights(net: nn.Module, spec: ModelSpec) -> Weights:
    """The network's parameters in canonical layouts (the inverse of `torch_state`)."""
    p: dict[str, np.ndarray] = {n: t.detach().float().cpu().numpy() for n, t in net.named_parameters()}
    weights: Weights = []
    for i, (layer, image) in enumerate(zip(spec.layers, _flattened_images(spec))):
        entry: dict[str, Any] = {}
        if isinstance(layer, Dense):
            entry = {"kernel": _dense_kernel_from_torch(p[f"{i}.weight"], image), "bias": p[f"{i}.bias"]}
        elif isinstance(layer, Conv2D):
            entry = {"kernel": p[f"{i}.weight"].transpose(2, 3, 1, 0), "bias": p[f"{i}.bias"]}
        elif isinstance(layer, LSTM):
            entry = {"kernel": p[f"{i}.lstm.weight_ih_l0"].T,
                     "recurrent_kernel": p[f"{i}.lstm.weight_hh_l0"].T,
                     "bias": p[f"{i}.lstm.bias_ih_l0"] + p[f"{i}.lstm.bias_hh_l0"]}
        weights.append({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in entry.items()})
    return weights
