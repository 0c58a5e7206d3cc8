"""Planning: turn the user's selection into the list of cells to run."""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field

from harness.api import Cell, Task, class_ref
from harness.plugins.registry import Registry


@dataclass
class Selection:
    """What the user asked for; None means the default for each backend or task."""

    backends: list[str]
    tasks: list[str]
    modes: list[str] | None = None  # None: each backend's best mode (the last of its modes)
    devices: list[str] | None = None  # None: each backend's best device here (cuda when a GPU is visible)
    precision: str = "fp32"
    repeat: int = 1
    epochs: int | None = None
    batch_sizes: list[int | None] = field(default_factory=lambda: [None])
    optimizers: list[str | None] = field(default_factory=lambda: [None])
    lrs: list[float | None] = field(default_factory=lambda: [None])
    threads: list[int | None] = field(default_factory=lambda: [None])
    weight_decays: list[float | None] = field(default_factory=lambda: [None])  # None: the task's (no penalty)
    l1s: list[float | None] = field(default_factory=lambda: [None])
    seed: int = 0
    train_sizes: list[int | None] = field(default_factory=lambda: [None])  # None: the task's own
    test_size: int | None = None
    timeout_s: float = 1800.0
    latency_steps: int = 20
    phases: list[str] = field(default_factory=lambda: ["train"])  # train and/or inference cells
    # (label, interpreter) of each Python environment to run cells in, innermost in the plan so that the
    # environments of one configuration run one after another, alternating in time; None: bench's own.
    pythons: list[tuple[str, str] | None] = field(default_factory=lambda: [None])
    inference_s: float = 10.0  # an inference cell's single-stream floors (harness.api.Cell)
    inference_queries: int = 1000
    order: str = "backend"  # within a repeat: "backend" (each backend's tasks in turn) or "task" (ORDERS)
    # Grid axes whose values run in lockstep (LOCKSTEP_AXES): the training cells of one repeat that differ only in
    # these run as live processes taking turns epoch by epoch (harness.measure.lockstep); empty: each alone.
    lockstep: list[str] = field(default_factory=list)


# How cells are ordered within a repeat (repeats stay outermost either way). "task" puts every backend's
# first task before anyone's second: a run cut short (a lent GPU's minutes) then has the same tasks for all.
ORDERS = ("backend", "task")


# Cell attributes that make its configuration, by the name the user knows them (bench run's flags).
LOCKSTEP_AXES = {"backend": lambda c: c.backend, "task": lambda c: c.task, "mode": lambda c: c.mode,
                 "device": lambda c: c.device, "python": lambda c: c.python_label,
                 "train_size": lambda c: c.train_size, "batch_size": lambda c: c.hp.batch_size,
                 "optimizer": lambda c: c.hp.optimizer, "lr": lambda c: c.hp.lr,
                 "weight_decay": lambda c: c.hp.weight_decay, "l1": lambda c: c.hp.l1, "threads": lambda c: c.threads}


class PlanError(ValueError):
    """The selection can't make sense (e.g. a batch larger than the training set)."""


@dataclass
class PlannedCell:
    cell: Cell
    skip_reason: str | None = None  # known before any process starts (framework missing, unsupported)


def best_device(backend: type, gpu_present: bool) -> str:
    return "cuda" if gpu_present and "cuda" in backend.devices else "cpu"


def plan(registry: Registry, sel: Selection, gpu_present: bool = False) -> list[PlannedCell]:
    """Every combination, repeats outermost so slow drift spreads over all cells alike; within a repeat,
    backend by backend, or task by task with `sel.order == "task"`."""
    planned: list[PlannedCell] = []
    tasks: dict[str, Task] = {name: registry.tasks[name]() for name in sel.tasks}
    for task in tasks.values():
        for train_size in sel.train_sizes:
            problem = task.size_problem(train_size, sel.test_size)
            if problem:
                raise PlanError(problem)
    for repeat in range(sel.repeat):
        for backend_name in sel.backends:
            backend = registry.backends[backend_name]
            availability = backend.availability()
            devices = sel.devices or [best_device(backend, gpu_present)]
            grid = itertools.product(
                sel.tasks, devices, sel.optimizers, sel.batch_sizes, sel.lrs, sel.weight_decays, sel.l1s, sel.threads,
                sel.train_sizes,
            )
            for task_name, device, optimizer, batch_size, lr, weight_decay, l1, threads, train_size in grid:
                task = tasks[task_name]
                hp = task.hyperparams(optimizer=optimizer, lr=lr, batch_size=batch_size, epochs=sel.epochs,
                                      weight_decay=weight_decay, l1=l1)
                samples = task.train_samples(train_size)
                if hp.batch_size > samples:
                    raise PlanError(f"batch size {hp.batch_size} exceeds the {samples} training samples of {task_name}")
                for mode, phase, python in itertools.product(sel.modes or list(backend.modes[-1:]), sel.phases,
                                                             sel.pythons):
                    cell = Cell(
                        backend=backend_name, task=task_name, mode=mode, device=device, hp=hp,
                        precision=sel.precision, seed=sel.seed, repeat=repeat, train_size=train_size,
                        test_size=sel.test_size, threads=threads, timeout_s=sel.timeout_s,
                        latency_steps=sel.latency_steps, phase=phase, inference_s=sel.inference_s,
                        inference_queries=sel.inference_queries, backend_ref=class_ref(backend),
                        task_ref=class_ref(type(task)), python=python[1] if python else None,
                        python_label=python[0] if python else None,
                    )
                    reason = availability.reason if not availability.ok else backend.unsupported_reason(task, cell)
                    planned.append(PlannedCell(cell, reason))
    ids = [p.cell.cell_id for p in planned]
    if len(set(ids)) < len(ids):  # one record per id: a second cell with the same id would never be resumed
        twice = next(i for i in ids if ids.count(i) > 1)
        raise PlanError(f"two cells of the plan would both be {twice}: give each grid value once "
                        "(learning rates, weight decays and L1 coefficients must differ within 6 significant "
                        "digits)")
    if sel.order == "task":  # stable: backends keep their order within each task
        rank = {name: i for i, name in enumerate(sel.tasks)}
        planned.sort(key=lambda p: (p.cell.repeat, rank[p.cell.task]))
    return in_lockstep(planned, sel.lockstep) if sel.lockstep else planned


def in_lockstep(planned: list[PlannedCell], axes: list[str]) -> list[PlannedCell]:
    """The training cells of one repeat that differ only in `axes` made into lockstep groups, each group's cells
    next to each other in the plan (where its first cell was) and each allowed its timeout once per cell of the
    group, since it waits while the others take their turns. A cell with no partner, an inference cell (it has
    no epochs to alternate) and one skipped before it starts stay alone."""
    kept = [name for name in LOCKSTEP_AXES if name not in axes]

    def key(p: PlannedCell) -> tuple | None:
        c = p.cell
        if c.phase != "train" or p.skip_reason:
            return None
        return (c.repeat, *(LOCKSTEP_AXES[name](c) for name in kept))

    groups: dict[tuple, list[PlannedCell]] = {}
    for p in planned:
        found = key(p)
        if found is not None:
            groups.setdefault(found, []).append(p)
    first = {id(p): i for i, p in enumerate(planned)}
    position: dict[int, tuple[int, int]] = {}
    for number, members in enumerate(g for g in groups.values() if len(g) > 1):
        for j, p in enumerate(members):
            p.cell = dataclasses.replace(p.cell, lockstep=f"r{p.cell.repeat}-g{number}",
                                         timeout_s=p.cell.timeout_s * len(members))
            position[id(p)] = (first[id(members[0])], j)
    return sorted(planned, key=lambda p: position.get(id(p), (first[id(p)], 0)))
