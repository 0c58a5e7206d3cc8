"""The runs `bench publish` is given, read whole before anything is written.

A RUN argument is a run folder, a records file, a run id under the results folder, a folder of run
folders (every run in it), or an archive of runs (archives.py). Each run comes back with its records
(harness.results reads and checks them), the environment its run.json recorded (filled into records
that lack their own, so every record keeps one) and when it started. A source that holds no record, or
that is not a run at all, is a HistoryError naming it.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from harness import results
from harness.history import HistoryError
from harness.history.archives import looks_like_archive, unpack_runs
from harness.history.columns import when
from harness.store.cycles import paused_cycle_collection


@dataclass
class Run:
    run_id: str
    records: list[dict[str, Any]]
    started: datetime | None
    source: str  # what the user named, as a reader of the store sees it
    problems: list[str]  # lines of its records file that were skipped or had fields nulled


def _run_env(folder: Path) -> dict[str, Any]:
    try:
        env = results.read_run(folder).get("env")
    except results.ResultsError:
        return {}
    return env if isinstance(env, dict) else {}


def read_run(path: Path, source: str) -> Run:
    """One run from its folder or records file."""
    folder = path.parent if path.is_file() else path
    records_file = path if path.is_file() else path / results.RECORDS
    if not records_file.is_file():
        raise HistoryError(f"{source}: run {folder.name} has no records ({results.RECORDS} missing)")
    records, problems = results.read_records(records_file)
    if not records:
        detail = f": {problems[0]}" if problems else ""
        raise HistoryError(f"{source} is not a bench run with records (no record in {records_file.name}{detail})")
    env = _run_env(folder)
    if env:
        for record in records:
            if not isinstance(record.get("env"), dict) or not record["env"]:
                record["env"] = env
    started = results.started(folder) if (folder / results.RUN_FILE).is_file() else None
    stamps = [t for t in (when(r.get("timestamp")) for r in records) if t]
    started = started or (min(stamps) if stamps else None)
    ids = [r["run_id"] for r in records if isinstance(r.get("run_id"), str) and r["run_id"]]
    listed = _run_id(folder)
    run_id = ids[0] if ids else listed or folder.name
    for record in records:  # a record whose run id was lost (nulled) belongs to the run it was read from
        if not isinstance(record.get("run_id"), str) or not record["run_id"]:
            record["run_id"] = listed or run_id
    return Run(run_id, records, started, source, problems)


def _run_id(folder: Path) -> str | None:
    try:
        found = results.read_run(folder).get("run_id")
    except results.ResultsError:
        return None
    return found if isinstance(found, str) and found else None


def _is_run(folder: Path) -> bool:
    return (folder / results.RECORDS).is_file() or (folder / results.RUN_FILE).is_file()


def _expand(ref: str, root: Path, scratch: ExitStack) -> Iterator[tuple[Path, str]]:
    path = Path(ref)
    if path.is_dir() and not _is_run(path):
        runs = results.run_dirs(path)
        if not runs:
            raise HistoryError(f"{ref} is neither a run folder nor a folder of runs")
        yield from ((run, f"{ref}/{run.name}") for run in runs)
        return
    if path.is_file() and looks_like_archive(path):
        into = Path(scratch.enter_context(tempfile.TemporaryDirectory(prefix="bench-publish-")))
        for folder in unpack_runs(path, into):
            yield folder, (folder / ".origin").read_text()
        return
    try:
        yield results.resolve(ref, root), os.fspath(ref)
    except results.ResultsError as exc:
        raise HistoryError(str(exc)) from None


def read_runs(refs: list[str], root: Path) -> list[Run]:
    """Every run the arguments name, read whole; HistoryError at the first that can't be published."""
    runs = []
    with ExitStack() as scratch, warnings.catch_warnings(), paused_cycle_collection():
        warnings.simplefilter("ignore")
        for ref in refs:
            for path, source in _expand(ref, root, scratch):
                runs.append(read_run(path, source))
    return runs
