"""The store's columns: one record as one row of fixed, typed columns, and rows back as records.

Every column of the record schema (harness.store.record) keeps its name. Text, numbers and flags keep
their kind (numbers as float64: the schema allows fractions in all but schema_version); objects and
lists (curve, epoch_s, metrics, details, warnings) are JSON text, so every file of the store has the same
columns whatever a backend put in them, and a query that needs them parses them (pandas: json.loads;
DuckDB: ->>). The record's environment becomes env_* columns (ENV_TYPES), its package versions the JSON
object env_versions, and anything else it holds env_other; keys a record has beyond the schema (written by
another version of bench) go to `extra`. The store adds the machine's parts, the configuration, when the
run started, a key that identifies the record, when and from where it was published.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import Any

import pandas as pd

from harness.store import record as schema

try:  # a sweep's records encode three times faster; the standard library gives the same text
    import orjson

    def _dumps(value: Any) -> str:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
except ImportError:  # pragma: no cover - orjson is a dependency; kept optional as in harness.results
    def _dumps(value: Any) -> str:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)

ENV_TYPES = {  # envinfo.collect()'s scalar fields
    "hostname": "string", "os": "string", "python": "string", "python_executable": "string",
    "cpu_model": "string", "cpu_count": "int64", "usable_cores": "int64", "ram_gb": "float64",
    "gpu": "string", "gpu_count": "int64", "gpu_driver": "string", "gpu_memory": "string", "cuda": "string",
    "harness_version": "string", "git_commit": "string",
}
JSON_KINDS = (schema.OBJECT, schema.OBJECTS, schema.NUMBERS, schema.TEXTS)
FRONT = (("machine_host", "string"), ("machine_cpu", "string"), ("machine_gpu", "string"), ("config", "string"),
         ("run_started", "timestamp"))
BACK = (("env_versions", "json"), ("env_other", "json"), ("extra", "json"), ("record_key", "string"),
        ("published_at", "timestamp"), ("source", "string"))
PARTITION = "machine"  # the folder level (machine=<id>), not a column inside the files


def _kind(column: schema.Column) -> str:
    if column.kind is schema.WHOLE:
        return "int64"
    if column.kind in (schema.NUMBER, schema.NUMBER_OR_NULL):
        return "float64"
    if column.kind is schema.FLAG:
        return "bool"
    if column.kind in JSON_KINDS:
        return "json"
    return "string"


def layout() -> list[tuple[str, str]]:
    """(name, kind) of every column of the store's files, in order; kinds: string, int64, float64, bool,
    json (text holding JSON), timestamp (UTC)."""
    record = [(c.name, _kind(c)) for c in schema.COLUMNS if c.name != "env"]
    env = [(f"env_{name}", kind) for name, kind in ENV_TYPES.items()]
    return [*FRONT, *record, *env, *BACK]


def arrow_schema(columns: list[tuple[str, str]] | None = None):
    import pyarrow as pa

    types = {"string": pa.string(), "json": pa.string(), "int64": pa.int64(), "float64": pa.float64(),
             "bool": pa.bool_(), "timestamp": pa.timestamp("us", tz="UTC")}
    return pa.schema([(name, types[kind]) for name, kind in (columns or layout())])


def when(text: Any) -> datetime | None:
    """An ISO 8601 time as an aware UTC datetime; None if it is not one."""
    try:
        moment = datetime.fromisoformat(str(text))
    except (TypeError, ValueError):
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)


def record_key(record: dict[str, Any], machine_id: str) -> str:
    """What identifies a record: its whole content and its machine. Publishing the same run again (from its
    folder or an archive of it) finds every key present and adds nothing; a copy with another host does not."""
    return hashlib.blake2b((machine_id + "\n" + _dumps(record)).encode(), digest_size=16).hexdigest()


def _json_column(values: list[Any]) -> list[str | None]:
    return [None if v is None else _dumps(v) for v in values]


def _of_kind(values: list[Any], kind: str) -> list[Any]:
    """Values of a foreign environment (another version, a plugin) that are not of the column's kind are null."""
    if kind == "int64":
        return [v if type(v) is int else None for v in values]
    if kind == "float64":
        return [v if type(v) in (int, float) else None for v in values]
    return [v if type(v) is str else None for v in values]


def rows(records: list[dict[str, Any]], extras: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Columns (name -> values) of the store's layout for `records` (as harness.results reads them: every
    column of its declared kind), each paired with its store-side values in `extras` (machine_host, ...).
    Column by column: 48,000 records of ~110 columns convert in a few seconds."""
    known = {c.name for c in schema.COLUMNS}
    out: dict[str, list[Any]] = {}
    envs = [r.get("env") if type(r.get("env")) is dict else {} for r in records]
    names = [(name, kind) for name, kind in layout() if name in known]
    fields = [(name, kind) for name, kind in layout() if name.startswith("env_") and name[4:] in ENV_TYPES]
    # Record by record, then transposed: each record's values are read while it is in the cache (reading one
    # column across 48,000 records at a time is three times slower).
    by_record = zip(*([r.get(name) for name, _ in names] for r in records)) if records else iter([[]] * len(names))
    for (name, kind), values in zip(names, by_record):
        out[name] = _json_column(list(values)) if kind == "json" else list(values)
    by_env = zip(*([e.get(name[4:]) for name, _ in fields] for e in envs)) if envs else iter([[]] * len(fields))
    for (name, kind), values in zip(fields, by_env):
        out[name] = _of_kind(list(values), kind)
    out["env_versions"] = [_dumps(e["versions"]) if type(e.get("versions")) is dict else None for e in envs]
    out["env_other"] = [_dumps(other) if other else None for other in
                        ({k: v for k, v in e.items() if k not in ENV_TYPES and k != "versions"} for e in envs)]
    out["extra"] = [_dumps(unknown) if unknown else None for unknown in
                    ({k: v for k, v in r.items() if k not in known} for r in records)]
    for name, _ in (*FRONT, *BACK):
        if name not in out:
            out[name] = [extra[name] for extra in extras]
    return out


def to_records_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Store rows back as harness.results.load returns records: objects and lists parsed, the environment
    as env_* columns and versions as version_* columns; the store's own columns dropped. Reports of one
    run are rendered from this."""
    out = df.copy()
    for name, kind in layout():
        if kind == "json" and name in out and name not in ("env_versions", "env_other", "extra"):
            out[name] = [json.loads(v) if isinstance(v, str) else None for v in out[name]]
    expanded: list[dict[str, Any]] = []
    for versions, other, extra in zip(out.get("env_versions", []), out.get("env_other", []), out.get("extra", [])):
        row: dict[str, Any] = {}
        if isinstance(versions, str):
            row.update({f"version_{k}": v for k, v in json.loads(versions).items()})
        if isinstance(other, str):
            row.update({f"env_{k}": v for k, v in json.loads(other).items() if not isinstance(v, (dict, list))})
        if isinstance(extra, str):
            row.update(json.loads(extra))
        expanded.append(row)
    side = pd.DataFrame(expanded, index=out.index)
    store_only = [n for n, _ in (*FRONT, *BACK)] + [PARTITION]
    out = out.drop(columns=[c for c in store_only if c in out])
    return out.join(side[[c for c in side.columns if c not in out.columns]])
