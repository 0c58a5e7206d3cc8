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

from harness import hookimpl
from harness.api import Backend, Cell, Dataset, Task, Weights

PREDICT_BATCH = 2000
# What compiled mode runs on CPU, per task: "scan" = lax.scan over the epoch's steps in
# one program, "step" = a Python loop over a jitted step; the LSTM's time loop is
# lax.scan ("scan") or unrolled into the program ("python"). Chosen by measurement on a
# 2-core CPU: scan wins for linear regression (~4x: per-step dispatch dominates), the MLP
# (~1.5x at 2 threads, ~1.2x at 1) and the LSTM (both scans: ~1.35x over a stepped loop,
# ~2x over an unrolled time loop, which also compiles for 40 s+); the CNN needs "step"
# (STEP_REASON). On CUDA
# (not measured here) the whole epoch is one program, the usual best on a GPU.
# BENCH_JAX_EPOCH_LOOP and BENCH_JAX_TIME_LOOP override both, for re-measuring.
CPU_EPOCH_LOOP = {"linear_regression": "scan", "mnist_mlp": "scan", "mnist_cnn": "step", "mnist_lstm": "scan"}
CPU_TIME_LOOP = {"mnist_lstm": "scan"}
STEP_REASON = ("in a lax.scan, XLA's CPU compiler leaves the backward convolutions un-canonicalised, so they "
               "run as naive loops instead of Eigen: about 20x slower than a jitted step")
EPOCH_LOOP_ENV = "BENCH_JAX_EPOCH_LOOP"
TIME_LOOP_ENV = "BENCH_JAX_TIME_LOOP"
EPOCH_LOOPS = ("scan", "step")
TIME_LOOPS = ("python", "scan")
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
    info: dict[str, Any] = field(default_factory=dict)


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
            info["epoch_loop_why"] = STEP_REASON
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

    @classmethod
    def settings_problem(cls) -> str | None:
        for variable, valid in ((EPOCH_LOOP_ENV, EPOCH_LOOPS), (TIME_LOOP_ENV, TIME_LOOPS)):
            value = os.environ.get(variable)
            if value and value not in valid:
                return f"{variable} must be one of {', '.join(valid)} (or unset), not {value!r}"
        return None

    @classmethod
    def unsupported_reason(cls, task: Task, cell: Cell) -> str | None:
        reason = super().unsupported_reason(task, cell)
        if reason is None and cell.precision == "tf32" and cell.device != "cuda":
            return "tf32 is a CUDA matmul mode; on CPU it would be fp32 under another name"
        return reason

    # -- worker side -------------------------------------------------------

    def configure(self, cell: Cell) -> dict[str, str]:
        env = {"JAX_PLATFORMS": "cuda" if cell.device == "cuda" else "cpu"}
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
        compiled = cell.mode == "compiled"
        on_cpu = cell.device == "cpu"
        epoch_loop = os.environ.get(EPOCH_LOOP_ENV) or (CPU_EPOCH_LOOP.get(task.name, "scan") if on_cpu else "scan")
        time_loop = os.environ.get(TIME_LOOP_ENV) or (CPU_TIME_LOOP.get(task.name, "scan") if on_cpu else "scan")
        if not compiled:
            epoch_loop, time_loop = "python", "python"
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
        return JaxState(params, opt_state, device_data, epoch, apply, loss_fn, info)

    def train_epoch(self, state: JaxState, order: np.ndarray) -> JaxState:
        order_dev = self.jax.device_put(order.astype(np.int32), self.device)
        d = state.data
        state.params, state.opt_state = state.epoch(state.params, state.opt_state, d["x_train"], d["y_train"], order_dev)
        return state

    def sync(self, state: JaxState) -> None:
        self.jax.block_until_ready((state.params, state.opt_state))

    def predict(self, state: JaxState, split: str) -> np.ndarray:
        x = state.data[f"x_{split}"] if split in ("train", "test") else None
        if x is None:
            raise ValueError(f"unknown split {split!r} (choose from: train, test)")
        outputs = [state.apply(state.params, x[start:start + PREDICT_BATCH])
                   for start in range(0, x.shape[0], PREDICT_BATCH)]
        return np.concatenate([np.asarray(out) for out in outputs])

    def loss(self, state: JaxState, indices: np.ndarray) -> float:
        idx = self.jax.device_put(np.asarray(indices, np.int32), self.device)
        return float(state.loss_fn(state.params, state.data["x_train"][idx], state.data["y_train"][idx]))

    def get_weights(self, state: JaxState) -> Weights:
        from backends import jax_model

        return jax_model.weights_from_params(state.params)

    def peak_device_mb(self, state: JaxState) -> float | None:
        try:
            stats = self.device.memory_stats()
        except Exception:  # noqa: BLE001 - not every platform reports memory
            return None
        if not stats or "peak_bytes_in_use" not in stats:
            return None
        return stats["peak_bytes_in_use"] / 2**20

    def details(self, state: JaxState) -> dict[str, Any]:
        return dict(state.info)


@hookimpl
def bench_backends() -> list[type]:
    return [JaxBackend]
