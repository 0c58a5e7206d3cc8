"""Planning and running one benchmark cell through bench's runner, once per asv run.

asv calls setup once per benchmark method and parameter combination, each in its own
process; the first call runs the cell, later ones read its record from the setup_cache
folder, so every cell trains once however many numbers are tracked from it.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from harness import results
from harness.api import Cell, class_ref
from harness.cli.cmd_run import (
    QUICK,  # `bench run --quick`'s sizes: the quick profile means the same
)
from harness.plugins.registry import Registry, build_registry
from harness.run import folders
from harness.run.plan import PlannedCell
from harness.run.runner import Runner

PROFILES = ("quick", "full")


def registry() -> Registry:
    return build_registry()[0]


def _wanted(variable: str) -> set[str] | None:
    value = os.environ.get(variable, "").strip()
    return {item.strip() for item in value.split(",") if item.strip()} or None


def profile() -> str:
    name = os.environ.get("BENCH_ASV_PROFILE", "quick").strip() or "quick"
    if name not in PROFILES:
        raise ValueError(f"BENCH_ASV_PROFILE={name!r}: choose from {', '.join(PROFILES)}")
    return name


def plan_cell(reg: Registry, backend: str, task: str, mode: str) -> tuple[Cell | None, str | None]:
    """The cell for one parameter combination, or why it is skipped here."""
    for variable, value in (("BENCH_ASV_BACKENDS", backend), ("BENCH_ASV_TASKS", task), ("BENCH_ASV_MODES", mode)):
        wanted = _wanted(variable)
        if wanted is not None and value not in wanted:
            return None, f"{value} not in {variable}"
    backend_cls, task_obj = reg.backends[backend], reg.tasks[task]()
    availability = backend_cls.availability()
    if not availability.ok:
        return None, availability.reason
    quick = profile() == "quick"
    hp = task_obj.hyperparams(epochs=QUICK["epochs"] if quick else None)
    cell = Cell(backend=backend, task=task, mode=mode, device="cpu", hp=hp,
                train_size=QUICK["train_size"] if quick else None, test_size=QUICK["test_size"] if quick else None,
                latency_steps=QUICK["latency_steps"] if quick else 20, backend_ref=class_ref(backend_cls),
                task_ref=class_ref(type(task_obj)))
    return cell, backend_cls.unsupported_reason(task_obj, cell)


def record(folder: str, cell: Cell) -> dict[str, Any]:
    """The cell's results record: read from `folder` if this asv run already trained it, else trained now."""
    path = Path(folder) / f"{cell.cell_id}.json"
    if path.exists():
        return json.loads(path.read_text())
    with tempfile.TemporaryDirectory(prefix="bench-asv-") as tmp:
        state = folders.create(Path(tmp), [PlannedCell(cell)], {}, ["asv"])
        Runner().run(state)
        row = results.load([state.run_dir]).iloc[0]
        values = {k: _plain(v) for k, v in row.items() if k != "env"}
    tmp_path = path.with_suffix(f".{os.getpid()}.tmp")
    tmp_path.write_text(json.dumps(values, default=str))
    os.replace(tmp_path, path)
    return values


def _plain(value: Any) -> Any:
    """pandas/numpy scalars to JSON-able Python values."""
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        try:
            return value.item()
        except (ValueError, AttributeError):
            return value
    return value
