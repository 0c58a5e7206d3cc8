"""The JAX backend: a pure function over a params pytree, trained with optax.

eager:    jax.grad of the un-jitted loss and the optax update, dispatched op by op
          in a Python loop over the batches (LSTM: a Python loop over the time steps).
compiled: jax.jit of the whole step, params and optimizer state donated; the whole
          epoch is one program (lax.scan over the rows of the order) except where
          a jitted step driven from Python measured faster (the CNN on CPU).
predict and loss follow the mode (un-jitted in eager, jitted in compiled), so a
mode's eval_s is that mode's own cost.

No JAX import at module level: the parent process never imports a framework.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from backends import jax_loops
from backends.compile_clock import CompileClock, SpanUnion
from harness import hookimpl
from harness.api import Backend, Cell, Dataset, Task, Weights

PREDICT_BATCH = 2000
# Every JAX compile goes through these phases, each reported to jax.monitoring as a time span: un-jitted
# (eager) code too, whose every primitive is compiled, once per shape, the first time it runs.
COMPILE_EVENTS = frozenset({"/jax/core/compile/jaxpr_trace_duration",
                            "/jax/core/compile/jaxpr_to_mlir_module_duration",
                            "/jax/core/compile/backend_compile_duration"})
COMPILE_SOURCE = "jax.monitoring: trace + lower to MLIR + XLA compile"
# One per process: jax.monitoring keeps its listeners for the life of the process, so cells run one
# after another in one process (tests) share this one and each counts from its own build on.
_compile_spans = SpanUnion()
_listening = False
# bf16: every matmul and conv gets bf16 operands, so the default precision is the bf16 one.
MATMUL_PRECISION = {"fp32": "highest", "tf32": "tensorfloat32", "bf16": "default"}


@dataclass
class JaxState:
    params: Any
    opt_state: Any
    data: dict[str, Any]  # x_train, y_train, x_test, y_test on the device
    epoch: Any
    apply: Any
    loss_fn: Any
    compile_clock: CompileClock
    info: dict[str, Any] = field(default_factory=dict)
    memory_at_reset: dict[str, int] | None = None  # the device's memory stats when training began
    pending: Any = None  # inference cells: the last predict_batch's outputs, which sync waits for
    hp: Any = None  # the cell's Hyperparams: the penalties `loss` adds


def _describe(jax: Any, device: Any, cell: Cell, task: Task, epoch_loop: str, time_loop: str, opt_text: str,
              compute_dtype: str) -> dict[str, Any]:
    """The facts details() records: what runs, how it was compiled, threads and precision."""
    compiled = cell.mode == "compiled"
    threads = cell.thread_count()
    if compiled:
        train_step = ("jax.jit of the whole step (forward, backward, optax update), params and optimizer state "
                      "donated; " + ("lax.scan over the epoch's steps in one program" if epoch_loop == "scan"
                                     else "Python loop over the jitted step"))
    else:
        train_step = "op by op: jax.grad of the un-jitted loss, un-jitted optax update, Python loop over steps"
    info: dict[str, Any] = {
        "jax": jax.__version__,
        "device": str(device),
        "train_step": train_step,
        "epoch_loop": epoch_loop,
        "optimizer": opt_text,
        "matmul_precision": str(jax.config.jax_default_matmul_precision),
        "compute_dtype": compute_dtype,
        "predict": f"{'jax.jit' if compiled else 'op by op'}, batches of {PREDICT_BATCH}",
        "threads": threads,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }
    kinds = task.model().layer_kinds()
    if cell.device == "cpu":
        info["xla_cpu_thread_pool"] = f"sized by XLA from the affinity mask ({threads} cores)"
        if compiled and epoch_loop == "step" and "Conv2D" in kinds:
            info["epoch_loop_why"] = jax_loops.STEP_REASON
    if "LSTM" in kinds:
        loop = "lax.scan" if time_loop == "scan" else ("unrolled in the program" if compiled else "Python loop")
        info["lstm"] = f"input projection hoisted out of the time loop; time loop: {loop}"
    if "MaxPool2D" in kinds:
        info["max_pool"] = "reshape + max (faster than lax.reduce_window's gradient on CPU)"
    return info


class JaxBackend(Backend):
    name = "jax"
    module = "jax"
    distributions = ("jax",)
    modes = ("eager", "compiled")
    devices = ("cpu", "cuda")
    precisions = ("fp32", "tf32", "bf16")
    penalties = frozenset({"weight_decay", "l1"})

    @classmethod
    def settings_problem(cls) -> str | None:
        return jax_loops.settings_problem()

    @classmethod
    def unsupported_reason(cls, task: Task, cell: Cell) -> str | None:
        reason = super().unsupported_reason(task, cell)
        if reason is None and cell.precision == "tf32" and cell.device != "cuda":
            return "tf32 is a CUDA matmul mode; on CPU it would be fp32 under another name"
        return reason

    # -- worker side -------------------------------------------------------

    def configure(self, cell: Cell) -> dict[str, str]:
        # jaxlib's C++ logging (XLA, PJRT) reads TF_CPP_MIN_LOG_LEVEL: errors only unless the user says otherwise.
        env = {"JAX_PLATFORMS": "cuda" if cell.device == "cuda" else "cpu",
               "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
        if cell.device == "cuda":
            env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
        # XLA's CPU thread pool is sized from the affinity mask the harness set; with one core,
        # also keep Eigen's matmuls/convs on the calling thread instead of handing them to the pool.
        flags = os.environ.get("XLA_FLAGS", "")
        if cell.thread_count() == 1 and "--xla_cpu_multi_thread_eigen" not in flags:
            flags = f"{flags} --xla_cpu_multi_thread_eigen=false".strip()
        if flags:
            env["XLA_FLAGS"] = flags
        return env

    def import_framework(self, cell: Cell) -> None:
        import jax
        import optax  # noqa: F401 - part of the framework's import cost

        from backends import jax_model, jax_optim, jax_train  # noqa: F401

        jax.config.update("jax_default_matmul_precision", MATMUL_PRECISION[cell.precision])
        _listen_for_compiles(jax)
        self.jax = jax

    def device_problem(self, cell: Cell) -> str | None:
        platform = "gpu" if cell.device == "cuda" else "cpu"
        try:
            self.device = self.jax.devices(platform)[0]
        except (RuntimeError, ValueError) as exc:
            lines = [line for line in str(exc).splitlines() if line.strip()]
            return f"JAX sees no {cell.device} device ({lines[-1].strip() if lines else type(exc).__name__})"
        return None

    def build(self, task: Task, cell: Cell, data: Dataset, weights: Weights) -> JaxState:
        import jax
        import jax.numpy as jnp

        from backends import jax_model, jax_optim, jax_train

        if not hasattr(self, "device"):  # build without the worker's device_problem call (tests)
            problem = self.device_problem(cell)
            if problem:
                raise RuntimeError(problem)
        compile_clock = CompileClock(_compile_spans.total, COMPILE_SOURCE, expected=True)  # eager compiles each op
        compiled = cell.mode == "compiled"
        epoch_loop, time_loop = jax_loops.loops_for(task.name, cell.device, compiled)
        compute_dtype = jnp.bfloat16 if cell.precision == "bf16" else jnp.float32

        apply = jax_model.make_apply(task.model().layers, time_loop, compute_dtype)
        loss_fn = jax_model.make_loss(apply, task.loss)
        opt, opt_text = jax_optim.make_optimizer(cell.hp)
        step = jax_train.make_step(loss_fn, opt)
        if compiled:
            epoch = jax_train.compiled_epoch(step, epoch_loop)
            apply, loss_fn = jax.jit(apply), jax.jit(loss_fn)
        else:
            epoch = jax_train.eager_epoch(step)

        put = lambda a: jax.device_put(a, self.device)  # noqa: E731
        device_data = {"x_train": put(data.x_train), "y_train": put(data.y_train),
                       "x_test": put(data.x_test), "y_test": put(data.y_test)}
        params = jax_model.params_from_weights(weights, self.device)
        # Committed to the device like everything the compiled epoch returns: an uncommitted leaf
        # (optax's step count) would give the second epoch a different signature, and a recompile.
        opt_state = jax.device_put(opt.init(params), self.device)
        info = _describe(jax, self.device, cell, task, epoch_loop, time_loop, opt_text, jnp.dtype(compute_dtype).name)
        return JaxState(params, opt_state, device_data, epoch, apply, loss_fn, compile_clock, info, hp=cell.hp)

    def train_epoch(self, state: JaxState, order: np.ndarray) -> JaxState:
        order_dev = self.jax.device_put(order.astype(np.int32), self.device)
        d = state.data
        state.params, state.opt_state = state.epoch(
            state.params, state.opt_state, d["x_train"], d["y_train"], order_dev
        )
        return state

    def sync(self, state: JaxState) -> None:
        # The last prediction too: JAX dispatches asynchronously, and a device runs its programs in order.
        self.jax.block_until_ready((state.params, state.opt_state, state.pending))

    def predict_batch(self, state: JaxState, x: np.ndarray) -> Any:
        """jax.device_put of the host rows, then the mode's apply (op by op in eager, jax.jit in compiled:
        compiled once per batch size); the outputs are kept for sync, not waited for."""
        if "inference" not in state.info:
            state.info["inference"] = ("predict_batch: jax.device_put(x), then the forward "
                                       + ("jax.jit-compiled (once per batch size)" if hasattr(state.apply, "lower")
                                          else "op by op (un-jitted)")
                                       + "; outputs left on the device, sync blocks on them")
        with state.compile_clock.aside():
            state.pending = state.apply(state.params, self.jax.device_put(x, self.device))
        return state.pending

    def predict(self, state: JaxState, split: str) -> np.ndarray:
        x = state.data[f"x_{split}"] if split in ("train", "test") else None
        if x is None:
            raise ValueError(f"unknown split {split!r} (choose from: train, test)")
        with state.compile_clock.aside():
            outputs = [state.apply(state.params, x[start:start + PREDICT_BATCH])
                       for start in range(0, x.shape[0], PREDICT_BATCH)]
            return np.concatenate([np.asarray(out) for out in outputs])

    def loss(self, state: JaxState, indices: np.ndarray) -> float:
        from backends import jax_optim

        with state.compile_clock.aside():
            idx = self.jax.device_put(np.asarray(indices, np.int32), self.device)
            data_loss = float(state.loss_fn(state.params, state.data["x_train"][idx], state.data["y_train"][idx]))
            return data_loss + (jax_optim.penalty(state.params, state.hp) if state.hp else 0.0)

    def predict_rows(self, state: JaxState, split: str, rows: np.ndarray) -> np.ndarray:
        x = state.data[f"x_{split}"] if split in ("train", "test") else None
        if x is None:
            raise ValueError(f"unknown split {split!r} (choose from: train, test)")
        rows = np.asarray(rows, np.int32)
        with state.compile_clock.aside():
            chunks = [self.jax.device_put(rows[start:start + PREDICT_BATCH], self.device)
                      for start in range(0, len(rows), PREDICT_BATCH)]
            outputs = [state.apply(state.params, x[idx]) for idx in chunks]
            return np.concatenate([np.asarray(out) for out in outputs])

    def get_weights(self, state: JaxState) -> Weights:
        from backends import jax_model

        return jax_model.weights_from_params(state.params)

    def compile_time(self, state: JaxState) -> tuple[float | None, str]:
        return state.compile_clock.reading()

    def _memory_stats(self) -> dict[str, int] | None:
        try:
            stats = self.device.memory_stats()
        except Exception:  # noqa: BLE001 - not every platform reports memory (the CPU does not)
            return None
        return stats if stats and {"bytes_in_use", "peak_bytes_in_use"} <= stats.keys() else None

    def reset_peak_device(self, state: JaxState) -> None:
        state.memory_at_reset = self._memory_stats()

    def _training_peak(self, state: JaxState) -> tuple[float | None, str | None]:
        """(MB above what was in use when training began, or None; why None where that is not known).

        JAX's peak counter cannot be reset: it is the process's peak. When it rose after the reset, the
        new peak happened during training and is exact. When it did not, training never went above the
        peak reached while the data were staged, and its own peak is known only to lie below that."""
        before, now = state.memory_at_reset, self._memory_stats()
        if before is None or now is None:
            return None, None
        if now["peak_bytes_in_use"] > before["peak_bytes_in_use"]:
            return (now["peak_bytes_in_use"] - before["bytes_in_use"]) / 2**20, None
        bound = (before["peak_bytes_in_use"] - before["bytes_in_use"]) / 2**20
        return None, (f"unknown: training stayed below the peak reached while staging the data, {bound:.1f} MB "
                      "above what training started with (JAX cannot reset its peak counter)")

    def peak_device_mb(self, state: JaxState) -> float | None:
        return self._training_peak(state)[0]

    def details(self, state: JaxState) -> dict[str, Any]:
        info = dict(state.info)
        unknown = self._training_peak(state)[1]
        if unknown:
            info["peak_device"] = unknown
        return info


def _listen_for_compiles(jax: Any) -> None:
    global _listening
    if not _listening:
        def on_span(event: str, start: float, end: float, **_: Any) -> None:
            if event in COMPILE_EVENTS:
                _compile_spans.add(start, end)

        jax.monitoring.register_event_time_span_listener(on_span)
        _listening = True


@hookimpl
def bench_backends() -> list[type]:
    return [JaxBackend]
