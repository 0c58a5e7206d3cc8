"""The plain JAX loop: a params pytree, a pure loss, jax.grad, optax.

  eager:    no jax.jit anywhere: the step (gather, forward, grad, optax update) runs op by op
            from a Python loop over the batches; the LSTM's time loop is a Python loop too.
  compiled: jax.jit of the step, params and optimizer state donated, and
            --epoch-loop scan: the whole epoch is one program, lax.scan over the rows of the order;
            --epoch-loop step: a Python loop calling the jitted step once per batch.
            The default is scan, except for the CNN: in a scan, XLA's CPU compiler runs the backward
            convolutions as naive loops (harness/backends measured ~20x slower), so an expert steps.
            The LSTM's time loop is lax.scan.

Run:
  python -m benchmarks.raw.raw_jax --task mnist_mlp --mode compiled --epochs 3
"""

from __future__ import annotations

import argparse
import os
from typing import Any, Sequence

from benchmarks.raw import common

MODES = ("eager", "compiled")
EPOCH_LOOPS = ("scan", "step")
EVAL_BATCH = 2000


def default_epoch_loop(task: str) -> str:
    return "step" if task == "mnist_cnn" else "scan"


def _extra(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--epoch-loop", choices=EPOCH_LOOPS,
                        help="compiled mode: scan the epoch in one program, or step from Python "
                             "(default: scan, step for the CNN)")


def main(argv: Sequence[str] | None = None) -> common.RawResult:
    args = common.parse_args("jax", MODES, argv, _extra)
    threads = common.pin(args.threads)
    return common.finish(run(args.task, args.mode, args.epochs, args.train_size, args.test_size,
                             args.batch_size, threads, args.seed, args.epoch_loop), args.json)


def run(task: str, mode: str, epochs: int = common.DEFAULT_EPOCHS, train_size: int | None = None,
        test_size: int | None = None, batch_size: int | None = None, threads: int = 1,
        seed: int = 0, epoch_loop: str | None = None) -> common.RawResult:
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    if threads == 1 and "--xla_cpu_multi_thread_eigen" not in os.environ.get("XLA_FLAGS", ""):
        # One core: Eigen's matmuls/convs on the calling thread, not handed to XLA's pool.
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_cpu_multi_thread_eigen=false".strip()
    t0 = common.clock()
    import jax
    import jax.numpy as jnp
    import optax
    from jax import lax

    import_s = common.clock() - t0
    work = common.load_workload(task, train_size, test_size, batch_size, epochs, seed)
    hp, data = work.hp, work.data
    compiled = mode == "compiled"
    epoch_loop = (epoch_loop or default_epoch_loop(task)) if compiled else "python"

    t0 = common.clock()
    classify = work.task.loss == "cross_entropy"
    x_train, y_train = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
    params = [{k: jnp.asarray(v) for k, v in w.items()} for w in work.weights]
    apply = make_apply(work.task.model(), scan_time=compiled)

    def loss_fn(params, x, y):
        out = apply(params, x)
        if classify:
            return optax.softmax_cross_entropy_with_integer_labels(out, y).mean()
        return jnp.mean(jnp.square(out - y))

    if hp.weight_decay:
        raise SystemExit("raw loops do the tasks' defaults: no weight decay")
    if hp.optimizer == "sgd":
        opt = optax.sgd(hp.lr, momentum=None, nesterov=False)
    elif hp.optimizer == "adam":
        opt = optax.adam(hp.lr, b1=hp.beta1, b2=hp.beta2, eps=hp.eps, eps_root=0.0)
    else:
        raise SystemExit(f"raw loops do the tasks' own optimizers (sgd, adam), not {hp.optimizer!r}")
    opt_state = opt.init(params)

    def step(params, opt_state, x_all, y_all, idx):
        grads = jax.grad(loss_fn)(params, x_all[idx], y_all[idx])
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    if epoch_loop == "scan":
        def scanned(params, opt_state, x_all, y_all, order):
            def body(carry, idx):
                return step(*carry, x_all, y_all, idx), None

            return lax.scan(body, (params, opt_state), order)[0]

        epoch_fn = jax.jit(scanned, donate_argnums=(0, 1))

        def run_epoch(order) -> None:
            nonlocal params, opt_state
            params, opt_state = epoch_fn(params, opt_state, x_train, y_train, order)
    else:
        train_step = jax.jit(step, donate_argnums=(0, 1)) if compiled else step

        def run_epoch(order) -> None:
            nonlocal params, opt_state
            for idx in order:
                params, opt_state = train_step(params, opt_state, x_train, y_train, idx)
    setup_s = common.clock() - t0

    first = common.batch_order(seed, 0, len(data.x_train), hp.batch_size)[0]

    first_loss = jax.jit(loss_fn) if compiled else loss_fn

    def batch_loss() -> float:
        return float(first_loss(params, x_train[first], y_train[first]))

    initial_loss = batch_loss()
    epoch_s = common.timed_epochs(run_epoch, lambda: jax.block_until_ready(params), work, seed, common.log)

    t0 = common.clock()
    predict = jax.jit(apply) if compiled else apply
    outputs = jnp.concatenate([predict(params, jnp.asarray(data.x_test[i: i + EVAL_BATCH]))
                               for i in range(0, len(data.x_test), EVAL_BATCH)])
    outputs = jax.device_get(outputs)
    eval_s = common.clock() - t0
    variant = ("op by op, no jit" if not compiled else
               "jax.jit(step), lax.scan over the epoch" if epoch_loop == "scan" else
               "jax.jit(step), Python loop over batches")
    return common.RawResult(
        framework="jax", framework_version=jax.__version__, task=task, mode=mode,
        variant=f"{variant}; optax.{hp.optimizer}", threads=threads, train_size=len(data.x_train),
        test_size=len(data.x_test), batch_size=hp.batch_size, steps_per_epoch=work.steps, epochs=epochs,
        import_s=import_s, load_s=work.load_s, setup_s=setup_s, epoch_s=epoch_s, first_epoch_s=epoch_s[0],
        steady_epoch_s=common.steady(epoch_s), train_s=sum(epoch_s), eval_s=eval_s,
        total_s=common.clock() - common.STARTED, initial_loss=initial_loss, final_loss=batch_loss(),
        metrics=common.score(work, outputs))


def make_apply(spec: Any, scan_time: bool) -> Any:
    """apply(params, x) for the spec; params are the canonical weights (jax's conventions are the same)."""
    import jax
    import jax.numpy as jnp
    from jax import lax

    from harness.model import LSTM, Conv2D, Dense, Flatten, MaxPool2D, ReLU

    def lstm(p, x, return_sequences: bool):
        def cell(carry, x_t):
            h, c = carry
            z = x_t @ p["kernel"] + h @ p["recurrent_kernel"] + p["bias"]
            i, f, g, o = jnp.split(z, 4, axis=-1)
            c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
            h = jax.nn.sigmoid(o) * jnp.tanh(c)
            return (h, c), h

        zeros = jnp.zeros((x.shape[0], p["recurrent_kernel"].shape[0]), x.dtype)
        if scan_time:
            (h, _), hs = lax.scan(cell, (zeros, zeros), jnp.swapaxes(x, 0, 1))
            hs = jnp.swapaxes(hs, 0, 1)
        else:
            carry, outs = (zeros, zeros), []
            for t in range(x.shape[1]):
                carry, h = cell(carry, x[:, t])
                outs.append(h)
            hs = jnp.stack(outs, axis=1)
        return hs if return_sequences else hs[:, -1]

    def apply(params, x):
        for layer, p in zip(spec.layers, params):
            if isinstance(layer, Dense):
                x = x @ p["kernel"] + p["bias"]
            elif isinstance(layer, Conv2D):
                x = lax.conv_general_dilated(x, p["kernel"], (1, 1), "VALID",
                                             dimension_numbers=("NHWC", "HWIO", "NHWC")) + p["bias"]
            elif isinstance(layer, MaxPool2D):
                k = layer.pool_size
                x = lax.reduce_window(x, -jnp.inf, lax.max, (1, k, k, 1), (1, k, k, 1), "VALID")
            elif isinstance(layer, Flatten):
                x = x.reshape(x.shape[0], -1)
            elif isinstance(layer, ReLU):
                x = jax.nn.relu(x)
            elif isinstance(layer, LSTM):
                x = lstm(p, x, layer.return_sequences)
            else:
                raise TypeError(f"unknown layer kind {type(layer).__name__}")
        return x

    return apply


if __name__ == "__main__":
    main()
    common.exit_process()
