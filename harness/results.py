"""The results store: one folder per run, one JSON line per finished cell, loadable into pandas.

results/<run-id>/
  run.json        the plan (every cell), the command line and the environment
  records.jsonl   one record per finished cell, appended as each finishes
  logs/           each cell's stdout and stderr

Records are plain JSON (never pickle): nothing in a results file is executed. Their columns are
declared in harness.store.record (SCHEMA here is its name -> description table).
"""

from __future__ import annotations

import json
import os
import secrets
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from harness.store import durable
from harness.store.cycles import paused_cycle_collection
from harness.store.record import (  # noqa: F401 (re-exported)
    BEFORE_IT_EXISTED,
    FAILED,
    SCHEMA,
    STATUSES,
    conform,
    plain,
    plain_line,
    record_problem,
)
from harness.store.safe_text import one_line

SCHEMA_VERSION = 1
RECORDS = "records.jsonl"
RUN_FILE = "run.json"
REFERENCE_PREFIX = "reference-"  # committed runs a fresh clone already has
MAX_SHOWN_LINES = 5  # line numbers named in the one-line summary of a file's bad lines


class ResultsError(Exception):
    """A results folder or file can't be used; the message names it."""


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def record_line(record: dict[str, Any]) -> bytes:
    return (json.dumps(plain(record), sort_keys=True, allow_nan=False, ensure_ascii=False) + "\n").encode()


def append_record(run_dir: Path, record: dict[str, Any]) -> None:
    """Append one record whole and fsync it; on a full disk (or any write error) the file is left as it
    was and durable.SaveError says why."""
    durable.append(Path(run_dir) / RECORDS, record_line(record))


def write_json_atomic(path: Path, data: Any) -> None:
    """The whole file or nothing (durable.replace); OSError if it cannot be written."""
    durable.replace(path, json.dumps(plain(data), indent=1, sort_keys=True, allow_nan=False).encode())


@dataclass
class _Tally:
    """Lines with one kind of problem in a file: how many, the first few numbers, and the first reason."""

    one: str  # "{reason}, skipped"
    many: str  # "{count} lines skipped"
    count: int = 0
    lines: list[int] = field(default_factory=list)
    first: str = ""

    def add(self, number: int, reason: str) -> None:
        self.count += 1
        if self.count <= MAX_SHOWN_LINES:
            self.lines.append(number)
            self.first = self.first or reason

    def summary(self, path: Path) -> str:
        if self.count == 1:
            return f"{path}:{self.lines[0]}: " + self.one.format(reason=self.first)
        shown = ", ".join(map(str, self.lines)) + (", ..." if self.count > len(self.lines) else "")
        return f"{path}: {self.many.format(count=self.count)}: lines {shown} (line {self.lines[0]}: {self.first})"


_DECODE = json.JSONDecoder().decode
try:  # three times the standard library's speed on a sweep's records; machines without it read them slower
    from orjson import loads as _fast_loads
except ImportError:
    _fast_loads = None


def read_records(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """All usable records of one records file, and at most two summary lines about the rest: lines
    skipped (not JSON, cut short, not a record) and records kept with fields of the wrong kind nulled.
    Linear in the file's size, whatever it holds."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ResultsError(f"cannot read results file {path}: {exc.strerror or exc}") from None
    records = []
    skipped = _Tally("{reason}, skipped", "{count} lines skipped")
    nulled = _Tally("record kept, {reason}", "{count} records kept with fields of the wrong kind nulled")
    with paused_cycle_collection():
        for number, raw in enumerate(data.split(b"\n"), start=1):
            record = _read_line(raw, number, skipped, nulled)
            if record is not None:
                records.append(record)
    return records, [t.summary(Path(path)) for t in (skipped, nulled) if t.count]


def _read_line(raw: bytes, number: int, skipped: _Tally, nulled: _Tally) -> dict[str, Any] | None:
    """One line as a record, or None (blank, or skipped and tallied)."""
    if raw[:1] != b"{" and raw.lstrip()[:1] != b"{":  # a record is an object: the cheap test first
        if raw.strip():
            skipped.add(number, "not a bench record (not a JSON object)")
        return None
    is_plain = plain_line(raw)
    try:
        record = _fast_loads(raw) if is_plain and _fast_loads else _DECODE(raw.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError and orjson's errors are ValueErrors
        skipped.add(number, "unreadable record (cut short or corrupt)")
        return None
    wrong = record_problem(record)
    if wrong:
        skipped.add(number, f"not a bench record ({wrong})")
        return None
    record, changed = conform(record, is_plain=is_plain)
    if changed:
        nulled.add(number, "; ".join(changed))
    return record


def read_run(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / RUN_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ResultsError(f"{run_dir} is not a bench run folder (no {RUN_FILE})") from None
    except (OSError, ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise ResultsError(f"cannot read {path}: {one_line(str(exc))[:300]}") from None
    if not isinstance(data, dict) or not isinstance(data.get("plan"), list):
        raise ResultsError(f"{path} is not a bench run description")
    return data


def _when(text: Any) -> datetime | None:
    """An ISO 8601 time as an aware datetime (UTC when it names no zone); None if it is not one."""
    try:
        when = datetime.fromisoformat(str(text))
    except (TypeError, ValueError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def started(run_dir: Path) -> datetime | None:
    """When a run started: run.json's "created", else the time of its first readable record."""
    try:
        created = _when(json.loads((Path(run_dir) / RUN_FILE).read_text()).get("created"))
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        created = None
    if created:
        return created
    try:
        with open(Path(run_dir) / RECORDS, "rb") as f:
            for raw in f:
                try:
                    when = _when(json.loads(raw).get("timestamp"))
                except (UnicodeDecodeError, ValueError, AttributeError):
                    continue
                if when:
                    return when
    except OSError:
        pass
    return None


def run_dirs(root: Path) -> list[Path]:
    """Run folders under a results root, oldest first by start time (runs whose start is unknown first,
    then by name)."""
    root = Path(root)
    if not root.is_dir():
        return []
    runs = [p for p in root.iterdir() if (p / RUN_FILE).is_file() or (p / RECORDS).is_file()]
    oldest = datetime.min.replace(tzinfo=timezone.utc)
    return sorted(runs, key=lambda p: (started(p) or oldest, p.name))


def is_reference(run_dir: Path) -> bool:
    """A committed reference run (results/reference-*): shown only when named, never as 'latest'."""
    return Path(run_dir).name.startswith(REFERENCE_PREFIX)


def resolve(ref: str | os.PathLike, root: Path) -> Path:
    """A run given as a folder, a records file, a run id under root, or 'latest' (the newest run by start
    time that is not a committed reference run)."""
    text = os.fspath(ref)
    if text == "latest":
        every = run_dirs(root)
        runs = [p for p in every if not is_reference(p)]
        if not runs:
            references = ", ".join(p.name for p in every)
            raise ResultsError(f"no runs in {root}" + (f" besides the committed reference runs ({references}): "
                                                      "name one to report it, e.g. bench report "
                                                      f"{every[-1].name}" if every else ""))
        return runs[-1]
    for candidate in (Path(text), Path(root) / text):
        if candidate.is_file():
            return candidate
        if candidate.is_dir() and ((candidate / RECORDS).is_file() or (candidate / RUN_FILE).is_file()):
            return candidate
    raise ResultsError(f"no run {text!r} (not a run folder, a records file or a run id in {root})")


def _records_path(path: Path) -> Path:
    return path if path.is_file() else path / RECORDS


def flatten(record: dict[str, Any]) -> dict[str, Any]:
    """One DataFrame row: environment keys become env_* columns, versions version_* columns."""
    row = {k: v for k, v in record.items() if k != "env"}
    env = record.get("env") or {}
    for key, value in env.items():
        if key == "versions" and isinstance(value, dict):
            row.update({f"version_{dist}": ver for dist, ver in value.items()})
        elif not isinstance(value, (dict, list)):
            row[f"env_{key}"] = value
    return row


def load(paths: Iterable[str | os.PathLike] | str | os.PathLike | None = None, root: str | os.PathLike = "results",
         ) -> pd.DataFrame:
    """Load runs into one DataFrame, one row per cell record.

    paths: run folders, records files or run ids (default: every run under root).
    Lines that are not records are skipped, and fields of the wrong kind nulled, with one warning per
    file and kind of problem (how many, the first line numbers); those lines are also in
    `df.attrs["problems"]`.
    """
    root = Path(root)
    if paths is None:
        sources = [_records_path(p) for p in run_dirs(root)]
    else:
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        sources = [_records_path(resolve(p, root)) for p in paths]
    rows, problems = [], []
    with paused_cycle_collection():
        for source in sources:
            if not source.exists():
                continue  # a run that has not finished a cell yet
            records, bad = read_records(source)
            rows += [flatten(r) for r in records]
            problems += bad
        df = pd.DataFrame(rows, columns=None if rows else list(SCHEMA))
    for problem in problems:
        warnings.warn(problem, stacklevel=2)
    for column in SCHEMA:
        if column not in df.columns and column != "env":
            df[column] = None
    for column, value in BEFORE_IT_EXISTED.items():
        df[column] = pd.to_numeric(df[column], errors="coerce").fillna(value)
    df.attrs["problems"] = problems
    return df

