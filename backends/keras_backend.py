"""Keras 3 backends: the task's model written the way the seeds write it, trained by model.fit on one engine.

keras-tensorflow, keras-jax and keras-torch build a keras.Sequential of Keras's own layers, compile it
with Keras's loss, metric and optimizers (backends/keras_model.py, keras_optim.py) and train one
`model.fit` call per epoch on the harness's batch order (keras_feed.py). eager is
`run_eagerly=True`; compiled is `jit_compile=True` (XLA on TensorFlow and JAX, torch.compile on
PyTorch); default is `model.compile(optimizer, loss, metrics)` and nothing more, as the seeds call it,
with whatever Keras resolves `jit_compile="auto"` to on the engine and machine (recorded in details:
no XLA for TensorFlow on a CPU-only machine, jax.jit on JAX, no torch.compile on torch). default is
the last mode, the one a run without --mode takes: the Keras rows then say what the seeds' users run,
and forced XLA is not Keras's best everywhere (issue 22: the seed's CNN program, Keras's defaults on
TensorFlow on a CPU, ran its steady epochs at 11.6-14.5 s, keras-tensorflow compiled at 17.4-20.2 s).
The engine is chosen per cell through KERAS_BACKEND before Keras is imported, and gets the same
process settings as the native backend on that engine (threads, log level, no preallocation,
TF32 off), so the two differ only by Keras.

Neither Keras nor an engine is imported here at module level: the parent process never imports one.
"""

from __future__ import annotations

import contextlib
import os
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterator

import numpy as np

from backends.compile_clock import SpanUnion
from backends.jax_backend import JaxBackend
from backends.tf_backend import TensorFlowBackend
from backends.torch_backend import TorchBackend
from harness import hookimpl
from harness.api import Availability, Backend, Cell, Dataset, Task, Weights, load_ref
from harness.model import ModelSpec

PREDICT_BATCH = 2000
PYDATASET = ("keras.utils.PyDataset (backends/keras_feed.py): batch i = (x[order[i]], y[order[i]]) gathered from "
             "host numpy arrays in fit's loop, workers=1, no multiprocessing; shuffle=False")
TF_DATA = ("tf.data (backends/keras_feed.py): Dataset.from_tensor_slices(order).map(gather from host tensors, "
           "num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE): Keras's own array pipeline with the harness's order in "
           "place of its permutation")
FIT = ("model.fit(batches, epochs=1, verbose=0, shuffle=False): one call per epoch, steps_per_execution=1, no "
       "callbacks but a recompile_guard where details name one")


@dataclass
class KerasState:
    spec: ModelSpec
    device: str  # the cell's: cpu or cuda
    model: Any  # keras.Sequential, compiled
    loss_fn: Any  # the keras.losses.Loss object given to compile
    train: tuple[np.ndarray, np.ndarray]  # host numpy arrays
    test: tuple[np.ndarray, np.ndarray]
    feed: Any = None  # engine-specific staged copy of the training arrays (tf.data's tensors)
    facts: dict[str, Any] = field(default_factory=dict)
    mode: str = "eager"  # the cell's
    predict_call: Any = None  # inference cells: what predict_batch calls (backends/keras_inference.py)
    pending: Any = None  # the last predict_batch's outputs, which sync waits for where the engine is asynchronous
    memory_at_reset: Any = None  # device memory when training began: peak_device_mb counts above it


class TrainingCompileSpans:
    """The compile spans the engine reports while a training epoch runs (evaluation's compiles between epochs
    are not counted), as the length of their union: a compile nested in another counts once, as for the
    native JAX backend (backends/compile_clock.py SpanUnion)."""

    def __init__(self) -> None:
        self.union = SpanUnion()
        self.active = False
        self.reported = False  # any span seen at all: a compiled mode that saw none did not read its counter

    @contextlib.contextmanager
    def training(self) -> Iterator[None]:
        self.active = True
        try:
            yield
        finally:
            self.active = False

    def add(self, start: float, end: float) -> None:
        self.reported = True
        if self.active:
            self.union.add(start, end)

    def reading(self, source: str, compiles: bool) -> tuple[float | None, str]:
        if compiles and not self.reported:
            return None, f"unknown: {source} reported nothing though this mode compiles (renamed events?)"
        return self.union.total(), source


class KerasBackend(Backend):
    """What the three engines share; a subclass names its engine and the native backend on it."""

    engine: ClassVar[str]  # KERAS_BACKEND's value
    native: ClassVar[type[Backend]]  # the native backend on the same engine: its process settings are reused
    compiled_text: ClassVar[str]  # what jit_compile=True does on this engine
    uncompiled_text: ClassVar[str]  # what jit_compile=False without run_eagerly does on this engine
    sync_text: ClassVar[str]  # how sync waits
    feeding_text: ClassVar[str] = PYDATASET
    module = "keras"
    in_default_run = False  # the native backends are the table a plain run is for; `--backend all` adds these
    distributions = ("keras",)
    modes = ("eager", "compiled", "default")
    devices = ("cpu", "cuda")
    precisions = ("fp32",)
    penalties = frozenset({"weight_decay", "l1"})

    @classmethod
    def availability(cls) -> Availability:
        """Keras and the engine both installed (found without importing either)."""
        keras = super().availability()
        if not keras.ok:
            return keras
        engine = cls.native.availability()
        if not engine.ok:
            return Availability(False, None, f"Keras is installed but its {cls.engine} engine is not ({engine.reason})")
        return keras

    # -- worker side -------------------------------------------------------

    def configure(self, cell: Cell) -> dict[str, str]:
        return {**self.native().configure(cell), "KERAS_BACKEND": self.engine}

    def import_framework(self, cell: Cell) -> None:
        self.clock = TrainingCompileSpans()
        self.engine_backend = self.native()
        self.import_engine(cell)
        import keras

        from backends import keras_feed, keras_model, keras_optim  # noqa: F401 - part of Keras's import cost

        if keras.backend.backend() != self.engine:
            raise RuntimeError(f"Keras was already imported in this process with the {keras.backend.backend()} engine; "
                               f"{self.name} needs a process of its own (KERAS_BACKEND is read once, at import)")
        keras.config.set_floatx("float32")
        keras.config.set_dtype_policy("float32")

    def import_engine(self, cell: Cell) -> None:
        """Import the engine and apply the native backend's process settings, before Keras."""
        self.engine_backend.import_framework(cell)

    def device_problem(self, cell: Cell) -> str | None:
        problem = self.engine_backend.device_problem(cell)
        if problem or cell.mode != "compiled":
            return problem
        return jit_refusal(load_ref(cell.task_ref)())

    def build(self, task: Task, cell: Cell, data: Dataset, weights: Weights) -> KerasState:
        import keras

        from backends import keras_model, keras_optim

        # No keras.utils.set_random_seed: nothing here draws random numbers (the weights are the harness's),
        # and it imports TensorFlow into every engine's process when TensorFlow is installed.
        spec = task.model()
        model = keras_model.build_model(spec, cell.hp.weight_decay, cell.hp.l1)
        model.set_weights(keras_model.to_keras(spec, weights))
        loss_fn = keras_model.loss_object(task.loss)
        compiled = cell.mode == "compiled"
        optimizer, metrics = keras_optim.make_optimizer(cell.hp), [keras_model.metric_object(task.metric)]
        if cell.mode == "default":  # what the seeds call: Keras decides jit_compile ("auto") and the rest
            model.compile(optimizer=optimizer, loss=loss_fn, metrics=metrics)
        else:
            model.compile(optimizer=optimizer, loss=loss_fn, metrics=metrics, run_eagerly=not compiled,
                          jit_compile=compiled, steps_per_execution=1)
        if compiled and not model.jit_compile:  # device_problem skips these cells first; never run eager as compiled
            raise RuntimeError("Keras turned jit_compile off for this model")
        labels = np.int32 if task.loss == "cross_entropy" else np.float32
        train = (np.asarray(data.x_train, np.float32), np.asarray(data.y_train, labels))
        test = (np.asarray(data.x_test, np.float32), np.asarray(data.y_test, labels))
        facts = {
            "keras": keras.__version__,
            "engine": f"{self.engine} {self.native.version()}",
            "model": "keras.Sequential: " + " → ".join(describe_layer(layer) for layer in model.layers),
            "loss": f"{type(loss_fn).__name__} (Keras), metric {task.metric} (Keras)",
            "optimizer": f"{cell.hp.optimizer}: {keras_optim.IMPLEMENTATION[cell.hp.optimizer]}",
            "penalties": describe_regularizer(model, cell.hp.weight_decay, cell.hp.l1),
            "fit": FIT,
            "mode": self.mode_text(cell.mode, bool(model.jit_compile)),
            # What Keras settled on after compile: for `default`, what jit_compile="auto" resolved to here.
            "keras_resolved": {"jit_compile": bool(model.jit_compile), "run_eagerly": bool(model.run_eagerly),
                               "steps_per_execution": int(model.steps_per_execution)},
            "predict": f"model(x, training=False), {PREDICT_BATCH} rows at a time",
            "sync": self.sync_text,
        }
        return KerasState(spec, cell.device, model, loss_fn, train, test, self.stage(train), facts, mode=cell.mode)

    def stage(self, train: tuple[np.ndarray, np.ndarray]) -> Any:
        """The training arrays in the form the feeding path gathers from (numpy: as they are)."""
        return None

    def batches(self, state: KerasState, order: np.ndarray) -> Any:
        """What fit is given for one epoch: the harness's order, batch by batch."""
        from backends.keras_feed import OrderedBatches

        return OrderedBatches(*state.train, order)

    def mode_text(self, mode: str, jit_compile: bool) -> str:
        if mode == "eager":
            return "run_eagerly=True: op by op"
        if mode == "compiled":
            return f"jit_compile=True: {self.compiled_text}"
        resolved = (f"jit_compile=True: {self.compiled_text}" if jit_compile
                    else f"jit_compile=False: {self.uncompiled_text}")
        return f"model.compile() defaults (jit_compile='auto', run_eagerly=False); Keras resolved {resolved}"

    def train_epoch(self, state: KerasState, order: np.ndarray) -> KerasState:
        feed = self.batches(state, order)  # built inside the timed epoch: part of what a Keras user pays
        with self.clock.training():
            state.model.fit(feed, epochs=1, verbose=0, shuffle=False, callbacks=self.fit_callbacks(state))
        return state

    def train_step(self, state: KerasState, batch: np.ndarray) -> KerasState:
        """One step as Keras takes one on its own: model.train_on_batch, not a model.fit call around one batch
        (whose callbacks, data adapter and epoch set-up would be most of a "step")."""
        state.facts["step_latency"] = "model.train_on_batch(x, y), one call per step (host arrays)"
        x, y = state.train
        with self.clock.training():
            state.model.train_on_batch(x[batch], y[batch])
        return state

    def fit_callbacks(self, state: KerasState) -> list:
        """bench's own callbacks for this epoch's fit (none: Keras adds only its History)."""
        return []

    def inference(self) -> contextlib.AbstractContextManager:
        """Context for forward passes that train nothing."""
        return contextlib.nullcontext()

    def predict(self, state: KerasState, split: str) -> np.ndarray:
        from keras import ops

        if split not in ("train", "test"):
            raise ValueError(f"unknown split {split!r} (choose from: train, test)")
        x, _ = state.train if split == "train" else state.test
        with self.inference():
            chunks = [ops.convert_to_numpy(state.model(x[i: i + PREDICT_BATCH], training=False))
                      for i in range(0, len(x), PREDICT_BATCH)]
        return np.concatenate(chunks)

    def predict_batch(self, state: KerasState, x: np.ndarray) -> Any:
        """eager: model(x, training=False); compiled and default: model.predict (keras_inference.CALLS)."""
        from backends import keras_inference

        if state.predict_call is None:
            state.predict_call = keras_inference.call_way(state.model, state.mode, self.inference)
        state.pending = state.predict_call(x)
        return state.pending

    def outputs_to_host(self, state: KerasState, outputs: Any) -> np.ndarray:
        from keras import ops

        return np.asarray(ops.convert_to_numpy(outputs))

    def loss(self, state: KerasState, indices: np.ndarray) -> float:
        from keras import ops

        x, y = state.train
        rows = np.asarray(indices, np.int64)
        with self.inference():
            data_loss = float(ops.convert_to_numpy(state.loss_fn(y[rows], state.model(x[rows], training=False))))
            # The regularizers' terms, as Keras adds them to the loss it trains on (model.losses, computed afresh).
            return data_loss + sum(float(ops.convert_to_numpy(term)) for term in state.model.losses)

    def predict_rows(self, state: KerasState, split: str, rows: np.ndarray) -> np.ndarray:
        from keras import ops

        if split not in ("train", "test"):
            raise ValueError(f"unknown split {split!r} (choose from: train, test)")
        x, _ = state.train if split == "train" else state.test
        rows = np.asarray(rows, np.int64)
        with self.inference():
            chunks = [ops.convert_to_numpy(state.model(x[rows[i: i + PREDICT_BATCH]], training=False))
                      for i in range(0, len(rows), PREDICT_BATCH)]
        return np.concatenate(chunks)

    def get_weights(self, state: KerasState) -> Weights:
        from backends.keras_model import from_keras

        return from_keras(state.spec, state.model.get_weights())

    def details(self, state: KerasState) -> dict[str, Any]:
        facts = {**state.facts, "feeding": self.feeding_text, **self.engine_facts()}
        if state.predict_call is not None:  # an inference cell: name the call it timed, and what the others cost
            from backends import keras_inference

            facts["inference_call"] = keras_inference.CALLS.get(state.mode, state.mode)
            facts["inference_calls_compared"] = keras_inference.compare_calls(state.model, state.test[0][:1],
                                                                              self.inference)
        return facts

    def engine_facts(self) -> dict[str, Any]:
        return {}


def describe_layer(layer: Any) -> str:
    """One Keras layer as its class and the arguments that matter here, e.g. Dense(128, relu). Read off
    the layer's attributes: `get_config()` would import TensorFlow into every engine's process."""
    args = [str(getattr(layer, k)) for k in ("units", "filters") if hasattr(layer, k)]
    args += ["x".join(map(str, getattr(layer, k))) for k in ("kernel_size", "pool_size") if hasattr(layer, k)]
    activation = getattr(getattr(layer, "activation", None), "__name__", None)
    if activation not in (None, "linear"):
        args.append(activation)
    if getattr(layer, "return_sequences", False):
        args.append("sequences")
    return f"{type(layer).__name__}({', '.join(args)})" if args else type(layer).__name__


def describe_regularizer(model: Any, weight_decay: float, l1: float) -> str:
    """The penalties as the model carries them: which regularizer, with what coefficients, on every parameter."""
    if not weight_decay and not l1:
        return "none"
    reg = next((v.regularizer for v in model.trainable_variables if v.regularizer is not None), None)
    name = f"{type(reg).__module__.split('.')[0]}.{type(reg).__name__}" if reg is not None else "no regularizer (!)"
    return (f"{name}(l1={l1:g}, l2={weight_decay / 2:g}) on every parameter: l1 * ||w||_1 + "
            f"(weight_decay / 2) * ||w||^2 added to the loss")


def jit_refusal(task: Task) -> str | None:
    """Keras's own reason when it will not jit-compile the task's model on this engine, else None."""
    import keras

    from backends import keras_model

    model = keras_model.build_model(task.model(), 0.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.compile(optimizer="sgd", loss="mse", jit_compile=True)
    if model.jit_compile:
        return None
    said = "; ".join(str(w.message) for w in caught) or "no reason given"
    return f"Keras {keras.__version__} does not jit-compile this model on {keras.backend.backend()}: {said}"


class KerasTensorFlow(KerasBackend):
    name = "keras-tensorflow"
    engine = "tensorflow"
    native = TensorFlowBackend
    compiled_text = "XLA (Keras's train step in tf.function(jit_compile=True))"
    uncompiled_text = ("Keras's train step in tf.function, a TensorFlow graph without XLA (Keras's 'auto' turns XLA "
                       "off where TensorFlow sees no GPU)")
    sync_text = "host read (.numpy()) of the parameter the optimizer updates last"
    feeding_text = TF_DATA

    @classmethod
    def unsupported_reason(cls, task: Task, cell: Cell) -> str | None:
        reason = super().unsupported_reason(task, cell)
        if (reason is None and cell.mode == "compiled" and cell.device == "cuda"
                and "LSTM" in task.model().layer_kinds()):
            # keras.layers.LSTM takes cuDNN on a TensorFlow GPU and then marks itself not jit-compilable.
            reason = ("Keras runs LSTM on cuDNN on a TensorFlow GPU, which XLA cannot compile: \"Model doesn't support "
                      "`jit_compile=True`. Proceeding with `jit_compile=False`.\"")
        return reason

    def import_engine(self, cell: Cell) -> None:
        import tensorflow as tf

        if cell.device == "cpu":  # Keras places on a GPU when it sees one; a CPU cell must not
            tf.config.set_visible_devices([], "GPU")
        super().import_engine(cell)

    def stage(self, train: tuple[np.ndarray, np.ndarray]) -> Any:
        import tensorflow as tf

        with tf.device("/CPU:0"):  # where Keras keeps arrays it feeds through tf.data
            return tf.constant(train[0]), tf.constant(train[1])

    def batches(self, state: KerasState, order: np.ndarray) -> Any:
        from backends.keras_feed import tf_batches

        return tf_batches(*state.feed, order)

    def sync(self, state: KerasState) -> None:
        # On a GPU the device-to-host copy is ordered after everything queued; on CPU ops return when done.
        state.model.trainable_variables[-1].numpy()

    def reset_peak_device(self, state: KerasState) -> None:
        import tensorflow as tf

        if state.device == "cuda":
            tf.config.experimental.reset_memory_stats("GPU:0")
            state.memory_at_reset = tf.config.experimental.get_memory_info("GPU:0")["current"]

    def peak_device_mb(self, state: KerasState) -> float | None:
        """As the native backends: the peak above what the staged data and the built model held (the schema's
        peak_device_mb), not the allocator's absolute peak."""
        import tensorflow as tf

        if state.device != "cuda":
            return None
        return (tf.config.experimental.get_memory_info("GPU:0")["peak"] - state.memory_at_reset) / 2**20

    def compile_time(self, state: KerasState) -> tuple[float, str] | None:
        if state.model.run_eagerly:
            return 0.0, "run_eagerly=True: Keras traces and compiles no train step"
        return None  # TensorFlow reports neither XLA's compile time nor, to Keras, its tf.function tracing

    def engine_facts(self) -> dict[str, Any]:
        import tensorflow as tf

        return {"intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
                "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
                "onednn_opts": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
                "tf32_enabled": tf.config.experimental.tensor_float_32_execution_enabled(),
                "compile_time": "not reported by TensorFlow (first-epoch excess only)"}


# jax.monitoring's events for the three stages of compiling a program.
JAX_COMPILE_EVENTS = ("/jax/core/compile/jaxpr_trace_duration", "/jax/core/compile/jaxpr_to_mlir_module_duration",
                      "/jax/core/compile/backend_compile_duration")


class KerasJax(KerasBackend):
    name = "keras-jax"
    engine = "jax"
    native = JaxBackend
    compiled_text = "XLA (Keras's train step in jax.jit, one call per batch)"
    uncompiled_text = "no jax.jit: Keras's train step op by op"
    sync_text = "jax.block_until_ready on every model and optimizer variable"

    def import_engine(self, cell: Cell) -> None:
        import jax
        import jax.monitoring

        # fp32 means fp32: no TF32 or bf16 passes for float32 matmuls on a GPU.
        jax.config.update("jax_default_matmul_precision", "highest")
        clock = self.clock

        self.compiles = 0  # XLA programs compiled in this process, for the first epoch's RecompileGuard
        self.guarded = False

        def on_event(event: str, duration: float, **_: Any) -> None:
            if event in JAX_COMPILE_EVENTS:  # reported as it ends: the span is the duration up to now
                now = time.perf_counter()
                clock.add(now - duration, now)
            if event == JAX_COMPILE_EVENTS[-1]:
                self.compiles += 1

        jax.monitoring.register_event_duration_secs_listener(on_event)
        self.jax = jax
        # What JaxBackend.device_problem reads (its own import_framework would also import optax and its
        # model code, which Keras does not use: that would be charged to keras-jax's import time).
        self.engine_backend.jax = jax

    def fit_callbacks(self, state: KerasState) -> list:
        if self.guarded:
            return []
        self.guarded = True  # the first epoch only: later epochs are the conformance suite's to check
        import keras

        from backends.keras_recompile_guard import RecompileGuard

        recurrent = Counter(type(layer).__name__ for layer in state.model.layers if isinstance(layer, keras.layers.RNN))
        why = ("; under run_eagerly=True its " + ", ".join(f"{n} {kind}" for kind, n in recurrent.items())
               + " layers run lax.scan over a new function on every call" if recurrent and not state.model.jit_compile
               else "")
        state.facts["recompile_guard"] = ("first epoch: the cell is skipped if XLA compiles on every one of "
                                          "batches 3-12 (counted at each batch's start, no host sync)")
        return [RecompileGuard(lambda: self.compiles, why)]

    def sync(self, state: KerasState) -> None:
        model = state.model
        variables = [v.value for v in [*model.variables, *model.optimizer.variables]]
        self.jax.block_until_ready([*variables, state.pending])  # the last prediction too: JAX is asynchronous

    def reset_peak_device(self, state: KerasState) -> None:
        state.memory_at_reset = self.engine_backend._memory_stats()

    def peak_device_mb(self, state: KerasState) -> float | None:
        # The native JAX backend's reading (above what training began with; unknown when JAX's unresettable
        # peak did not rise), so the column means one thing for both.
        return self.engine_backend._training_peak(state)[0]

    def compile_time(self, state: KerasState) -> tuple[float | None, str] | None:
        return self.clock.reading("jax.monitoring during training epochs: trace + lower + backend compile (their "
                                  "union)", compiles=True)  # eager too: JAX compiles each op

    def engine_facts(self) -> dict[str, Any]:
        return {"device": str(getattr(self.engine_backend, "device", "?")),
                "matmul_precision": str(self.jax.config.jax_default_matmul_precision),
                "xla_flags": os.environ.get("XLA_FLAGS", "")}


class KerasTorch(KerasBackend):
    name = "keras-torch"
    engine = "torch"
    native = TorchBackend
    compiled_text = ("torch.compile of Keras's train step, default mode: dynamo breaks the graph at loss.backward(), "
                     "so forward and loss are one graph (its backward compiled with it), the optimizer update and "
                     "metrics another; Keras's foreach SGD update does not trace and runs eagerly")
    uncompiled_text = "no torch.compile: Keras's train step in eager PyTorch (Keras's 'auto' on torch)"
    sync_text = "torch.cuda.synchronize on a GPU; CPU ops return when done"

    def configure(self, cell: Cell) -> dict[str, str]:
        return {**super().configure(cell), "KERAS_TORCH_DEVICE": cell.device}

    def build(self, task: Task, cell: Cell, data: Dataset, weights: Weights) -> KerasState:
        state = super().build(task, cell, data, weights)
        if cell.mode == "compiled" and cell.device == "cpu":
            # As the torch backend does: inductor's one-time C++ toolchain work (and its compile workers'
            # start) at setup, so that the first epoch's compile is this model's, as it is for torch.
            from backends.torch_train import cpu_vec_isa, prepare_cpu_toolchain

            state.facts["inductor_toolchain_s"] = prepare_cpu_toolchain()
            state.facts["inductor_vec_isa"] = cpu_vec_isa()
        return state

    def import_engine(self, cell: Cell) -> None:
        super().import_engine(cell)
        import torch._dynamo.callback

        clock = self.clock
        started: list[float] = []

        def on_start(_: Any) -> None:
            started.append(time.perf_counter())

        def on_end(_: Any) -> None:
            if started:
                clock.add(started.pop(), time.perf_counter())

        torch._dynamo.callback.on_compile_start(on_start)
        torch._dynamo.callback.on_compile_end(on_end)

    def inference(self) -> contextlib.AbstractContextManager:
        import torch

        return torch.no_grad()

    def sync(self, state: KerasState) -> None:
        import torch

        if state.device == "cuda":
            torch.cuda.synchronize()

    def reset_peak_device(self, state: KerasState) -> None:
        import torch

        if state.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
            state.memory_at_reset = torch.cuda.memory_allocated()

    def peak_device_mb(self, state: KerasState) -> float | None:
        """Above what the staged data and the built model held, as the native backends count it."""
        import torch

        return (torch.cuda.max_memory_allocated() - state.memory_at_reset) / 2**20 if state.device == "cuda" else None

    def compile_time(self, state: KerasState) -> tuple[float | None, str] | None:
        return self.clock.reading("torch._dynamo compile callbacks during training epochs (dynamo + inductor; "
                                  "nested compiles once)", compiles=bool(state.model.jit_compile))

    def engine_facts(self) -> dict[str, Any]:
        import torch

        return {"torch_threads": torch.get_num_threads(),
                "matmul_precision": torch.get_float32_matmul_precision(),
                "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
                "tf32_cudnn": torch.backends.cudnn.allow_tf32,
                "inductor_vec_isa_ok": os.environ.get("TORCHINDUCTOR_VEC_ISA_OK")}


@hookimpl
def bench_backends() -> list[type]:
    return [KerasTensorFlow, KerasJax, KerasTorch]
