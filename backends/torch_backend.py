"""The PyTorch backend: eager (the plain loop) and compiled (torch.compile; CUDA graphs on GPU).

compiled: forward, backward and update traced into one graph (torch.func.grad and the update
rule in tensor ops), except for the LSTM, where dynamo can't trace nn.LSTM and the step is
compiled around it in two graphs with torch.optim's update. Measured on the 2-core CPU against
the two-graph way: MLP steady epoch 0.47 s against 0.78 s, CNN (20k samples) 7.1 s against 14.1 s;
the LSTM in one graph ran 3x slower.

torch is imported only inside the worker-side methods; the parent process never imports it.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import harness
from backends.compile_clock import CompileClock
from backends.torch_cuda_events import SteadyEpochEvents
from harness.api import Backend, Cell, Dataset, Task, Weights

PREDICT_BATCH = 2000
COMPILE_SOURCE = "torch._dynamo compile-time metrics: dynamo + AOTAutograd + inductor (forward and backward)"
INFERENCE_TEXT = {
    "eager": "predict_batch: torch.from_numpy(x).to(device) (channels-last NCHW for conv nets), then the network's "
             "eager forward under no_grad; outputs left on the device",
    "compiled": "predict_batch: torch.from_numpy(x).to(device), then torch.compile(network) (inductor, default mode: "
                "no CUDA graphs) under no_grad, compiled at the first call of each batch size until dynamo marks "
                "the batch dimension dynamic; outputs left on the device",
}
CAPTURE_SOURCE = " + CUDA graph capture (timed around torch.cuda.graph)"


def dynamo_compile_seconds() -> float:
    """torch.compile's running total for this process: every frame dynamo compiled (with AOTAutograd
    and inductor inside it) and every backward compiled lazily at its first call."""
    # Only torch.compile loads torch._dynamo: not loaded means nothing compiled, and importing it
    # just to read zeros would cost seconds.
    utils = sys.modules.get("torch._dynamo.utils")
    if utils is None:
        return 0.0
    return float(utils.calculate_time_spent()["total_wall_time"])  # KeyError if renamed: unknown, never 0 s


@dataclass
class TorchState:
    task: Task
    cell: Cell
    device: Any  # torch.device
    net: Any  # nn.Sequential
    optimizer: Any
    x_train: Any
    y_train: Any
    x_test: Any
    y_test: Any
    loss_at: Any  # idx -> loss tensor (the framework's training loss, eager)
    step: Any  # idx -> None, one optimizer step
    autocast: Any  # () -> context manager: bf16 autocast, or nothing
    compile_clock: CompileClock
    facts: dict[str, Any] = field(default_factory=dict)
    memory_at_reset: int = 0  # bytes allocated on the GPU when training began
    infer_forward: Any = None  # inference cells: the mode's forward (torch.compile'd in compiled), made at first use
    epoch_events: SteadyEpochEvents | None = None  # cuda only: one steady epoch timed by CUDA events too


class TorchBackend(Backend):
    name = "torch"
    module = "torch"
    distributions = ("torch",)
    modes = ("eager", "compiled")
    devices = ("cpu", "cuda")
    precisions = ("fp32", "tf32", "bf16")
    penalties = frozenset({"weight_decay", "l1"})

    @classmethod
    def unsupported_reason(cls, task: Task, cell: Cell) -> str | None:
        reason = super().unsupported_reason(task, cell)
        if reason is None and cell.device == "cpu" and cell.precision != "fp32":
            return f"precision {cell.precision!r} is offered on cuda only (cpu: fp32)"
        return reason

    # -- worker side -------------------------------------------------------

    def configure(self, cell: Cell) -> dict[str, str]:
        # Inductor picks the CPU's vector ISA from its flags, then confirms each candidate by compiling and
        # running a probe program, once per cache folder (~12 s here; cells get fresh caches). Taking the
        # flags' word picks the same ISA (checked: avx512 avx512_vnni amx_tile on the 2-core Xeon) for free.
        return {"TORCH_CPP_LOG_LEVEL": os.environ.get("TORCH_CPP_LOG_LEVEL", "ERROR"),
                "TORCHINDUCTOR_VEC_ISA_OK": os.environ.get("TORCHINDUCTOR_VEC_ISA_OK", "1")}

    def import_framework(self, cell: Cell) -> None:
        import torch

        torch.set_num_threads(cell.thread_count())
        tf32 = cell.precision == "tf32"
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        torch.set_float32_matmul_precision("high" if tf32 else "highest")

    def device_problem(self, cell: Cell) -> str | None:
        import torch

        if cell.device == "cuda" and not torch.cuda.is_available():
            return "CUDA not visible to torch"
        return None

    def build(self, task: Task, cell: Cell, data: Dataset, weights: Weights) -> TorchState:
        import torch

        from backends import torch_model, torch_optim, torch_train

        compile_clock = CompileClock(dynamo_compile_seconds, COMPILE_SOURCE, expected=cell.mode == "compiled")
        device = torch.device(cell.device)
        spec = task.model()
        torch.manual_seed(cell.seed)  # nothing here is random; this only makes that certain

        def targets(y: np.ndarray) -> torch.Tensor:
            dtype = np.int64 if task.loss == "cross_entropy" else np.float32
            return torch.from_numpy(np.ascontiguousarray(y, dtype=dtype)).to(device)

        x_train, y_train = torch_model.device_inputs(spec, data.x_train, device), targets(data.y_train)
        x_test, y_test = torch_model.device_inputs(spec, data.x_test, device), targets(data.y_test)
        net = torch_model.build_network(spec).to(device)
        torch_model.load_weights(net, spec, weights)
        params = [p for p in net.parameters() if p.requires_grad]
        graphed = cell.mode == "compiled" and device.type == "cuda"

        def autocast() -> contextlib.AbstractContextManager:
            if cell.precision == "bf16":
                return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
            return contextlib.nullcontext()

        loss_at = torch_train.batch_loss(net, task.loss, x_train, y_train, autocast)
        facts: dict[str, Any] = {"memory_format": "channels_last" if torch_model.is_conv_net(spec) else "contiguous"}
        if cell.mode == "compiled" and "LSTM" not in spec.layer_kinds():
            optimizer = torch_optim.FunctionalOptimizer(params, cell.hp)
            step = torch_train.whole_step(net, task.loss, x_train, y_train, autocast, optimizer)
            reset = optimizer.reset
            facts["optimizer"] = optimizer.describe()
            facts["step"] = ("torch.compile of the whole step in one graph: torch.func.grad of the functional "
                             "forward and loss, and the update")
        else:
            optimizer = torch_optim.make_optimizer(params, cell.hp, capturable=graphed)
            facts["optimizer"] = type(optimizer).__name__
            facts["optimizer_args"] = {k: v for k, v in optimizer.defaults.items() if not isinstance(v, torch.Tensor)}
            if cell.hp.l1:
                facts["l1"] = f"l1 * torch.sign(w) added to every gradient before optimizer.step (l1={cell.hp.l1:g})"

            def reset() -> None:
                torch_optim.reset_state(optimizer, cell.hp)
                optimizer.zero_grad(set_to_none=True)  # grads are then allocated from the graph's private pool

            if cell.mode == "eager":
                step = torch_train.eager_step(loss_at, optimizer, cell.hp.l1)
                facts["step"] = "eager: zero_grad, forward, loss, backward, optimizer.step"
            else:
                step = torch_train.compiled_step(loss_at, optimizer, cell.hp.l1)
                facts["step"] = ("torch.compile(forward+loss; inductor also compiles its backward) + "
                                 "torch.compile(optimizer.step)")
                facts["lstm"] = ("nn.LSTM runs as ATen's fused LSTM op between compiled graphs (dynamo does not "
                                 "trace RNN modules); an unrolled LSTM compiled by inductor, and the LSTM under "
                                 "torch.func.grad in one graph, measured ~3x slower on CPU")
        if cell.mode == "compiled":
            facts["inductor_compile_threads"] = torch._inductor.config.compile_threads
            if device.type == "cpu":
                with compile_clock.aside():  # inductor's one-off set-up, not this model's compile (README)
                    facts["inductor_toolchain_s"] = torch_train.prepare_cpu_toolchain()
                facts["inductor_vec_isa"] = torch_train.cpu_vec_isa()
            if graphed:
                step = torch_train.graphed_step(step, reset, params, cell.hp.batch_size, device, facts)
        return TorchState(task, cell, device, net, optimizer, x_train, y_train, x_test, y_test, loss_at, step,
                          autocast, compile_clock, facts,
                          epoch_events=SteadyEpochEvents(device) if device.type == "cuda" else None)

    def train_epoch(self, state: TorchState, order: np.ndarray) -> TorchState:
        import torch

        rows = torch.from_numpy(order).to(state.device)
        step = state.step
        end = state.epoch_events.begin(rows.shape[0]) if state.epoch_events else None
        for i in range(rows.shape[0]):
            step(rows[i])
        if end is not None:
            state.epoch_events.finish(end)
        return state

    def sync(self, state: TorchState) -> None:
        import torch

        if state.device.type == "cuda":
            torch.cuda.synchronize(state.device)

    def predict(self, state: TorchState, split: str) -> np.ndarray:
        import torch

        x = state.x_train if split == "train" else state.x_test if split == "test" else None
        if x is None:
            raise ValueError(f"unknown split {split!r} (choose from: train, test)")
        outputs = []
        with torch.no_grad(), state.autocast():
            for start in range(0, len(x), PREDICT_BATCH):
                outputs.append(state.net(x[start: start + PREDICT_BATCH]).float().cpu())
        return torch.cat(outputs).numpy()

    def predict_batch(self, state: TorchState, x: np.ndarray) -> Any:
        """Host rows to the device (as build stages data: channels-last NCHW for conv nets), then the forward under
        no_grad: eager, or torch.compile of the network in compiled mode (inductor's default mode, no CUDA
        graphs; recompiled for a new batch size until dynamo marks the batch dimension dynamic)."""
        import torch

        from backends import torch_model

        if state.infer_forward is None:
            state.infer_forward = torch.compile(state.net) if state.cell.mode == "compiled" else state.net
            state.facts["inference"] = INFERENCE_TEXT[state.cell.mode]
        inputs = torch_model.device_inputs(state.task.model(), x, state.device)
        with torch.no_grad(), state.autocast():
            return state.infer_forward(inputs)

    def outputs_to_host(self, state: TorchState, outputs: Any) -> np.ndarray:
        return outputs.float().cpu().numpy()

    def loss(self, state: TorchState, indices: np.ndarray) -> float:
        import torch

        from backends import torch_optim

        with torch.no_grad():
            idx = torch.from_numpy(np.asarray(indices, dtype=np.int64)).to(state.device)
            data_loss = float(state.loss_at(idx))
        trainable = [p for p in state.net.parameters() if p.requires_grad]
        return data_loss + torch_optim.penalty(trainable, state.cell.hp)

    def predict_rows(self, state: TorchState, split: str, rows: np.ndarray) -> np.ndarray:
        import torch

        x = state.x_train if split == "train" else state.x_test if split == "test" else None
        if x is None:
            raise ValueError(f"unknown split {split!r} (choose from: train, test)")
        idx = torch.from_numpy(np.asarray(rows, dtype=np.int64)).to(state.device)
        outputs = []
        with torch.no_grad(), state.autocast():
            for start in range(0, len(idx), PREDICT_BATCH):
                outputs.append(state.net(x[idx[start: start + PREDICT_BATCH]]).float().cpu())
        return torch.cat(outputs).numpy()

    def get_weights(self, state: TorchState) -> Weights:
        from backends import torch_model

        return torch_model.read_weights(state.net, state.task.model())

    def compile_time(self, state: TorchState) -> tuple[float | None, str]:
        seconds, source = state.compile_clock.reading()
        capture_s = state.facts.get("cuda_graph_capture_s")
        if capture_s is not None and seconds is not None:
            seconds, source = seconds + capture_s, source + CAPTURE_SOURCE
        return seconds, source

    def reset_peak_device(self, state: TorchState) -> None:
        import torch

        if state.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(state.device)
            state.memory_at_reset = torch.cuda.memory_allocated(state.device)

    def peak_device_mb(self, state: TorchState) -> float | None:
        """The most the caching allocator held for tensors during training, above what the staged data,
        the model and any optimizer state built ahead already held when it began."""
        import torch

        if state.device.type == "cuda":
            return (torch.cuda.max_memory_allocated(state.device) - state.memory_at_reset) / 2**20
        return None

    def details(self, state: TorchState) -> dict[str, Any]:
        import torch

        facts = {
            "torch_threads": torch.get_num_threads(),
            "torch_interop_threads": torch.get_num_interop_threads(),
            "mkldnn": torch.backends.mkldnn.is_available(),
            "matmul_precision": torch.get_float32_matmul_precision(),
            "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
            "tf32_cudnn": torch.backends.cudnn.allow_tf32,
            "autocast": "bf16" if state.cell.precision == "bf16" else None,
            "predict": f"eager forward, no_grad, {PREDICT_BATCH} rows at a time",
            **state.facts,
        }
        if state.device.type == "cuda":
            facts["device_name"] = torch.cuda.get_device_name(state.device)
        if state.epoch_events is not None:
            facts.update(state.epoch_events.facts())
        return facts


@harness.hookimpl
def bench_backends() -> list[type]:
    return [TorchBackend]
