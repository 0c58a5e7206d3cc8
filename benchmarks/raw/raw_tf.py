"""The plain TensorFlow loop: tf.Variables and tf.nn ops, a GradientTape step, a Keras optimizer.

  eager:    the GradientTape step, op by op.
  compiled: the same step under tf.function(jit_compile=True) (XLA), called once per batch.
  graph:    the same step under plain tf.function (a TF graph, no XLA), for comparison:
            on CPU the harness's compiled mode uses graph-mode programs for the MNIST nets.

The data are passed to the step as arguments (resident tensors, gathered per batch inside the
step), never captured as constants. The optimizer is keras.optimizers.Adam / SGD with every
hyperparameter given; note that Keras' Adam puts its epsilon outside the *uncorrected* sqrt(v)
(the "epsilon hat" form), a numerically negligible difference from the spec's rule that has no
bearing on speed. Run:
  python -m benchmarks.raw.raw_tf --task mnist_mlp --mode compiled --epochs 3
"""

from __future__ import annotations

import os
from typing import Any, Sequence

from benchmarks.raw import common

MODES = ("eager", "graph", "compiled")
EVAL_BATCH = 2000


def main(argv: Sequence[str] | None = None) -> common.RawResult:
    args = common.parse_args("tf", MODES, argv)
    threads = common.pin(args.threads)
    return common.finish(run(args.task, args.mode, args.epochs, args.train_size, args.test_size,
                             args.batch_size, threads, args.seed), args.json)


def run(task: str, mode: str, epochs: int = common.DEFAULT_EPOCHS, train_size: int | None = None,
        test_size: int | None = None, batch_size: int | None = None, threads: int = 1,
        seed: int = 0) -> common.RawResult:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    t0 = common.clock()
    import keras
    import tensorflow as tf

    import_s = common.clock() - t0
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    work = common.load_workload(task, train_size, test_size, batch_size, epochs, seed)
    hp, data = work.hp, work.data

    t0 = common.clock()
    classify = work.task.loss == "cross_entropy"
    x_train = tf.constant(data.x_train)
    y_train = tf.constant(data.y_train.astype("int64") if classify else data.y_train)
    variables, forward = build_model(work.task.model(), work.weights)
    if hp.weight_decay:
        raise SystemExit("raw loops do the tasks' defaults: no weight decay")
    if hp.optimizer == "sgd":
        opt = keras.optimizers.SGD(learning_rate=hp.lr, momentum=0.0, nesterov=False)
    elif hp.optimizer == "adam":
        opt = keras.optimizers.Adam(learning_rate=hp.lr, beta_1=hp.beta1, beta_2=hp.beta2, epsilon=hp.eps,
                                    amsgrad=False)
    else:
        raise SystemExit(f"raw loops do the tasks' own optimizers (sgd, adam), not {hp.optimizer!r}")
    opt.build(variables)  # slots exist before any tracing

    def loss_fn(x, y):
        out = forward(x)
        if classify:
            return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=out))
        return tf.reduce_mean(tf.square(out - y))

    def step(x_all, y_all, idx):
        x, y = tf.gather(x_all, idx), tf.gather(y_all, idx)
        with tf.GradientTape() as tape:
            loss = loss_fn(x, y)
        opt.apply_gradients(zip(tape.gradient(loss, variables), variables))

    if mode == "compiled":
        train_step = tf.function(step, jit_compile=True)
    elif mode == "graph":
        train_step = tf.function(step)
    else:
        train_step = step
    setup_s = common.clock() - t0

    first = common.batch_order(seed, 0, len(data.x_train), hp.batch_size)[0]

    def batch_loss() -> float:
        return float(loss_fn(tf.gather(x_train, first), tf.gather(y_train, first)).numpy())

    initial_loss = batch_loss()

    def run_epoch(order) -> None:
        for idx in tf.unstack(tf.constant(order)):
            train_step(x_train, y_train, idx)

    def sync() -> None:
        variables[-1].numpy()  # a host read of the last parameter updated in a step

    epoch_s = common.timed_epochs(run_epoch, sync, work, seed, common.log)

    t0 = common.clock()
    predict = tf.function(forward, jit_compile=mode == "compiled") if mode != "eager" else forward
    x_test = tf.constant(data.x_test)
    outputs = tf.concat([predict(x_test[i: i + EVAL_BATCH]) for i in range(0, len(data.x_test), EVAL_BATCH)],
                        axis=0).numpy()
    eval_s = common.clock() - t0
    variant = {"eager": "eager GradientTape", "graph": "tf.function(step), no XLA",
               "compiled": "tf.function(step, jit_compile=True)"}[mode]
    return common.RawResult(
        framework="tensorflow", framework_version=tf.__version__, task=task, mode=mode,
        variant=f"{variant}; raw tf ops; keras.optimizers.{type(opt).__name__}",
        threads=tf.config.threading.get_intra_op_parallelism_threads(), train_size=len(data.x_train),
        test_size=len(data.x_test), batch_size=hp.batch_size, steps_per_epoch=work.steps, epochs=epochs,
        import_s=import_s, load_s=work.load_s, setup_s=setup_s, epoch_s=epoch_s, first_epoch_s=epoch_s[0],
        steady_epoch_s=common.steady(epoch_s), train_s=sum(epoch_s), eval_s=eval_s,
        total_s=common.clock() - common.STARTED, initial_loss=initial_loss, final_loss=batch_loss(),
        metrics=common.score(work, outputs))


def build_model(spec: Any, weights: list[dict[str, Any]]) -> tuple[list[Any], Any]:
    """The spec's parameters as tf.Variables (the canonical layouts are TF's own) and its forward pass."""
    import tensorflow as tf

    from harness.model import LSTM, Conv2D, Dense, Flatten, MaxPool2D, ReLU

    params = [{k: tf.Variable(v) for k, v in w.items()} for w in weights]
    variables = [v for p in params for v in p.values()]

    def lstm(x, p, return_sequences: bool):
        h = c = tf.zeros([tf.shape(x)[0], p["recurrent_kernel"].shape[0]])
        outputs = []
        for x_t in tf.unstack(x, axis=1):  # 28 static steps, unrolled
            z = tf.matmul(x_t, p["kernel"]) + tf.matmul(h, p["recurrent_kernel"]) + p["bias"]
            i, f, g, o = tf.split(z, 4, axis=1)
            c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
            h = tf.sigmoid(o) * tf.tanh(c)
            outputs.append(h)
        return tf.stack(outputs, axis=1) if return_sequences else h

    def forward(x):
        for layer, p in zip(spec.layers, params):
            if isinstance(layer, Dense):
                x = tf.matmul(x, p["kernel"]) + p["bias"]
            elif isinstance(layer, Conv2D):
                x = tf.nn.conv2d(x, p["kernel"], strides=1, padding="VALID") + p["bias"]
            elif isinstance(layer, MaxPool2D):
                x = tf.nn.max_pool2d(x, layer.pool_size, layer.pool_size, padding="VALID")
            elif isinstance(layer, Flatten):
                x = tf.reshape(x, [tf.shape(x)[0], -1])
            elif isinstance(layer, ReLU):
                x = tf.nn.relu(x)
            elif isinstance(layer, LSTM):
                x = lstm(x, p, layer.return_sequences)
            else:
                raise TypeError(f"unknown layer kind {type(layer).__name__}")
        return x

    return variables, forward


if __name__ == "__main__":
    main()
    common.exit_process()
