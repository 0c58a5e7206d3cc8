"""Run folders: create one for a plan, or reopen one to resume its unfinished cells."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness import results
from harness.api import Cell
from harness.plan import PlannedCell
from harness.runner import RunState


def create(root: Path, planned: list[PlannedCell], env: dict[str, Any], argv: list[str]) -> RunState:
    run_id = results.new_run_id()
    run_dir = Path(root) / run_id
    run_dir.mkdir(parents=True)
    results.write_json_atomic(run_dir / results.RUN_FILE, {
        "schema_version": results.SCHEMA_VERSION,
        "run_id": run_id,
        "created": results.utc_now(),
        "argv": argv,
        "env": env,
        "plan": [{"cell": p.cell.to_dict(), "skip_reason": p.skip_reason} for p in planned],
    })
    return RunState(run_dir, run_id, env, planned)


def reopen(run_dir: Path) -> RunState:
    """The run's plan, with the cells that already have a record marked done."""
    info = results.read_run(run_dir)
    try:
        planned = [PlannedCell(Cell.from_dict(p["cell"]), p.get("skip_reason")) for p in info["plan"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise results.ResultsError(f"{run_dir / results.RUN_FILE} has an unreadable plan ({exc})") from None
    done: set[str] = set()
    records_path = Path(run_dir) / results.RECORDS
    if records_path.exists():
        records, _ = results.read_records(records_path)
        done = {r["cell_id"] for r in records}
    return RunState(Path(run_dir), info.get("run_id", Path(run_dir).name), info.get("env") or {}, planned, done)
