"""What Keras's JAX LSTM costs per batch under run_eagerly=True: time, XLA compiles and new memory maps, for
the MNIST LSTM task's model as written (lax.scan) and with LSTM(unroll=True). The README's account of the
keras-jax eager mnist_lstm cell (skipped by backends/keras_recompile_guard.py) comes from this.

    python -m benchmarks.keras_jax_eager_lstm                  # batch 128, 12 batches, both variants
    python -m benchmarks.keras_jax_eager_lstm --batches 20 --variant scan

Each variant runs in its own process (Keras's engine is chosen once, at import); the inputs are random
(only time and compiles are measured) and each line is one epoch of --batches batches, the second after
the first's compiles.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

VARIANTS = ("scan", "unroll")


def measure(variant: str, batch: int, batches: int) -> list[dict[str, float]]:
    """Two fit() epochs of `batches` batches: per batch, seconds, XLA compiles and new memory maps."""
    import jax.monitoring
    import keras
    import numpy as np

    from tasks.mnist_tasks import MnistLSTM

    compiles = [0]

    def on_event(event: str, duration: float, **_: object) -> None:
        if event == "/jax/core/compile/backend_compile_duration":
            compiles[0] += 1

    jax.monitoring.register_event_duration_secs_listener(on_event)
    spec = MnistLSTM().model()
    layers = [keras.Input(spec.input_shape)]
    for layer in spec.layers[:-1]:
        layers.append(keras.layers.LSTM(layer.units, return_sequences=layer.return_sequences,
                                        unroll=variant == "unroll"))
    layers.append(keras.layers.Dense(spec.layers[-1].units))
    model = keras.Sequential(layers)
    model.compile(optimizer=keras.optimizers.Adam(MnistLSTM.defaults.lr),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), run_eagerly=True)
    rng = np.random.default_rng(0)
    x = rng.random((batch * batches, *spec.input_shape), dtype=np.float32)
    y = rng.integers(0, 10, batch * batches).astype(np.int32)
    out = []
    for _ in range(2):
        with open("/proc/self/maps") as f:
            maps = sum(1 for _ in f)
        before, start = compiles[0], time.perf_counter()
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=False)
        seconds = time.perf_counter() - start
        with open("/proc/self/maps") as f:
            maps = sum(1 for _ in f) - maps
        out.append({"s": seconds / batches, "compiles": (compiles[0] - before) / batches, "maps": maps / batches})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--batches", type=int, default=12)
    parser.add_argument("--variant", choices=VARIANTS, action="append")
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.batch, args.batches)))
        return
    print(f"Keras on JAX, run_eagerly=True, MNIST LSTM model, batch {args.batch}, {args.batches} batches an epoch")
    print(f"{'variant':<8} {'epoch':>5} {'s/batch':>8} {'compiles/batch':>15} {'new maps/batch':>15}")
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "KERAS_BACKEND": "jax", "KERAS_HOME": home, "JAX_PLATFORMS": "cpu"}
        for variant in args.variant or VARIANTS:
            done = subprocess.run([sys.executable, "-m", "benchmarks.keras_jax_eager_lstm", "--child", variant,
                                   "--batch", str(args.batch), "--batches", str(args.batches)],
                                  capture_output=True, text=True, env=env, check=True)
            for epoch, row in enumerate(json.loads(done.stdout.splitlines()[-1]), start=1):
                print(f"{variant:<8} {epoch:>5} {row['s']:>8.2f} {row['compiles']:>15.1f} {row['maps']:>15.1f}")


if __name__ == "__main__":
    main()
