"""The TensorFlow backend: raw tf ops, a GradientTape loop, eager or compiled (XLA / graph).

TensorFlow is imported only inside the worker (`import_framework`); the model and the
optimizer live in backends/tf_model.py and backends/tf_optim.py, which import it at their top.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from harness import hookimpl
from harness.api import Backend, Cell, Dataset, Task, Weights

PREDICT_BATCH = 2000

# How compiled mode runs an epoch:
#   xla_epoch:   the whole epoch (a tf.range loop over the order) in one tf.function(jit_compile=True)
#   xla_step:    one tf.function(jit_compile=True) call per step, looped in Python
#   graph_epoch: the whole epoch in one tf.function without XLA (TF's graph executor, Grappler fusions)
#   graph_step:  one plain tf.function call per step
STRATEGIES = ("xla_epoch", "xla_step", "graph_epoch", "graph_step")
# CPU: the fastest of the four per task, measured on a 2-core Xeon (AVX-512, oneDNN on). XLA:CPU
# loses badly wherever convolutions or the LSTM's many small matmuls are involved.
CPU_STRATEGY: dict[str, str] = {
    "linear_regression": "xla_epoch",
    "mnist_mlp": "xla_epoch",
    "mnist_cnn": "graph_epoch",
    "mnist_lstm": "graph_epoch",
}
# CUDA (unmeasured: no GPU build of TensorFlow was at hand): these workloads are launch-bound on a
# GPU, so one XLA program per epoch, convolutions going to cuDNN through XLA.
CUDA_STRATEGY = "xla_epoch"


@dataclass
class TFState:
    net: Any  # tf_model.Net
    optimizer: Any  # tf_optim.Optimizer
    device: str  # "/CPU:0" or "/GPU:0"
    mode: str
    strategy: str | None  # compiled mode only
    compute_dtype: Any
    train: tuple[Any, Any]  # x, y on the device
    test: tuple[Any, Any]
    run_epoch: Callable[[Any], None]  # order tensor -> None
    forward: Callable[[Any], Any]  # inputs -> fp32 outputs
    batch_loss: Callable[[Any, Any], Any]  # inputs, targets -> scalar loss
    probe: Callable[[], Any]  # the last-updated parameter, read on the host by sync
    facts: dict[str, Any] = field(default_factory=dict)


class TensorFlowBackend(Backend):
    name = "tensorflow"
    module = "tensorflow"
    distributions = ("tensorflow", "tensorflow-cpu")
    modes = ("eager", "compiled")
    devices = ("cpu", "cuda")
    precisions = ("fp32", "tf32", "bf16")

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
            reason = f"precision {cell.precision!r} is offered on cuda only (TF32 is a GPU mode; bf16 unmeasured on CPU)"
        return reason

    # -- worker side -------------------------------------------------------

    def configure(self, cell: Cell) -> dict[str, str]:
        # oneDNN kernels (TF's x86 default, pinned here unless the user set it): measured 2-3x faster
        # convolutions on the 2-core Xeon, eager and graph alike.
        return {"TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
                "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1")}

    def import_framework(self, cell: Cell) -> None:
        import tensorflow as tf

        # Thread pools are fixed when the runtime starts, i.e. before the first op.
        threads = cell.threads or len(os.sched_getaffinity(0))
        for setter, getter in ((tf.config.threading.set_intra_op_parallelism_threads,
                                tf.config.threading.get_intra_op_parallelism_threads),
                               (tf.config.threading.set_inter_op_parallelism_threads,
                                tf.config.threading.get_inter_op_parallelism_threads)):
            try:
                setter(threads)
            except RuntimeError:  # already running in this process (several cells in one test process)
                pass
        self.threads_requested = threads
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

        from backends.tf_model import Net, loss_fn
        from backends.tf_optim import IMPLEMENTATION, Optimizer

        device = "/GPU:0" if cell.device == "cuda" else "/CPU:0"
        compute_dtype = tf.bfloat16 if cell.precision == "bf16" else tf.float32
        label_dtype = np.int64 if task.loss == "cross_entropy" else np.float32

        with tf.device(device):  # everything resident on the device, copied once
            def put(array: np.ndarray, dtype=None) -> tf.Tensor:
                return tf.identity(tf.constant(np.asarray(array, dtype=dtype or array.dtype)))

            train = (put(data.x_train, np.float32), put(data.y_train, label_dtype))
            test = (put(data.x_test, np.float32), put(data.y_test, label_dtype))
            net = Net(task.model(), weights)
            variables = net.variables_in_order
            optimizer = Optimizer(cell.hp, variables)

        def batch_loss(x, y):
            return loss_fn(task.loss, net(x, compute_dtype), y)

        def step(x, y):
            with tf.GradientTape() as tape:
                loss = batch_loss(x, y)
            optimizer.apply(tape.gradient(loss, variables), variables)

        def epoch_loop(x_all, y_all, order):
            for i in tf.range(tf.shape(order)[0]):  # autograph: a tf.while_loop over the steps
                idx = order[i]
                step(tf.gather(x_all, idx), tf.gather(y_all, idx))

        def step_at(x_all, y_all, idx):
            step(tf.gather(x_all, idx), tf.gather(y_all, idx))

        x_all, y_all = train
        strategy = None
        if cell.mode == "eager":
            def run_epoch(order):
                for idx in tf.unstack(order):
                    step_at(x_all, y_all, idx)

            forward = lambda x: net(x, compute_dtype)  # noqa: E731
            loss_of = batch_loss
        else:
            strategy = self.compiled_strategy(task.name, cell.device)
            if strategy not in STRATEGIES:
                raise ValueError(f"unknown compiled strategy {strategy!r}")
            jit = strategy.startswith("xla")
            order_spec = tf.TensorSpec([None, cell.hp.batch_size], tf.int64)
            data_spec = (tf.TensorSpec(x_all.shape, x_all.dtype), tf.TensorSpec(y_all.shape, y_all.dtype))
            if strategy.endswith("epoch"):
                compiled_epoch = tf.function(epoch_loop, jit_compile=jit, input_signature=(*data_spec, order_spec))

                def run_epoch(order):
                    compiled_epoch(x_all, y_all, order)
            else:
                compiled_step = tf.function(step_at, jit_compile=jit,
                                            input_signature=(*data_spec, tf.TensorSpec([None], tf.int64)))

                def run_epoch(order):
                    for idx in tf.unstack(order):
                        compiled_step(x_all, y_all, idx)

            x_spec = tf.TensorSpec([None, *x_all.shape[1:]], x_all.dtype)
            y_spec = tf.TensorSpec([None, *y_all.shape[1:]], y_all.dtype)
            forward = tf.function(lambda x: net(x, compute_dtype), jit_compile=jit, input_signature=(x_spec,))
            loss_of = tf.function(batch_loss, jit_compile=jit, input_signature=(x_spec, y_spec))

        # The clock barrier: a host read of the parameter updated last in a step. Its value needs the
        # whole forward, backward and update; on a GPU the device-to-host copy is also ordered after
        # everything already queued on the compute stream. On CPU, TF ops return only when done.
        last = variables[-1]
        probe = last.read_value

        facts = {
            "model": "raw tf ops: tf.Variable + tf.nn (Keras not used)",
            "optimizer": f"{cell.hp.optimizer}, the spec's rule: {IMPLEMENTATION[cell.hp.optimizer]}",
            "compiled": _describe(cell.mode, strategy),
            "device": device,
            "compute_dtype": compute_dtype.name,
            "sync": "host read (.numpy()) of the last-updated parameter",
        }
        return TFState(net, optimizer, device, cell.mode, strategy, compute_dtype, train, test, run_epoch,
                       forward, loss_of, probe, facts)

    def train_epoch(self, state: TFState, order: np.ndarray) -> TFState:
        import tensorflow as tf

        with tf.device(state.device):
            state.run_epoch(tf.identity(tf.constant(order, tf.int64)))  # the order goes to the device once
        return state

    def sync(self, state: TFState) -> None:
        with _on(state.device):
            state.probe().numpy()

    def predict(self, state: TFState, split: str) -> np.ndarray:
        x, _ = state.train if split == "train" else state.test if split == "test" else (None, None)
        if x is None:
            raise ValueError(f"unknown split {split!r} (choose from: train, test)")
        with _on(state.device):
            chunks = [state.forward(x[i: i + PREDICT_BATCH]).numpy() for i in range(0, x.shape[0], PREDICT_BATCH)]
        return np.concatenate(chunks)

    def loss(self, state: TFState, indices: np.ndarray) -> float:
        import tensorflow as tf

        with _on(state.device):
            idx = tf.constant(np.asarray(indices, np.int64))
            x_all, y_all = state.train
            return float(state.batch_loss(tf.gather(x_all, idx), tf.gather(y_all, idx)).numpy())

    def get_weights(self, state: TFState) -> Weights:
        return state.net.get_weights()

    def peak_device_mb(self, state: TFState) -> float | None:
        if state.device != "/GPU:0":
            return None
        import tensorflow as tf

        return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20

    def details(self, state: TFState) -> dict[str, Any]:
        import tensorflow as tf

        return {
            **state.facts,
            "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
            "onednn_opts": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
            "tf32_enabled": tf.config.experimental.tensor_float_32_execution_enabled(),
        }


def _on(device: str):
    import tensorflow as tf

    return tf.device(device)


def _describe(mode: str, strategy: str | None) -> str:
    if mode == "eager":
        return "nothing: GradientTape loop op by op (no tf.function)"
    return {
        "xla_epoch": "whole epoch (tf.range loop over the order) in one tf.function(jit_compile=True)",
        "xla_step": "train step (forward, backward, update) in tf.function(jit_compile=True), Python loop",
        "graph_epoch": "whole epoch (tf.range loop over the order) in one tf.function (graph, no XLA)",
        "graph_step": "train step (forward, backward, update) in tf.function (graph, no XLA), Python loop",
    }[strategy]


@hookimpl
def bench_backends():
    return [TensorFlowBackend]
