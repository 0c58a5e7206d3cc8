"""The contracts between the harness, tasks and backends.

A Task says *what* to train (data, model, loss, metric, hyperparameters, target,
initial weights); a Backend says *how* one framework trains it. The harness owns
the clock, the batch order and the evaluation of predictions, so every backend is
timed and scored the same way.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import importlib.util
import math
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from harness.model import ModelSpec

OPTIMIZERS = ("sgd", "momentum", "adam", "rmsprop", "adagrad")
PENALTIES = ("weight_decay", "l1")  # the Hyperparams fields that add a penalty to the objective
PRECISIONS = ("fp32", "tf32", "bf16")
DEVICES = ("cpu", "cuda")
LOSSES = ("cross_entropy", "mse")
PHASES = ("train", "inference")  # what a cell measures: training, or prediction with the task's initial weights
INFERENCE_BATCHES = (1, 32, 256, 1024)  # the offline view's batch sizes (samples/s at each)

# Backend, task and mode names go into comma-separated CLI lists, cell ids and log file names: a letter or
# digit first (never '-' or '.'), then letters, digits, '_', '.' or '-' ('-' for names like keras-jax).
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
NAME_MAX = 64
NAME_RULE = f"a letter or digit, then letters, digits, '_', '.' or '-', at most {NAME_MAX} characters"


def name_problem(name: object) -> str | None:
    """Why `name` can't name a backend, task or mode, or None if it can (the one rule, for the registry,
    for a reopened plan and for the conformance suite)."""
    if not isinstance(name, str):
        return f"is {type(name).__name__}, not text"
    if len(name) > NAME_MAX or not NAME_PATTERN.fullmatch(name):  # fullmatch: '$' alone lets a final newline in
        return f"is not allowed: a name is {NAME_RULE}"
    return None


class DataError(Exception):
    """A task's data is missing or corrupt; the message says where it was looked for and how to fix it."""


class SkipCell(Exception):
    """Raised by a backend once its cell is running, when the cell turns out not to be measurable as bench
    measures (e.g. the framework compiles again on every batch: there is no steady state to time). The cell
    is recorded as skipped with the message as its reason; what it measured so far is dropped."""


Weights = list[dict[str, np.ndarray]]
"""One dict per layer of the ModelSpec (empty for layers without parameters)."""


@dataclass(frozen=True)
class Hyperparams:
    """Every training hyperparameter, set explicitly: no framework default is ever used.

    Update rules, where g is the gradient of the data loss plus both penalties' (sub)gradients, on every
    parameter (kernels, recurrent kernels and biases alike):
      g = grad(loss) + weight_decay * w + l1 * sign(w),   sign(0) = 0
    `weight_decay` is coupled L2 as in torch's `weight_decay` (the gradient of (weight_decay/2) * ||w||^2),
    `l1` the subgradient of l1 * ||w||_1 that is 0 where a weight is exactly 0 (as torch's and TF's abs;
    JAX's jnp.abs has 1 there). The objective these terms belong to, and the one `Backend.loss` returns, is
      data loss + l1 * ||w||_1 + (weight_decay / 2) * ||w||^2   (harness.measure.metrics.penalty)
    (the initial-loss parity check compares it with the float64 reference's); the metrics of a split, its
    `loss` included, are the data's alone. The rules, each on that g:
      sgd:      w -= lr * g
      momentum: v = momentum * v + g;  w -= lr * v
      adam:     m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
                w -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)
      rmsprop:  s = rho s + (1-rho) g^2;  w -= lr * g / (sqrt(s) + eps)
      adagrad:  a += g^2 (a starts at initial_accumulator);  w -= lr * g / (sqrt(a) + eps)
    """

    optimizer: str = "adam"
    lr: float = 1e-3
    batch_size: int = 128
    epochs: int = 1
    weight_decay: float = 0.0
    l1: float = 0.0
    momentum: float = 0.9
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-7
    rho: float = 0.9
    initial_accumulator: float = 0.1

    def replace(self, **changes: Any) -> "Hyperparams":
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


@dataclass(frozen=True)
class Target:
    """A quality bar: `metric op value`, e.g. accuracy >= 0.975."""

    metric: str
    op: str
    value: float

    def met(self, metrics: dict[str, float]) -> bool:
        got = metrics.get(self.metric)
        if got is None or not math.isfinite(got):
            return False
        return got >= self.value if self.op == ">=" else got <= self.value

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"


@dataclass
class Dataset:
    """Numpy arrays, already preprocessed; images NHWC float32, class labels int32."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        if name == "train":
            return self.x_train, self.y_train
        if name == "test":
            return self.x_test, self.y_test
        raise ValueError(f"unknown split {name!r} (choose from: train, test)")


class Task(ABC):
    """A framework-neutral workload. Subclasses set the class attributes and implement the methods."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    loss: ClassVar[str]  # one of LOSSES; cross_entropy takes logits and int labels
    metric: ClassVar[str]  # "accuracy" or "mse": the headline metric
    targets: ClassVar[tuple[Target, ...]]  # all must hold for the quality target to be met
    defaults: ClassVar[Hyperparams]
    lr_by_optimizer: ClassVar[dict[str, float]] = {}  # default lr when the optimizer is changed

    @abstractmethod
    def load(self, train_size: int | None = None, test_size: int | None = None) -> Dataset:
        """The data as numpy arrays; sizes cut (or, for synthetic tasks, set) the splits."""

    @abstractmethod
    def model(self) -> ModelSpec:
        """The network, built from harness.model layer kinds."""

    @abstractmethod
    def init_weights(self, seed: int) -> Weights:
        """Initial parameters drawn with numpy from `seed`, in the canonical layouts."""

    def train_samples(self, train_size: int | None) -> int:
        """How many training samples `load(train_size)` yields, without loading them."""
        return train_size or 60000

    def size_problem(self, train_size: int | None, test_size: int | None) -> str | None:
        """Why `load(train_size, test_size)` cannot give that many samples (one line), or None."""
        return None

    def prepare(self) -> None:
        """Verify and cache the data (called once in the parent before any cell); raise DataError if unusable."""

    def extra_metrics(self, weights: Weights) -> dict[str, float]:
        """Metrics read off the trained weights (e.g. the learned slope); none by default."""
        return {}

    def hyperparams(self, **overrides: Any) -> Hyperparams:
        """Task defaults with overrides; changing the optimizer picks its default lr unless lr is given."""
        hp = self.defaults
        optimizer = overrides.get("optimizer")
        if optimizer and optimizer != hp.optimizer and overrides.get("lr") is None:
            overrides = {**overrides, "lr": self.lr_by_optimizer.get(optimizer, hp.lr)}
        return hp.replace(**overrides)

    @classmethod
    def target_text(cls) -> str:
        return " and ".join(str(t) for t in cls.targets)

    @classmethod
    def target_met(cls, metrics: dict[str, float]) -> bool:
        return all(t.met(metrics) for t in cls.targets)


@dataclass(frozen=True)
class Cell:
    """One unit of work: a plain, serialisable description of one training run."""

    backend: str
    task: str
    mode: str
    device: str
    hp: Hyperparams
    precision: str = "fp32"
    seed: int = 0
    repeat: int = 0
    train_size: int | None = None
    test_size: int | None = None
    threads: int | None = None
    timeout_s: float = 1800.0
    latency_steps: int = 20
    phase: str = "train"  # one of PHASES
    # An inference cell's single-stream window: batch-1 queries until both floors are passed
    # (docs/inference-and-energy.md).
    inference_s: float = 10.0
    inference_queries: int = 1000
    backend_ref: str = ""  # "module:QualName" of the Backend class, so a worker needs no plugin discovery
    task_ref: str = ""
    # Another Python environment to run the worker in (bench run --python): the interpreter's path and the
    # label that names it in the cell id and reports; None: the interpreter running bench.
    python: str | None = None
    python_label: str | None = None
    # The lockstep group it belongs to (bench run --lockstep): cells of one repeat that run as live processes
    # taking turns epoch by epoch (harness.measure.lockstep); None: it runs alone. Not part of the id.
    lockstep: str | None = None

    def thread_count(self) -> int:
        """The CPU threads this cell runs with: --threads, else every core the process may use."""
        from harness.measure.envinfo import usable_cores

        return self.threads or usable_cores()

    @property
    def cell_id(self) -> str:
        parts = [self.backend, self.task, self.mode, self.device, self.precision, self.hp.optimizer,
                 f"b{self.hp.batch_size}", f"e{self.hp.epochs}", f"lr{self.hp.lr:g}"]
        # Penalties only when set: the ids of cells without them stay as they were, so older runs resume.
        if self.hp.weight_decay:
            parts.append(f"wd{self.hp.weight_decay:g}")
        if self.hp.l1:
            parts.append(f"l1{self.hp.l1:g}")
        parts.append(f"s{self.seed}")
        if self.train_size is not None:
            parts.append(f"n{self.train_size}")
        if self.test_size is not None:
            parts.append(f"t{self.test_size}")
        if self.threads is not None:
            parts.append(f"th{self.threads}")
        if self.phase != "train":  # only for inference: the ids of training cells stay as they were, so runs resume
            parts.append("inf")
        if self.python_label:
            parts.append(f"py{self.python_label}")
        parts.append(f"r{self.repeat}")
        return "-".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Cell":
        data = dict(data)
        data["hp"] = Hyperparams(**data["hp"])
        return cls(**data)


def class_ref(cls: type) -> str:
    """"module:QualName", enough for a worker process to import the class again."""
    return f"{cls.__module__}:{cls.__qualname__}"


def load_ref(ref: str) -> type:
    module, _, qualname = ref.partition(":")
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass
class Availability:
    ok: bool
    version: str | None = None
    reason: str | None = None


class Backend(ABC):
    """One framework's way of training a Task.

    Class-level methods must not import the framework (they run in the parent
    process, which never imports one); everything else runs in the cell's own
    worker process, after `import_framework`. The harness times every phase and
    calls `sync` before each clock read, so `sync` must block until all queued
    device work is finished.
    """

    name: ClassVar[str]
    # The framework's import name, e.g. "tensorflow"; None for a backend with no framework to import
    # (pure Python): then `distributions` names the plugin's own distribution, which gives the version.
    module: ClassVar[str | None]
    distributions: ClassVar[tuple[str, ...]]  # pip distributions that provide it; the first installed gives the version
    # Plainest first; `bench run` without --mode runs only the last one: the backend's best, or what its users
    # run when they ask for nothing (the Keras backends' `default`: model.compile() with Keras's defaults).
    modes: ClassVar[tuple[str, ...]] = ("eager", "compiled")
    # Whether a plain `bench run` (no --backend) runs it; `--backend all` runs every available backend.
    in_default_run: ClassVar[bool] = True
    devices: ClassVar[tuple[str, ...]] = ("cpu",)
    precisions: ClassVar[tuple[str, ...]] = ("fp32",)
    optimizers: ClassVar[tuple[str, ...]] = OPTIMIZERS
    # The penalties (PENALTIES) it applies, in its update and in `loss`. A cell asking for one not listed here
    # is skipped, never trained without it. Coupled L2 alone by default: L1 came later, and a backend written
    # before it would ignore `l1` silently.
    penalties: ClassVar[frozenset[str]] = frozenset({"weight_decay"})
    layer_kinds: ClassVar[frozenset[str]] = frozenset({"Dense", "Conv2D", "MaxPool2D", "Flatten", "ReLU", "LSTM"})

    @classmethod
    def version(cls) -> str | None:
        for dist in cls.distributions:
            try:
                return importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                continue
        return None

    @classmethod
    def availability(cls) -> Availability:
        """Whether the framework is installed, found without importing it."""
        version = cls.version()
        if cls.module is None:  # nothing to import: installed when its distribution is
            if version is None:
                return Availability(False, None,
                                    f"{', '.join(cls.distributions) or 'its distribution'} is not installed")
            return Availability(True, version)
        try:
            found = version is not None and importlib.util.find_spec(cls.module) is not None
        except (ImportError, ValueError) as exc:  # e.g. an empty name, or a parent package that fails to import
            return Availability(False, None, f"cannot look for module {cls.module!r}: {exc}")
        if not found:
            return Availability(False, None, f"{cls.module} is not installed")
        return Availability(True, version)

    @classmethod
    def settings_problem(cls) -> str | None:
        """A bad value in an environment variable this backend reads, as one line naming it and the valid
        values; None when all is well. Checked in the parent before anything is planned (exit 2)."""
        return None

    @classmethod
    def predicts_batches(cls) -> bool:
        """Whether inference cells can run: the backend implements `predict_batch`."""
        return cls.predict_batch is not Backend.predict_batch

    @classmethod
    def unsupported_reason(cls, task: Task, cell: Cell) -> str | None:
        """None when this backend can run the cell, else why not (the cell is recorded as skipped)."""
        if cell.mode not in cls.modes:
            return f"mode {cell.mode!r} not offered (modes: {', '.join(cls.modes)})"
        if cell.device not in cls.devices:
            return f"device {cell.device!r} not supported (devices: {', '.join(cls.devices)})"
        if cell.precision not in cls.precisions:
            return f"precision {cell.precision!r} not supported (precisions: {', '.join(cls.precisions)})"
        if cell.hp.optimizer not in cls.optimizers:
            return f"optimizer {cell.hp.optimizer!r} not implemented"
        for penalty in PENALTIES:
            if getattr(cell.hp, penalty) and penalty not in cls.penalties:
                return (f"penalty {penalty} not implemented "
                        f"(this backend applies: {', '.join(sorted(cls.penalties)) or 'none'})")
        if cell.phase not in PHASES:
            return f"phase {cell.phase!r} unknown (phases: {', '.join(PHASES)})"
        if cell.phase == "inference" and not cls.predicts_batches():
            return f"inference not implemented: {cls.name} has no predict_batch"
        missing = task.model().layer_kinds() - cls.layer_kinds
        if missing:
            return f"layer kinds not implemented: {', '.join(sorted(missing))}"
        return None

    # -- worker side -------------------------------------------------------

    def configure(self, cell: Cell) -> dict[str, str]:
        """Environment variables to set before the framework is imported (threads, logging, allocators)."""
        return {}

    @abstractmethod
    def import_framework(self, cell: Cell) -> None:
        """Import the framework and apply process-wide settings (threads, precision); timed as import_s."""

    def device_problem(self, cell: Cell) -> str | None:
        """After import: why the requested device can't be used here (the cell is skipped), or None."""
        return None

    @abstractmethod
    def build(self, task: Task, cell: Cell, data: Dataset, weights: Weights) -> Any:
        """Put the data on the device, build the model from `weights`, create the optimizer; return a state."""

    @abstractmethod
    def train_epoch(self, state: Any, order: np.ndarray) -> Any:
        """Train one step per row of `order` (steps × batch_size training-set indices); return the state."""

    def train_step(self, state: Any, batch: np.ndarray) -> Any:
        """One optimizer step on these training-set indices, as the step-latency phase times it; return the
        state. By default a one-step `train_epoch`; a backend whose epoch call carries per-call machinery (Keras's
        model.fit) times its framework's own single-step call instead, and says which in `details`."""
        return self.train_epoch(state, batch[None, :])

    @abstractmethod
    def sync(self, state: Any) -> None:
        """Block until every queued computation on the device has finished."""

    @abstractmethod
    def predict(self, state: Any, split: str) -> np.ndarray:
        """Model outputs (logits, or predictions for regression) for the whole split, as numpy."""

    @abstractmethod
    def loss(self, state: Any, indices: np.ndarray) -> float:
        """The framework's own training objective on these training samples, without updating anything: the
        data loss plus the cell's penalties, l1 * ||w||_1 + (weight_decay / 2) * ||w||^2 (see Hyperparams)."""

    def predict_batch(self, state: Any, x: np.ndarray) -> Any:
        """Inference cells: the outputs for one batch of host inputs `x` (NumPy float32 in the task's canonical
        layout, any number of rows), computed as the cell's mode computes (eager: op by op; compiled: the
        backend's compiled forward, compiled at its first call for each batch size). Copying `x` to the device
        is part of the call: a query arrives from the host. The outputs are returned as the framework left
        them, not copied to the host and not waited for: the harness's `sync` right after the call is what
        the clock waits on, so `sync` must wait for them too (keep the last outputs in the state if need be).
        The harness calls it with the task's initial weights, without training: prediction costs the same
        whatever the weights' values. Backends without it have their inference cells skipped."""
        raise NotImplementedError

    def outputs_to_host(self, state: Any, outputs: Any) -> np.ndarray:
        """What `predict_batch` returned, as a NumPy array on the host (for checks, never timed)."""
        return np.asarray(outputs)

    def predict_rows(self, state: Any, split: str, rows: np.ndarray) -> np.ndarray:
        """Model outputs for these samples of the split, as numpy (e.g. a subset of the training split, scored
        after training). By default the whole split is predicted and the rows taken from it: right for every
        backend, and worth overriding where predicting the whole training split is slow."""
        return np.asarray(self.predict(state, split))[np.asarray(rows, np.int64)]

    @abstractmethod
    def get_weights(self, state: Any) -> Weights:
        """Current parameters in the canonical layouts (inverse of the mapping done in build)."""

    def reset_peak_device(self, state: Any) -> None:
        """Start counting peak accelerator memory afresh. Called once the data are staged and the model
        is built, so that `peak_device_mb` measures training, not the dataset."""

    def peak_device_mb(self, state: Any) -> float | None:
        """Peak accelerator memory since `reset_peak_device`, where the framework can tell."""
        return None

    def compile_time(self, state: Any) -> tuple[float | None, str] | None:
        """Seconds the framework itself reports having spent compiling for training (tracing, lowering,
        code generation, autotuning), counted from `build` on and leaving out what `predict`, `loss` and
        one-time toolchain warm-ups compile, and how that was measured, e.g.
        `(1.93, "jax.monitoring: trace + lower + backend compile")`; `(0.0, why)` where the mode compiles
        nothing; `(None, why)` where the framework's counter could not be read this time (a renamed metric:
        the record says unknown, never 0 s); None where the framework cannot tell at all (then only the
        first-epoch excess is recorded). Overlapping compile phases count once. Called after the training
        epochs, outside every timed phase."""
        return None

    def details(self, state: Any) -> dict[str, Any]:
        """Free-form facts worth recording (e.g. what the compiled mode compiled, thread counts)."""
        return {}
