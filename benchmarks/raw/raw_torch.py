"""The plain PyTorch loop: nn modules, torch.optim, data resident as tensors, one step per batch.

  eager:    zero_grad, forward, loss, backward, optimizer.step, op by op.
  compiled: the same step as one function under torch.compile (dynamo splits it at backward():
            forward+loss is one inductor graph with its AOT-compiled backward, the optimizer
            update another).

Written from the task's ModelSpec the way one would by hand: NCHW convolutions (the images are
permuted once, up front), a three-layer LSTM as one nn.LSTM(num_layers=3). Run:
  python -m benchmarks.raw.raw_torch --task mnist_mlp --mode compiled --epochs 3
"""

from __future__ import annotations

from typing import Any, Sequence

from benchmarks.raw import common

MODES = ("eager", "compiled")
EVAL_BATCH = 2000


def main(argv: Sequence[str] | None = None) -> common.RawResult:
    args = common.parse_args("torch", MODES, argv)
    threads = common.pin(args.threads)
    return common.finish(run(args.task, args.mode, args.epochs, args.train_size, args.test_size,
                             args.batch_size, threads, args.seed), args.json)


def run(task: str, mode: str, epochs: int = common.DEFAULT_EPOCHS, train_size: int | None = None,
        test_size: int | None = None, batch_size: int | None = None, threads: int = 1,
        seed: int = 0) -> common.RawResult:
    t0 = common.clock()
    import torch
    import torch.nn.functional as F

    import_s = common.clock() - t0
    torch.set_num_threads(threads)
    work = common.load_workload(task, train_size, test_size, batch_size, epochs, seed)
    hp, data = work.hp, work.data

    t0 = common.clock()
    spec = work.task.model()
    conv = any(type(layer).__name__ in ("Conv2D", "MaxPool2D") for layer in spec.layers)

    def inputs(x) -> torch.Tensor:
        t = torch.from_numpy(x)
        return t.permute(0, 3, 1, 2).contiguous() if conv else t  # NHWC -> NCHW, once

    x_train, x_test = inputs(data.x_train), inputs(data.x_test)
    if work.task.loss == "cross_entropy":
        y_train, loss_fn = torch.from_numpy(data.y_train).long(), F.cross_entropy
    else:
        y_train, loss_fn = torch.from_numpy(data.y_train), F.mse_loss
    net = build_net(spec, work.weights)
    params = [p for p in net.parameters() if p.requires_grad]
    if hp.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=hp.lr, momentum=0.0, dampening=0.0, weight_decay=hp.weight_decay,
                              nesterov=False)
    elif hp.optimizer == "adam":
        opt = torch.optim.Adam(params, lr=hp.lr, betas=(hp.beta1, hp.beta2), eps=hp.eps,
                               weight_decay=hp.weight_decay, amsgrad=False)
    else:
        raise SystemExit(f"raw loops do the tasks' own optimizers (sgd, adam), not {hp.optimizer!r}")

    def step(idx: torch.Tensor) -> None:
        loss = loss_fn(net(x_train[idx]), y_train[idx])
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    train_step = torch.compile(step) if mode == "compiled" else step
    setup_s = common.clock() - t0

    first = torch.from_numpy(common.batch_order(seed, 0, len(data.x_train), hp.batch_size)[0])

    def batch_loss() -> float:
        with torch.no_grad():
            return float(loss_fn(net(x_train[first]), y_train[first]))

    initial_loss = batch_loss()

    def run_epoch(order) -> None:
        rows = torch.from_numpy(order)
        for i in range(rows.shape[0]):
            train_step(rows[i])

    epoch_s = common.timed_epochs(run_epoch, lambda: None, work, seed, common.log)  # CPU torch is synchronous

    t0 = common.clock()
    with torch.no_grad():
        outputs = torch.cat([net(x_test[i: i + EVAL_BATCH]) for i in range(0, len(x_test), EVAL_BATCH)]).numpy()
    eval_s = common.clock() - t0
    variant = ("eager" if mode == "eager" else "torch.compile(step: forward, loss, backward, optimizer.step)")
    return common.RawResult(
        framework="torch", framework_version=torch.__version__, task=task, mode=mode,
        variant=f"{variant}{'; NCHW convolutions' if conv else ''}; torch.optim.{type(opt).__name__}",
        threads=torch.get_num_threads(), train_size=len(data.x_train), test_size=len(data.x_test),
        batch_size=hp.batch_size, steps_per_epoch=work.steps, epochs=epochs, import_s=import_s, load_s=work.load_s,
        setup_s=setup_s, epoch_s=epoch_s, first_epoch_s=epoch_s[0], steady_epoch_s=common.steady(epoch_s),
        train_s=sum(epoch_s), eval_s=eval_s, total_s=common.clock() - common.STARTED, initial_loss=initial_loss,
        final_loss=batch_loss(), metrics=common.score(work, outputs))


def build_net(spec: Any, weights: list[dict[str, Any]]) -> Any:
    """nn.Sequential for the spec, loaded with the canonical weights (harness/model.py layouts)."""
    import numpy as np
    import torch
    from torch import nn

    from harness.model import (
        LSTM,
        Conv2D,
        Dense,
        Flatten,
        MaxPool2D,
        ReLU,
        output_shapes,
    )

    def set_(param: torch.nn.Parameter, value: np.ndarray) -> None:
        with torch.no_grad():
            param.copy_(torch.from_numpy(np.ascontiguousarray(value, np.float32)))

    modules: list[nn.Module] = []
    layers, shapes = list(spec.layers), output_shapes(spec)
    shape, flattened_image = spec.input_shape, None
    i = 0
    while i < len(layers):
        layer, w = layers[i], weights[i]
        if isinstance(layer, Dense):
            m = nn.Linear(shape[-1], layer.units)
            kernel = w["kernel"]
            if flattened_image is not None:  # canonical rows are (H, W, C); torch flattens (C, H, W)
                h, wd, c = flattened_image
                kernel = kernel.reshape(h, wd, c, -1).transpose(2, 0, 1, 3).reshape(h * wd * c, -1)
                flattened_image = None
            set_(m.weight, kernel.T)
            set_(m.bias, w["bias"])
        elif isinstance(layer, Conv2D):
            m = nn.Conv2d(shape[-1], layer.filters, layer.kernel_size)
            set_(m.weight, w["kernel"].transpose(3, 2, 0, 1))  # HWIO -> OIHW
            set_(m.bias, w["bias"])
        elif isinstance(layer, MaxPool2D):
            m = nn.MaxPool2d(layer.pool_size)
        elif isinstance(layer, Flatten):
            m = nn.Flatten()
            if len(shape) == 3 and any(isinstance(x, Conv2D) for x in layers[:i]):
                flattened_image = shape
        elif isinstance(layer, ReLU):
            m = nn.ReLU()
        elif isinstance(layer, LSTM):
            # A run of LSTMs of one width, all but the last returning sequences: one nn.LSTM(num_layers=k).
            j = i + 1
            while (j < len(layers) and isinstance(layers[j], LSTM) and layers[j].units == layer.units
                   and layers[j - 1].return_sequences):
                j += 1
            m = _stacked_lstm_class()(shape[-1], layer.units, j - i, layers[j - 1].return_sequences)
            for k in range(j - i):
                lw = weights[i + k]
                set_(getattr(m.lstm, f"weight_ih_l{k}"), lw["kernel"].T)
                set_(getattr(m.lstm, f"weight_hh_l{k}"), lw["recurrent_kernel"].T)
                set_(getattr(m.lstm, f"bias_ih_l{k}"), lw["bias"])
                bias_hh = getattr(m.lstm, f"bias_hh_l{k}")
                set_(bias_hh, np.zeros_like(lw["bias"]))
                bias_hh.requires_grad_(False)  # the spec has one bias; training both would double its step
            modules.append(m)
            shape = shapes[j - 1]
            i = j
            continue
        else:
            raise TypeError(f"unknown layer kind {type(layer).__name__}")
        modules.append(m)
        shape = shapes[i]
        i += 1
    return nn.Sequential(*modules)


def _stacked_lstm_class() -> type:
    """Defined on first use: torch is imported only after the threads are pinned."""
    from torch import nn

    class StackedLSTM(nn.Module):
        """nn.LSTM, batch first, zero initial state; the last step's output unless sequences are wanted."""

        def __init__(self, features: int, units: int, layers: int, return_sequences: bool):
            super().__init__()
            self.lstm = nn.LSTM(features, units, num_layers=layers, batch_first=True)
            self.return_sequences = return_sequences

        def forward(self, x):
            out = self.lstm(x)[0]
            return out if self.return_sequences else out[:, -1]

    return StackedLSTM


if __name__ == "__main__":
    main()
    common.exit_process()
