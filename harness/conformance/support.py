"""What the conformance checks share: the backend under test, the cases it supports, cells and data."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.api import (
    DEVICES,
    Backend,
    Cell,
    Dataset,
    Hyperparams,
    Task,
    Weights,
    class_ref,
    load_ref,
)
from harness.plugins.registry import build_registry, names

TRAIN_SIZE = 256  # samples: enough for 8 steps of 32, small enough for any backend on a CPU
TEST_SIZE = 128
BATCH_SIZE = 32


@dataclass(frozen=True)
class Case:
    """One (task, mode) the backend says it can run, with the hyperparameters the checks use."""

    task: Task
    mode: str
    hp: Hyperparams

    @property
    def id(self) -> str:
        return f"{self.task.name}-{self.mode}"


@dataclass
class Subject:
    """The backend under test, the tasks it is checked on and what it supports of them."""

    backend: type[Backend]
    ref: str
    device: str
    tasks: dict[str, Task]
    cases: list[Case] = field(default_factory=list)
    unsupported: dict[str, str] = field(default_factory=dict)  # "task-mode" -> reason
    _data: dict[tuple[str, int, int], Dataset] = field(default_factory=dict)

    def cell(self, case: Case, seed: int = 0, **changes: Any) -> Cell:
        """The cell the checks run for `case`; `changes` override any Cell field."""
        fields: dict[str, Any] = dict(
            backend=self.backend.name, task=case.task.name, mode=case.mode, device=self.device, hp=case.hp,
            seed=seed, train_size=TRAIN_SIZE, test_size=TEST_SIZE, backend_ref=self.ref,
            task_ref=class_ref(type(case.task)))
        fields.update(changes)
        return Cell(**fields)

    def data(self, task: Task, train_size: int = TRAIN_SIZE, test_size: int = TEST_SIZE) -> Dataset:
        key = (task.name, train_size, test_size)
        if key not in self._data:
            self._data[key] = task.load(train_size, test_size)
        return self._data[key]

    def first_case(self, prefer: tuple[str, ...], mode: str | None = None) -> Case | None:
        """The first supported case among the preferred tasks (then any), in `mode` if given."""
        cases = [c for c in self.cases if mode is None or c.mode == mode]
        rank = {name: i for i, name in enumerate(prefer)}
        cases.sort(key=lambda c: rank.get(c.task.name, len(rank)))
        return cases[0] if cases else None


class SubjectError(Exception):
    """The backend named on the command line can't be found or isn't usable."""


def resolve(name: str, device: str | None = None) -> Subject:
    """The backend by registered name or "module:Class", and the registered tasks."""
    registry, plugins = build_registry()
    if ":" in name:
        try:
            backend = load_ref(name)
        except (ImportError, AttributeError) as exc:
            raise SubjectError(f"cannot import backend class {name!r}: {exc}") from None
        if not (isinstance(backend, type) and issubclass(backend, Backend)):
            raise SubjectError(f"{name!r} is not a harness.api.Backend subclass")
    elif name in registry.backends:
        backend = registry.backends[name]
    else:
        broken = [f"{n} ({i.broken})" for n, i in plugins.infos.items() if i.broken]
        raise SubjectError(f"no backend named {name!r} is registered (registered: {names(registry.backends) or 'none'}"
                           + (f"; broken plugins: {'; '.join(broken)}" if broken else "") + ")")
    devices = tuple(getattr(backend, "devices", ()) or ())
    device = device or ("cpu" if "cpu" in devices else (devices[0] if devices else "cpu"))
    if device not in DEVICES:
        raise SubjectError(f"unknown device {device!r} (choose from: {', '.join(DEVICES)})")
    subject = Subject(backend, class_ref(backend), device, dict(sorted((n, t()) for n, t in registry.tasks.items())))
    _plan_cases(subject)
    return subject


def hyperparams_for(backend: type[Backend], task: Task) -> Hyperparams:
    """The task's defaults with a small batch, and an optimizer the backend implements."""
    optimizers = tuple(getattr(backend, "optimizers", ()) or ())
    optimizer = task.defaults.optimizer if task.defaults.optimizer in optimizers or not optimizers else optimizers[0]
    return task.hyperparams(optimizer=optimizer, batch_size=BATCH_SIZE)


def _plan_cases(subject: Subject) -> None:
    backend = subject.backend
    try:
        modes = list(backend.modes)
    except (AttributeError, TypeError):
        return  # the contract checks report it
    for task in subject.tasks.values():
        for mode in modes:
            case = Case(task, mode, hyperparams_for(backend, task))
            try:
                reason = backend.unsupported_reason(task, subject.cell(case))
            except Exception as exc:  # noqa: BLE001 - reported by the contract checks
                reason = f"unsupported_reason raised {type(exc).__name__}: {exc}"
            if reason is None:
                subject.cases.append(case)
            else:
                subject.unsupported[case.id] = str(reason)


# -- driving a backend the way the worker does, in this process ------------------------------

def open_backend(subject: Subject, cell: Cell) -> Backend:
    """A fresh backend instance, configured and imported for `cell`; raises Unusable if the device isn't there."""
    backend = subject.backend()
    os.environ.update(backend.configure(cell))
    backend.import_framework(cell)
    problem = backend.device_problem(cell)
    if problem:
        raise Unusable(problem)
    return backend


class Unusable(Exception):
    """The backend's device_problem said the requested device can't be used here."""


def batch_order(seed: int, epoch: int, n_train: int, batch_size: int, steps: int | None = None) -> np.ndarray:
    """The worker's batch order: a (seed, epoch)-seeded permutation, remainder dropped.

    With `steps` beyond one pass, further permutations are appended (for longer epochs on small data)."""
    rows = []
    pass_ = 0
    while True:
        perm = np.random.default_rng([seed, epoch, pass_] if pass_ else [seed, epoch]).permutation(n_train)
        full = n_train // batch_size
        rows.append(perm[: full * batch_size].reshape(full, batch_size))
        total = sum(len(r) for r in rows)
        if steps is None or total >= steps:
            break
        pass_ += 1
    order = np.concatenate(rows)
    return (order if steps is None else order[:steps]).astype(np.int64)


def nonzero_bias_weights(task: Task, seed: int) -> Weights:
    """The task's initial weights with every bias replaced by non-zero random values, so a bias
    that is dropped, misplaced or mis-ordered (e.g. LSTM gates) changes the outputs."""
    rng = np.random.default_rng([seed, 7])
    weights = task.init_weights(seed)
    for params in weights:
        for name, value in params.items():
            if name == "bias":
                params[name] = rng.normal(0.0, 0.5, size=value.shape).astype(np.float32)
    return weights


def weights_differences(got: Weights, expected: Weights, exact: bool = True, rtol: float = 0.0,
                        atol: float = 0.0) -> list[str]:
    """Human-readable differences between two weight lists (empty when they match)."""
    problems = []
    if not isinstance(got, (list, tuple)) or len(got) != len(expected):
        return [f"expected a list of {len(expected)} dicts (one per layer), got {type(got).__name__} "
                f"of length {len(got) if hasattr(got, '__len__') else '?'}"]
    for i, (g, e) in enumerate(zip(got, expected)):
        if not isinstance(g, dict) or set(g) != set(e):
            problems.append(f"layer {i}: expected keys {sorted(e)}, got {sorted(g) if isinstance(g, dict) else g!r}")
            continue
        for name in e:
            value = np.asarray(g[name])
            where = f"layer {i} {name}"
            if value.shape != e[name].shape:
                problems.append(f"{where}: shape {value.shape}, expected {e[name].shape}")
            elif value.dtype != np.float32:
                problems.append(f"{where}: dtype {value.dtype}, expected float32 (get_weights returns the "
                                f"float32 arrays of harness/model.py's layouts, as build was given them)")
            elif exact and not np.array_equal(value, e[name]):
                worst = float(np.max(np.abs(value - e[name])))
                problems.append(f"{where}: differs (max abs difference {worst:.3g})")
            elif not exact and not np.allclose(value, e[name], rtol=rtol, atol=atol):
                worst = float(np.max(np.abs(value.astype(np.float64) - e[name])))
                problems.append(f"{where}: differs beyond rtol={rtol:g} atol={atol:g} (max abs difference {worst:.3g})")
    return problems
