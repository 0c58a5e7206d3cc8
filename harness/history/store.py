"""The history store: a Parquet dataset partitioned by machine, which pandas and DuckDB read as it is.

STORE/
  bench-history.json            marks the folder as a store (format, version)
  records/machine=<id>/*.parquet every published record, one row each (columns.py)

Publishing is all or nothing for what a user can get wrong: every run is read and checked first
(sources.py); then each machine's new records are written to one file in a staging folder beside
`records/`, fsync'd and renamed into place, so a reader never sees part of a file. A record already in the
store (same key: same content, same machine) is never added twice. One publish at a time (a lock file).

Each publish adds at most one file per machine; when a machine has more than MAX_FILES files, or files of
an older column layout, they are merged into one (COMPACT files name what they replace in their metadata,
so a crash between writing one and removing what it replaces is finished by the next publish, and readers
of this module drop the duplicates meanwhile).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from harness.history import HistoryError
from harness.history.columns import PARTITION, arrow_schema, layout, record_key, rows
from harness.history.machine import Machine, of_record
from harness.history.sources import Run
from harness.run.estimate import config_key
from harness.store import durable
from harness.store.cycles import paused_cycle_collection
from harness.store.durable import replace

MARKER = "bench-history.json"
FORMAT, VERSION = "bench-history", 1
RECORDS_DIR = "records"
STAGING_PREFIX = ".staging-"
LOCK = ".lock"
MAX_FILES = 32  # files per machine before they are merged: reading 1,000 small files takes ~1 s, one ~0.02 s
COMPACT = "compact-"
REPLACES = b"bench_replaces"
COMPRESSION = "zstd"
ROW_GROUP = 4096  # rows are in run order: a reader asking for a few runs skips the other row groups


def require_pyarrow() -> None:
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise HistoryError("the history store needs pyarrow: pip install 'bench-harness[history]' "
                           "(or pip install pyarrow)") from None


@dataclass
class Published:
    """What one publish did, per run: records added and already there, on which machines."""

    added: dict[str, int] = field(default_factory=dict)
    present: dict[str, int] = field(default_factory=dict)
    machines: dict[str, set[str]] = field(default_factory=dict)
    compacted: list[str] = field(default_factory=list)
    hardware: dict[str, Machine] = field(default_factory=dict)  # machine id -> the machine, for what was added


def _stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ") + "-" + secrets.token_hex(3)


class Store:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.records = self.path / RECORDS_DIR

    # -- opening -------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | os.PathLike, create: bool = False) -> Store:
        """The store at `path`; with `create`, a new one where `path` is missing or an empty folder."""
        require_pyarrow()
        store = cls(Path(path))
        marker = store.path / MARKER
        if store.path.is_file():
            raise HistoryError(f"{path} is a file, not a history store folder")
        if not store.path.exists() or (store.path.is_dir() and not any(store.path.iterdir())):
            if not create:
                raise HistoryError(f"no history store at {path} (bench publish RUN --to {path} makes one)")
            store.path.mkdir(parents=True, exist_ok=True)
            store.records.mkdir(exist_ok=True)
            replace(marker, json.dumps({"format": FORMAT, "version": VERSION}, indent=1).encode())
            return store
        try:
            info = json.loads(marker.read_text())
        except FileNotFoundError:
            raise HistoryError(f"{path} is not a bench history store (no {MARKER}): publish into a new or empty "
                               "folder") from None
        except (OSError, ValueError) as exc:
            raise HistoryError(f"cannot read {marker}: {exc}") from None
        if not isinstance(info, dict) or info.get("format") != FORMAT:
            raise HistoryError(f"{marker} does not describe a bench history store")
        if not isinstance(info.get("version"), int) or info["version"] > VERSION:
            raise HistoryError(f"{path} was written by a newer bench (store version {info.get('version')!r}; "
                               f"this one reads {VERSION})")
        store.records.mkdir(exist_ok=True)
        return store

    # -- files ---------------------------------------------------------------------------

    def files(self) -> list[Path]:
        """Every data file, machine by machine (folders and files starting with '.' or '_' are not data,
        as pyarrow and DuckDB also skip them)."""
        return sorted(p for p in self.records.glob(f"{PARTITION}=*/*.parquet")
                      if not p.name.startswith((".", "_")) and not p.parent.name.startswith((".", "_")))

    def machines(self) -> list[str]:
        return sorted({p.parent.name.split("=", 1)[1] for p in self.files()})

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.path / LOCK, "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _staging(self) -> Path:
        folder = self.path / f"{STAGING_PREFIX}{_stamp()}"
        folder.mkdir()
        return folder

    def _recover(self) -> None:
        """Finish what a crashed publish left: staging folders go, files a compact file replaces go."""
        for folder in self.path.glob(f"{STAGING_PREFIX}*"):
            shutil.rmtree(folder, ignore_errors=True)
        for path in self.files():
            if path.name.startswith(COMPACT):
                meta = _schema(path).metadata or {}
                for name in json.loads(meta.get(REPLACES, b"[]")):
                    (path.parent / name).unlink(missing_ok=True)

    # -- reading -------------------------------------------------------------------------

    def _dataset(self, files: list[Path]):
        import pyarrow as pa
        import pyarrow.dataset as ds

        schemas = {}
        for path in files:
            schemas.setdefault(_schema(path).remove_metadata(), path)
        unified = pa.unify_schemas(list(schemas)) if len(schemas) > 1 else next(iter(schemas))
        partitioning = ds.partitioning(pa.schema([(PARTITION, pa.string())]), flavor="hive")
        return ds.dataset([str(p) for p in files], schema=unified.append(pa.field(PARTITION, pa.string())),
                          format="parquet", partitioning=partitioning, partition_base_dir=str(self.records))

    def read(self, columns: list[str] | None = None, machines: list[str] | None = None,
             run_ids: list[str] | None = None) -> pd.DataFrame:
        """Records of the store as a DataFrame (all columns, or `columns` plus machine and record_key),
        optionally only some machines' or runs'. Duplicates a crash may have left are dropped."""
        import pyarrow.dataset as ds

        files = [p for p in self.files() if machines is None or p.parent.name.split("=", 1)[1] in machines]
        wanted = None if columns is None else list(dict.fromkeys([*columns, PARTITION, "record_key"]))
        if not files:
            return pd.DataFrame(columns=wanted or [PARTITION, *(n for n, _ in layout())])
        dataset = self._dataset(files)
        if wanted is not None:
            missing = [c for c in wanted if c not in dataset.schema.names]
            wanted = [c for c in wanted if c in dataset.schema.names]
        condition = ds.field("run_id").isin(run_ids) if run_ids is not None else None
        df = _loaded(lambda: dataset.to_table(columns=wanted, filter=condition), self.records).to_pandas()
        if wanted is not None:
            for name in missing:
                df[name] = None
        if df["record_key"].duplicated().any():
            df = df.drop_duplicates("record_key").reset_index(drop=True)
        return df

    def keys(self) -> set[str]:
        files = self.files()
        if not files:
            return set()
        dataset = self._dataset(files)
        return set(_loaded(lambda: dataset.to_table(columns=["record_key"]), self.records).column(0).to_pylist())

    # -- writing -------------------------------------------------------------------------

    def publish(self, runs: list[Run]) -> Published:
        """Add the records of `runs` not already in the store; see the module docstring."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        done = Published()
        now = datetime.now(timezone.utc)
        with self._locked(), paused_cycle_collection():
            self._recover()
            known = self.keys()
            by_machine: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {}
            for run in runs:
                added = present = 0
                for record in run.records:
                    machine = of_record(record)
                    key = record_key(record, machine.id)
                    if key in known:
                        present += 1
                        continue
                    known.add(key)
                    added += 1
                    records, extras = by_machine.setdefault(machine.id, ([], []))
                    records.append(record)
                    extras.append({"machine_host": machine.host, "machine_cpu": machine.cpu,
                                   "machine_gpu": machine.gpu or None, "config": config_key(record["cell_id"]),
                                   "run_started": run.started, "record_key": key, "published_at": now,
                                   "source": run.source})
                    done.machines.setdefault(run.run_id, set()).add(machine.id)
                    done.hardware[machine.id] = machine
                done.added[run.run_id] = done.added.get(run.run_id, 0) + added
                done.present[run.run_id] = done.present.get(run.run_id, 0) + present
            if not by_machine:
                return done
            staging = self._staging()
            try:
                schema = arrow_schema()
                staged = []
                for machine_id, (records, extras) in sorted(by_machine.items()):
                    table = pa.Table.from_pydict(rows(records, extras), schema=schema)
                    path = staging / f"part-{_stamp()}.parquet"
                    pq.write_table(table, path, compression=COMPRESSION, row_group_size=ROW_GROUP)
                    durable.sync_file(path)
                    staged.append((machine_id, path))
                for machine_id, path in staged:
                    folder = self.records / f"{PARTITION}={machine_id}"
                    folder.mkdir(exist_ok=True)
                    os.replace(path, folder / path.name)
                    durable.sync_folder(folder)
                for machine_id in self.machines():
                    if self._compact_if_needed(machine_id, staging):
                        done.compacted.append(machine_id)
            except OSError as exc:  # a full disk, a read-only store: what was renamed in is whole, the rest is not
                raise HistoryError(f"cannot write the store {self.path}: {exc.strerror or exc}") from None
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        return done

    def _compact_if_needed(self, machine_id: str, staging: Path) -> bool:
        import pyarrow as pa
        import pyarrow.parquet as pq

        folder = self.records / f"{PARTITION}={machine_id}"
        files = sorted(p for p in folder.glob("*.parquet") if not p.name.startswith((".", "_")))
        current = arrow_schema()
        if len(files) <= MAX_FILES and all(_schema(p).remove_metadata() == current for p in files):
            return False
        tables = [pq.read_table(p) for p in files]
        unified = pa.unify_schemas([current, *(t.schema.remove_metadata() for t in tables)])
        aligned = []
        for table in tables:
            for name in unified.names:
                if name not in table.schema.names:
                    table = table.append_column(pa.field(name, unified.field(name).type),
                                                pa.nulls(len(table), unified.field(name).type))
            aligned.append(table.select(unified.names).cast(unified))
        merged = pa.concat_tables(aligned)
        _, first = _unique_positions(merged.column("record_key").to_pylist())
        merged = merged.take(pa.array(first)).replace_schema_metadata(
            {REPLACES: json.dumps([p.name for p in files]).encode()})
        path = staging / f"{COMPACT}{_stamp()}.parquet"
        pq.write_table(merged, path, compression=COMPRESSION, row_group_size=ROW_GROUP)
        durable.sync_file(path)
        os.replace(path, folder / path.name)
        durable.sync_folder(folder)
        for old in files:
            old.unlink()
        durable.sync_folder(folder)
        return True


def _schema(path: Path):
    """A data file's schema; HistoryError naming the file when it is not Parquet (damaged, or put there)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_schema(path)
    except (pa.ArrowException, OSError) as exc:
        raise HistoryError(f"{path} in the store is not a readable Parquet file ({exc}): move it out of the "
                           "store's records folder") from None


def _loaded(read: Any, where: Path):
    import pyarrow as pa

    try:
        return read()
    except (pa.ArrowException, OSError) as exc:
        raise HistoryError(f"cannot read the store's data under {where}: {exc}") from None


def _unique_positions(keys: list[str]) -> tuple[int, list[int]]:
    seen: set[str] = set()
    first = []
    for position, key in enumerate(keys):
        if key not in seen:
            seen.add(key)
            first.append(position)
    return len(keys) - len(first), first


