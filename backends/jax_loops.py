"""Which loops the JAX backend's compiled mode runs: over an epoch's steps, and over the LSTM's time steps.

A leaf module (no JAX, no other backend module), so that jax_backend, jax_model and jax_train can
all read the choices without importing each other.
"""

from __future__ import annotations

import os

# What compiled mode runs on CPU, per task: "scan" = lax.scan over the epoch's steps in
# one program, "step" = a Python loop over a jitted step; the LSTM's time loop is
# lax.scan ("scan") or unrolled into the program ("python"). Chosen by measurement on a
# 2-core CPU: scan wins for linear regression (~4x: per-step dispatch dominates), the MLP
# (~1.5x at 2 threads, ~1.2x at 1) and the LSTM (both scans: ~1.35x over a stepped loop,
# ~2x over an unrolled time loop, which also compiles for 40 s+); the CNN needs "step"
# (STEP_REASON). On CUDA (not measured here) the whole epoch is one program, the usual best on a GPU.
# BENCH_JAX_EPOCH_LOOP and BENCH_JAX_TIME_LOOP override both, for re-measuring.
CPU_EPOCH_LOOP = {"linear_regression": "scan", "mnist_mlp": "scan", "mnist_cnn": "step", "mnist_lstm": "scan"}
CPU_TIME_LOOP = {"mnist_lstm": "scan"}
STEP_REASON = ("in a lax.scan, XLA's CPU compiler leaves the backward convolutions un-canonicalised, so they "
               "run as naive loops instead of Eigen: about 20x slower than a jitted step")
EPOCH_LOOP_ENV = "BENCH_JAX_EPOCH_LOOP"
TIME_LOOP_ENV = "BENCH_JAX_TIME_LOOP"
EPOCH_LOOPS = ("scan", "step")
TIME_LOOPS = ("python", "scan")


def settings_problem() -> str | None:
    """A bad BENCH_JAX_* value, as one line naming the variable and the valid values."""
    for variable, valid in ((EPOCH_LOOP_ENV, EPOCH_LOOPS), (TIME_LOOP_ENV, TIME_LOOPS)):
        value = os.environ.get(variable)
        if value and value not in valid:
            return f"{variable} must be one of {', '.join(valid)} (or unset), not {value!r}"
    return None


def loops_for(task_name: str, device: str, compiled: bool) -> tuple[str, str]:
    """(epoch loop, time loop) for a cell; eager mode loops in Python over both."""
    if not compiled:
        return "python", "python"
    on_cpu = device == "cpu"
    epoch_loop = os.environ.get(EPOCH_LOOP_ENV) or (CPU_EPOCH_LOOP.get(task_name, "scan") if on_cpu else "scan")
    time_loop = os.environ.get(TIME_LOOP_ENV) or (CPU_TIME_LOOP.get(task_name, "scan") if on_cpu else "scan")
    return epoch_loop, time_loop
