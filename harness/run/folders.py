"""Run folders: create one for a plan, or reopen one to resume its unfinished cells; one bench
process at a time per run folder (`lock`)."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO, Any

from harness import results
from harness.api import Cell, name_problem
from harness.exits import UsageError
from harness.run.plan import PlannedCell
from harness.run.runner import RunState

LOCK_FILE = ".lock"


def create(root: Path, planned: list[PlannedCell], env: dict[str, Any], argv: list[str]) -> RunState:
    run_id = results.new_run_id()
    run_dir = Path(root) / run_id
    try:
        run_dir.mkdir(parents=True)
        results.write_json_atomic(run_dir / results.RUN_FILE, {
            "schema_version": results.SCHEMA_VERSION,
            "run_id": run_id,
            "created": results.utc_now(),
            "argv": argv,
            "env": env,
            "plan": [{"cell": p.cell.to_dict(), "skip_reason": p.skip_reason} for p in planned],
        })
    except OSError as exc:  # nothing half-written: no run folder without its plan
        if run_dir.is_dir():
            for leftover in run_dir.iterdir():
                leftover.unlink()
            run_dir.rmdir()
        raise UsageError(f"cannot write results to {root}: {exc.strerror or exc}") from None
    return RunState(run_dir, run_id, env, planned)


def lock(run_dir: Path) -> IO:
    """Hold the run folder for this process (an flock on its lock file, released when this process ends or
    the returned file is closed); a run another bench process holds is exit 2."""
    path = Path(run_dir) / LOCK_FILE
    try:
        held = open(path, "a+")
    except OSError as exc:
        raise UsageError(f"cannot lock {path}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        held.seek(0)
        holder = held.read().strip()
        held.close()
        by = f" (pid {holder})" if holder.isdigit() else ""
        raise UsageError(f"run {Path(run_dir).name} is in progress in another bench process{by}; wait for it to "
                         "finish or stop it") from None
    try:  # who holds it, for the message above; a full disk must not stop the run here
        held.truncate(0)
        held.write(str(os.getpid()))
        held.flush()
    except OSError:
        pass
    return held


def held_elsewhere(run_dir: Path) -> bool:
    """Whether another bench process holds the run folder now (a run in progress)."""
    try:
        with open(Path(run_dir) / LOCK_FILE, "r") as probe:
            fcntl.flock(probe, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except FileNotFoundError:
        return False
    except OSError:
        return True
    return False


def why_empty(run_dir: Path) -> str:
    """One line on why a run has no record to show: its lines unreadable, still running, or stopped before
    its first cell ended."""
    run_dir = Path(run_dir)
    name = run_dir.name
    try:
        lines = [line for line in (run_dir / results.RECORDS).read_bytes().splitlines() if line.strip()]
    except OSError:
        lines = []
    if lines:
        return (f"run {name}: none of the {len(lines)} lines of its {results.RECORDS} could be read (the warnings "
                "above say why)")
    try:
        planned = f"{len(results.read_run(run_dir).get('plan') or [])} cells planned"
    except (results.ResultsError, OSError):
        planned = "its plan unreadable"
    if held_elsewhere(run_dir):
        return f"run {name} has no finished cell yet: it is running in another bench process ({planned})"
    return (f"run {name} has no records: it stopped before its first cell ended ({planned}); finish it with "
            f"bench run --resume {name}")


def reopen(run_dir: Path) -> RunState:
    """The run's plan, with the cells that already have a record marked done."""
    info = results.read_run(run_dir)
    try:
        planned = [PlannedCell(Cell.from_dict(p["cell"]), p.get("skip_reason")) for p in info["plan"]]
        for p in planned:  # cell ids become log file names
            for kind in ("backend", "task", "mode"):
                problem = name_problem(getattr(p.cell, kind))
                if problem:
                    raise ValueError(f"{kind} name {getattr(p.cell, kind)!r} {problem}")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise results.ResultsError(f"{run_dir / results.RUN_FILE} has an unreadable plan ({exc})") from None
    done: set[str] = set()
    records_path = Path(run_dir) / results.RECORDS
    if records_path.exists():
        records, _ = results.read_records(records_path)
        done = {r["cell_id"] for r in records}
    return RunState(Path(run_dir), info.get("run_id", Path(run_dir).name), info.get("env") or {}, planned, done)
