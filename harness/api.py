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
PRECISIONS = ("fp32", "tf32", "bf16")
DEVICES = ("cpu", "cuda")
LOSSES = ("cross_entropy", "mse")

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

    Update rules (g is the gradient plus `weight_decay * w`, i.e. coupled L2 as in
    torch's `weight_decay`, applied to every parameter):
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
    backend_ref: str = ""  # "module:QualName" of the Backend class, so a worker needs no plugin discovery
    task_ref: str = ""

    def thread_count(self) -> int:
        """The CPU threads this cell runs with: --threads, else every core the process may use."""
        from harness.measure.envinfo import usable_cores

        return self.threads or usable_cores()

    @property
    def cell_id(self) -> str:
        parts = [self.backend, self.task, self.mode, self.device, self.precision, self.hp.optimizer,
                 f"b{self.hp.batch_size}", f"e{self.hp.epochs}", f"lr{self.hp.lr:g}", f"s{self.seed}"]
        if self.train_size is not None:
            parts.append(f"n{self.train_size}")
        if self.test_size is not None:
            parts.append(f"t{self.test_size}")
        if self.threads is not None:
            parts.append(f"th{self.threads}")
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
    # Plainest first, best last: `bench run` without --mode runs only the last one.
    modes: ClassVar[tuple[str, ...]] = ("eager", "compiled")
    # Whether a plain `bench run` (no --backend) runs it; `--backend all` runs every available backend.
    in_default_run: ClassVar[bool] = True
    devices: ClassVar[tuple[str, ...]] = ("cpu",)
    precisions: ClassVar[tuple[str, ...]] = ("fp32",)
    optimizers: ClassVar[tuple[str, ...]] = OPTIMIZERS
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
                return Availability(False, None, f"{', '.join(cls.distributions) or 'its distribution'} is not installed")
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

    @abstractmethod
    def sync(self, state: Any) -> None:
        """Block until every queued computation on the device has finished."""

    @abstractmethod
    def predict(self, state: Any, split: str) -> np.ndarray:
        """Model outputs (logits, or predictions for regression) for the whole split, as numpy."""

    @abstractmethod
    def loss(self, state: Any, indices: np.ndarray) -> float:
        """The framework's own training loss on these training samples, without updating anything."""

    @abstractmethod
    def get_weights(self, state: Any) -> Weights:
        """Current parameters in the canonical layouts (inverse of the mapping done in build)."""

    def reset_peak_device(self, state: Any) -> None:
        """Start counting peak accelerator memory afresh. Called once the data are staged and the model
        is built, so that `peak_device_mb` measures training, not the dataset."""

    def peak_device_mb(self, state: Any) -> float | None:
        """Peak accelerator memory since `reset_peak_device`, where the framework can tell."""
        return None

    def compile_time(self, state: Any) -> tuple[float, str] | None:
        """Seconds the framework itself reports having spent compiling for training (tracing, lowering,
        code generation, autotuning), counted from `build` on and leaving out what `predict`, `loss` and
        one-time toolchain warm-ups compile, and how that was measured, e.g.
        `(1.93, "jax.monitoring: trace + lower + backend compile")`; `(0.0, why)` where the mode compiles
        nothing; None where the framework cannot tell (then only the first-epoch excess is recorded).
        Called after the training epochs, outside every timed phase."""
        return None

    def details(self, state: Any) -> dict[str, Any]:
        """Free-form facts worth recording (e.g. what the compiled mode compiled, thread counts)."""
        return {}
