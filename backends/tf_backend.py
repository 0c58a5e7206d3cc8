"""The TensorFlow backend: raw tf ops, a GradientTape loop, eager or compiled (XLA / graph).

TensorFlow is imported only inside the worker (`import_framework` and after); the network is in
backends/tf_model.py, the update rules in backends/tf_optim.py, the epoch loops in backends/tf_train.py.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from backends.compile_clock import CompileClock
from harness import hookimpl
from harness.api import Backend, Cell, Dataset, Task, Weights

PREDICT_BATCH = 2000

# Compiled mode's way of running an epoch (see tf_train.STRATEGIES). On CPU, the fastest per task as
# measured on a 2-core Xeon (AVX-512, oneDNN on). Whole-epoch programs beat or tie a Python loop of step
# calls everywhere. XLA wins only for the tiny regression (0.8 ms vs 3.7 ms an epoch); for the MLP it ties
# with graph mode (CPU time per step within 5%, graph ahead) and compiles slower; it loses badly on the
# CNN (XLA:CPU convolutions 3x to 100x slower) and the LSTM (about 3x slower, 20-40 s to compile).
CPU_STRATEGY: dict[str, str] = {
    "linear_regression": "xla_epoch",
    "mnist_mlp": "graph_epoch",
    "mnist_cnn": "graph_epoch",
    "mnist_lstm": "graph_epoch",
}
# CUDA (unmeasured: no GPU build of TensorFlow was at hand): these workloads are launch-bound on a
# GPU, so one XLA program per epoch, with XLA handing convolutions to cuDNN.
CUDA_STRATEGY = "xla_epoch"
# TF times tracing in Python (a counter any caller can read), but the graph optimisation and the XLA
# compile at a function's first call only in C++ metrics (/tensorflow/core/graph_optimization_usecs,
# /tensorflow/core/xla_compilation_time_usecs) that Python cannot read: registering the same name from
# Python gives a detached counter that stays at 0 (checked with TF 2.21).
COMPILE_SOURCE = ("tf.function tracing only (TF's graph_building_time_usecs counter); graph optimisation and "
                  "XLA compile at the first call are not exposed")


def tracing_seconds_reader() -> Callable[[], float] | None:
    """TF's own running total of tf.function tracing (graph building) time in this process, as a
    function that reads it; None where this TF version keeps no such counter."""
    try:
        from tensorflow.python.eager.polymorphic_function import tracing_compilation

        cell = tracing_compilation._graph_building_time_counter.get_cell()
    except (ImportError, AttributeError):
        return None
    return lambda: cell.value() / 1e6  # microseconds


@dataclass
class TFState:
    net: Any  # tf_model.Net
    optimizer: Any  # tf_optim.Optimizer
    programs: Any  # tf_train.Programs
    device: str  # "/CPU:0" or "/GPU:0"
    train: tuple[Any, Any]  # x, y resident on the device
    test: tuple[Any, Any]
    compile_clock: CompileClock | None  # None: this TF does not time its tracing
    facts: dict[str, Any] = field(default_factory=dict)
    memory_at_reset: int = 0  # bytes in use on the GPU when training began


class TensorFlowBackend(Backend):
    name = "tensorflow"
    module = "tensorflow"
    distributions = ("tensorflow", "tensorflow-cpu")
    modes = ("eager", "compiled")
    devices = ("cpu", "cuda")
    precisions = ("fp32", "tf32", "bf16")
    penalties = frozenset({"weight_decay", "l1"})

    @classmethod
    def compiled_strategy(cls, task_name: str, device: str) -> str:
        """Which of STRATEGIES compiled mode uses; a subclass (or a measurement) may choose others."""
        if device == "cuda":
            return CUDA_STRATEGY
        return CPU_STRATEGY.get(task_name, "graph_epoch")

    @classmethod
    def unsupported_reason(cls, task: Task, cell: Cell) -> str | None:
        reason = super().unsupported_reason(task, cell)
        if reason is None and cell.device == "cpu" and cell.precision != "fp32":
            reason = (f"precision {cell.precision!r} is offered on cuda only "
                      "(TF32 is a GPU mode; bf16 unmeasured on CPU)")
        return reason

    # -- worker side -------------------------------------------------------

    def configure(self, cell: Cell) -> dict[str, str]:
        # oneDNN kernels (TF's x86 default, pinned here unless the user set it): measured 2-3x faster
        # convolutions on the 2-core Xeon, eager and graph alike.
        env = {"TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
               "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1")}
        if cell.device == "cuda":
            env["TF_FORCE_GPU_ALLOW_GROWTH"] = "true"  # no preallocation: peak memory means what the model used
        return env

    def import_framework(self, cell: Cell) -> None:
        import tensorflow as tf

        # Thread pools are fixed when the runtime starts, i.e. before the first op.
        threads = cell.thread_count()
        for set_threads in (tf.config.threading.set_intra_op_parallelism_threads,
                            tf.config.threading.set_inter_op_parallelism_threads):
            try:
                set_threads(threads)
            except RuntimeError:  # runtime already started in this process (cells run in-process by tests);
                pass  # details() reports the counts actually in force
        if cell.device == "cuda":
            for gpu in tf.config.list_physical_devices("GPU"):
                try:
                    tf.config.experimental.set_memory_growth(gpu, True)  # no preallocation
                except (RuntimeError, ValueError):  # runtime already started: keep what it has
                    pass
        # fp32 means fp32: TF32 matmuls/convs only when asked for (TF enables them by default on Ampere+).
        tf.config.experimental.enable_tensor_float_32_execution(cell.precision == "tf32")

    def device_problem(self, cell: Cell) -> str | None:
        import tensorflow as tf

        if cell.device == "cuda" and not tf.config.list_physical_devices("GPU"):
            return "TensorFlow sees no GPU (tensorflow-cpu has no CUDA; install tensorflow[and-cuda])"
        return None

    def build(self, task: Task, cell: Cell, data: Dataset, weights: Weights) -> TFState:
        import tensorflow as tf

        from backends.tf_model import Net
        from backends.tf_optim import IMPLEMENTATION, Optimizer
        from backends.tf_train import EAGER, STRATEGIES, make_programs

        read_tracing = tracing_seconds_reader()
        compile_clock = (CompileClock(read_tracing, COMPILE_SOURCE, expected=cell.mode == "compiled")
                         if read_tracing else None)
        device = "/GPU:0" if cell.device == "cuda" else "/CPU:0"
        compute_dtype = tf.bfloat16 if cell.precision == "bf16" else tf.float32
        label_dtype = np.int64 if task.loss == "cross_entropy" else np.float32
        strategy = self.compiled_strategy(task.name, cell.device) if cell.mode == "compiled" else None

        with tf.device(device):  # data, parameters and slots resident on the device, copied once
            def put(array: np.ndarray, dtype) -> tf.Tensor:
                return tf.identity(tf.constant(np.asarray(array, dtype)))

            train = (put(data.x_train, np.float32), put(data.y_train, label_dtype))
            test = (put(data.x_test, np.float32), put(data.y_test, label_dtype))
            net = Net(task.model(), weights)
            optimizer = Optimizer(cell.hp, net.variables_in_order)
            programs = make_programs(net, optimizer, task.loss, compute_dtype, train, cell.hp.batch_size, strategy)

        facts = {
            "model": "raw tf ops: tf.Variable + tf.nn (Keras not used)",
            "optimizer": f"{cell.hp.optimizer}, the spec's rule: {IMPLEMENTATION[cell.hp.optimizer]}",
            "compiled": STRATEGIES[strategy] if strategy else EAGER,
            "strategy": strategy or "eager",
            "device": device,
            "compute_dtype": compute_dtype.name,
            "sync": "host read (.numpy()) of the last-updated parameter",
        }
        return TFState(net, optimizer, programs, device, train, test, compile_clock, facts)

    def train_epoch(self, state: TFState, order: np.ndarray) -> TFState:
        import tensorflow as tf

        with tf.device(state.device):
            state.programs.run_epoch(tf.identity(tf.constant(order, tf.int64)))  # the order goes over once
        return state

    def sync(self, state: TFState) -> None:
        import tensorflow as tf

        # A host read of the parameter updated last in a step: its value needs the whole forward,
        # backward and update, and on a GPU the device-to-host copy is also ordered after everything
        # already queued on the compute stream. (On CPU, TF ops return only when done.)
        with tf.device(state.device):
            state.net.variables_in_order[-1].read_value().numpy()

    def predict(self, state: TFState, split: str) -> np.ndarray:
        import tensorflow as tf

        if split not in ("train", "test"):
            raise ValueError(f"unknown split {split!r} (choose from: train, test)")
        x, _ = state.train if split == "train" else state.test
        with tf.device(state.device), _aside(state):
            chunks = [state.programs.forward(x[i: i + PREDICT_BATCH]).numpy()
                      for i in range(0, x.shape[0], PREDICT_BATCH)]
        return np.concatenate(chunks)

    def predict_batch(self, state: TFState, x: np.ndarray) -> Any:
        """Host rows to the device (tf.constant under the cell's device), then the mode's forward: the Python
        forward op by op in eager; in compiled, the tf.function the evaluations use, which follows the compiled
        strategy (XLA where it trains with XLA, else a graph), traced once for any batch size (XLA compiles
        each size at its first call). The outputs stay on the device; sync's host read of a parameter is
        ordered after them on a GPU, and on a CPU TF returns when done."""
        import tensorflow as tf

        if "inference" not in state.facts:
            strategy = state.facts["strategy"]
            compiled = "XLA" if strategy.startswith("xla") else "graph, no XLA"
            state.facts["inference"] = (
                "predict_batch: tf.constant(x) on the device, then "
                + ("the forward op by op (no tf.function)" if strategy == "eager" else
                   f"the forward in one tf.function ({compiled}, the evaluations' program)")
                + "; outputs left on the device")
        with tf.device(state.device):
            return state.programs.forward(tf.constant(x))

    def outputs_to_host(self, state: TFState, outputs: Any) -> np.ndarray:
        return outputs.numpy()

    def loss(self, state: TFState, indices: np.ndarray) -> float:
        import tensorflow as tf

        from backends.tf_optim import penalty

        with tf.device(state.device), _aside(state):
            idx = tf.constant(np.asarray(indices, np.int64))
            x_all, y_all = state.train
            data_loss = float(state.programs.batch_loss(tf.gather(x_all, idx), tf.gather(y_all, idx)).numpy())
            return data_loss + penalty(state.optimizer.hp, state.net.variables_in_order)

    def predict_rows(self, state: TFState, split: str, rows: np.ndarray) -> np.ndarray:
        import tensorflow as tf

        if split not in ("train", "test"):
            raise ValueError(f"unknown split {split!r} (choose from: train, test)")
        x, _ = state.train if split == "train" else state.test
        rows = np.asarray(rows, np.int64)
        with tf.device(state.device), _aside(state):
            chunks = [state.programs.forward(tf.gather(x, tf.constant(rows[i: i + PREDICT_BATCH]))).numpy()
                      for i in range(0, len(rows), PREDICT_BATCH)]
        return np.concatenate(chunks)

    def get_weights(self, state: TFState) -> Weights:
        return state.net.get_weights()

    def compile_time(self, state: TFState) -> tuple[float, str] | None:
        # None: a TF without the graph-building counter, whose compile time nothing in Python can read.
        return state.compile_clock.reading() if state.compile_clock else None

    def reset_peak_device(self, state: TFState) -> None:
        if state.device == "/GPU:0":
            import tensorflow as tf

            tf.config.experimental.reset_memory_stats("GPU:0")
            state.memory_at_reset = tf.config.experimental.get_memory_info("GPU:0")["current"]

    def peak_device_mb(self, state: TFState) -> float | None:
        """The most TF's GPU allocator held during training, above what the staged data, the model and
        the optimizer slots already held when it began."""
        if state.device != "/GPU:0":
            return None
        import tensorflow as tf

        return (tf.config.experimental.get_memory_info("GPU:0")["peak"] - state.memory_at_reset) / 2**20

    def details(self, state: TFState) -> dict[str, Any]:
        import tensorflow as tf

        return {
            **state.facts,
            "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
            "onednn_opts": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
            "tf32_enabled": tf.config.experimental.tensor_float_32_execution_enabled(),
        }


def _aside(state: TFState) -> Any:
    """The harness scoring the model: what TF traces for it is not training's compile time."""
    return state.compile_clock.aside() if state.compile_clock else contextlib.nullcontext()


@hookimpl
def bench_backends():
    return [TensorFlowBackend]
