"""The results record: each column's name, kind and meaning, declared once in COLUMNS.

The worker serialises its result with it, the parent validates what a worker sends with it, the runner
builds every record with it and the results store checks what it reads with it. A record needs a
cell_id and a known status; any other field of the wrong kind is nulled and named in the record's
`warnings`, so a record is never dropped for one bad value. Every text in a record is printable and at
most MAX_TEXT characters long (harness.store.safe_text). Standard library only: the worker imports this before
any framework.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from harness.store.safe_text import MAX_TEXT, capped, one_line

STATUSES = ("ok", "skipped", "error", "timeout", "diverged", "oom", "cancelled")
FAILED = ("error", "timeout", "diverged", "oom", "cancelled")
MAX_DEPTH = 32  # nesting kept in free-form fields (details, env); deeper is shown as text


def _number(value: Any) -> bool:
    kind = type(value)  # exact types first: a record holds thousands of numbers
    return kind is float or kind is int or (kind is not bool and isinstance(value, (int, float)))


def finite_number(value: Any) -> float | None:
    """A record's value as a float where it is a finite real number (not a bool), else None: any field may be
    null, or hold something else, by the time a consumer reads it."""
    return float(value) if _number(value) and math.isfinite(value) else None


@dataclass(frozen=True)
class Kind:
    name: str  # as a warning says it: "details is text, not an object"
    accepts: Callable[[Any], bool]
    exact: frozenset[type] = frozenset()  # types accepted without calling `accepts` (a reader checks ~70 per record)


TEXT = Kind("text", lambda v: isinstance(v, str), frozenset({str}))
NUMBER = Kind("a number", _number, frozenset({int, float}))
WHOLE = Kind("a whole number", lambda v: isinstance(v, int) and not isinstance(v, bool), frozenset({int}))
NUMBER_OR_NULL = Kind("a number or null", lambda v: v is None or _number(v), frozenset({int, float, type(None)}))
FLAG = Kind("true or false", lambda v: isinstance(v, bool), frozenset({bool}))
OBJECT = Kind("an object", lambda v: isinstance(v, dict), frozenset({dict}))
NUMBERS = Kind("a list of numbers", lambda v: isinstance(v, list) and all(map(_number, v)))
OBJECTS = Kind("a list of objects", lambda v: isinstance(v, list) and all(isinstance(x, dict) for x in v))
TEXTS = Kind("a list of texts", lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v))

RUN, WORKER = "run", "worker"  # who sets a column: the runner, from the cell and the run; or the cell's worker


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    source: str
    description: str


C = Column
COLUMNS: tuple[Column, ...] = (
    C("schema_version", WHOLE, RUN, "version of this record layout"),
    C("run_id", TEXT, RUN, "the run this cell belongs to"),
    C("cell_id", TEXT, RUN, "backend-task-mode-device-... identifier of the cell"),
    C("timestamp", TEXT, RUN, "UTC time the cell finished (ISO 8601)"),
    C("backend", TEXT, RUN, "backend name"),
    C("framework_version", TEXT, RUN, "version of the backend's framework"),
    C("task", TEXT, RUN, "task name"),
    C("mode", TEXT, RUN, "eager, compiled, ..."),
    C("phase", TEXT, RUN, "what the cell measured: train, or inference (prediction; the infer_* columns)"),
    C("device", TEXT, RUN, "cpu or cuda"),
    C("device_name", TEXT, RUN, "CPU model or GPU name"),
    C("precision", TEXT, RUN, "fp32, tf32 or bf16"),
    C("batch_size", NUMBER, RUN, "samples per step"),
    C("epochs", NUMBER, RUN, "epochs asked for"),
    C("optimizer", TEXT, RUN, "optimizer name"),
    C("lr", NUMBER, RUN, "learning rate"),
    C("weight_decay", NUMBER, RUN, "coupled L2 coefficient: (weight_decay / 2) * ||w||^2 added to the objective"),
    C("l1", NUMBER, RUN, "L1 coefficient: l1 * ||w||_1 added to the objective (subgradient l1 * sign(w), 0 at 0)"),
    C("seed", NUMBER, RUN, "seed of the initial weights and batch order"),
    C("repeat", NUMBER, RUN, "repeat index (each repeat is its own process)"),
    C("python", TEXT, RUN, "the Python environment the cell ran in, by the label bench run --python gave it; "
      "empty: bench's own (env.versions has that environment's framework versions either way)"),
    C("lockstep", TEXT, RUN, "the lockstep group the cell ran in (bench run --lockstep): cells of one repeat that "
      "took turns epoch by epoch, which bench compare pairs; empty: it ran alone"),
    C("train_size", NUMBER, WORKER, "training samples used"),
    C("test_size", NUMBER, WORKER, "test samples used"),
    C("threads", NUMBER, WORKER, "CPU threads the framework was pinned to"),
    C("status", TEXT, WORKER,
      "ok, skipped, error, timeout, diverged, oom, or cancelled (on the cluster, not by bench)"),
    C("message", TEXT, WORKER, "why a cell was skipped or failed"),
    C("warnings", TEXTS, WORKER, "list: what was wrong with the values the cell reported (each such value is null)"),
    C("log", TEXT, RUN, "the cell's log file, relative to the run folder"),
    C("import_s", NUMBER, WORKER, "framework import time"),
    C("load_s", NUMBER, WORKER, "time to load the task's arrays from disk or cache"),
    C("setup_s", NUMBER, WORKER, "data to device, model and optimizer build"),
    C("compile_s", NUMBER, WORKER,
      "compile time as the framework reports it (tracing, lowering, code generation), measured directly"),
    C("compile_source", TEXT, WORKER, "how compile_s was measured; empty where the framework cannot tell"),
    C("first_epoch_excess_s", NUMBER, WORKER,
      "first epoch minus the median later epoch: one-time cost as an estimate (negative kept)"),
    C("cold_start_s", NUMBER, WORKER,
      "from the start of the cell's process to the end of the first epoch, bench's own checks excluded"),
    C("first_epoch_s", NUMBER, WORKER, "wall time of the first epoch, compile included"),
    C("steady_epoch_s", NUMBER, WORKER, "median epoch time after the first (steady state); where one epoch is "
      "under 100 ms, the median of blocks of epochs timed together, per epoch (steady_epoch_method)"),
    C("steady_epoch_method", TEXT, WORKER, "how steady_epoch_s was measured"),
    C("steady_epoch_blocks_s", NUMBERS, WORKER, "list: seconds of each block of epochs timed together, where so"),
    C("train_s", NUMBER, WORKER, "all epochs, compile included"),
    C("epoch_s", NUMBERS, WORKER, "list: wall time of each epoch"),
    C("step_ms_p50", NUMBER, WORKER, "median latency of one individually synced training step"),
    C("step_ms_p90", NUMBER, WORKER, "90th percentile of that latency"),
    C("samples_per_s", NUMBER, WORKER, "training throughput over the steady epochs (none for a one-epoch cell)"),
    C("eval_s", NUMBER, WORKER, "time to predict the test split once"),
    C("eval_total_s", NUMBER, WORKER,
      "all the evaluations after each epoch (prediction, metrics, weights read back), untimed for training"),
    C("latency_s", NUMBER, WORKER, "the whole step-latency phase after training (warm-up and timed single steps)"),
    C("initial_loss_s", NUMBER, WORKER,
      "computing the first batch's loss before training, the framework's and the reference's (parity check)"),
    C("total_s", NUMBER, WORKER, "the worker's wall time, import to finish (waits for lockstep turns excluded)"),
    C("lockstep_wait_s", NUMBER, WORKER, "seconds the worker waited while the other cells of its lockstep group "
      "took their turns (left out of cold_start_s and total_s)"),
    C("wall_s", NUMBER, RUN, "the cell's wall time seen by the runner, process start included"),
    C("metric", TEXT, WORKER, "name of the task's headline metric"),
    C("metric_value", NUMBER, WORKER, "its final value on the test split"),
    C("target", TEXT, WORKER, "the task's quality target"),
    C("target_met", FLAG, WORKER, "whether the final metrics meet the target"),
    C("metrics", OBJECT, WORKER, "dict: final test metrics (loss, metric, extras such as w and b)"),
    C("train_metrics", OBJECT, WORKER,
      "dict: the trained model's metrics on the first `samples` (at most 10,000) training samples: loss (the "
      "data's, no penalty), the task's metric, samples; with metric_value, the train-test gap"),
    C("train_metric_value", NUMBER, WORKER, "the task's metric on those training samples"),
    C("train_eval_s", NUMBER, WORKER, "time to predict and score those training samples once, after training"),
    C("curve", OBJECTS, WORKER, "list: per epoch {epoch, train_s (cumulative), loss, metric}"),
    C("interference", OBJECTS, WORKER,
      "list: per epoch what the process saw of other work: {cpu_s (its own CPU time, every thread), involuntary "
      "(context switches forced on it), steal_s (CPU time the hypervisor took from the machine), load (1-minute "
      "load average at the end), other_cells (bench cells running besides it)}"),
    C("time_to_target_s", NUMBER, WORKER,
      "from the start of the cell's process until the target was first met (as cold_start_s)"),
    C("epochs_to_target", NUMBER, WORKER, "epoch when the target was first met"),
    C("peak_host_mb", NUMBER, WORKER, "peak resident memory of the cell's process"),
    C("data_mb", NUMBER, WORKER, "size of the task's arrays as loaded (training and test splits)"),
    C("peak_device_mb", NUMBER, WORKER, "peak accelerator memory above what was in use when training began (staged "
      "data and model excluded); JAX: none when training stayed under the staging peak (see details.peak_device)"),
    C("initial_loss", NUMBER, WORKER, "the framework's loss on the first batch before training"),
    C("initial_loss_ref", NUMBER, WORKER, "the same loss from the float64 NumPy reference forward pass"),
    C("details", OBJECT, WORKER, "dict: backend-specific facts (what was compiled, thread settings, ...)"),
    C("host", TEXT, RUN, "the machine the cell ran on"),
    C("gpu_uuid", TEXT, RUN, "UUID of the GPU a cuda cell ran on (nvidia-smi), where there is one"),
    C("executor", TEXT, RUN, "what ran the cell: local, slurm, ray or a plugin's executor"),
    C("job_id", TEXT, RUN, "the cell's job on the cluster: SLURM job (ARRAY_TASK for array tasks) or Ray task id"),
    C("node_cells", NUMBER, RUN,
      "most bench cells running on the cell's machine at once while it ran, itself included"),
    C("env", OBJECT, WORKER, "dict: machine and software of the process that ran the cell"),
    # Inference cells (phase inference; docs/inference-and-energy.md): the task's initial weights, untrained.
    C("infer_first_ms", NUMBER, WORKER, "the first batch-1 prediction, compile included (the warm-up's first call)"),
    C("infer_warmup_s", NUMBER, WORKER, "the warm-up's batch-1 calls, before the single-stream window"),
    C("infer_ms_p50", NUMBER, WORKER, "single-stream: median latency of one synced batch-1 prediction, host input in"),
    C("infer_ms_p90", NUMBER, WORKER, "single-stream: 90th percentile of that latency"),
    C("infer_ms_p99", NUMBER, WORKER, "single-stream: 99th percentile of that latency"),
    C("infer_queries", NUMBER, WORKER, "single-stream: queries timed (at least the cell's inference_queries)"),
    C("infer_window_s", NUMBER, WORKER, "single-stream: the window's seconds (at least the cell's inference_s)"),
    # The batch sizes are harness.api.INFERENCE_BATCHES (a contract this layer may not import; a test checks).
    *(C(f"infer_samples_per_s_b{b}", NUMBER, WORKER, f"offline: samples/s predicting batches of {b}, back to back, "
        "synced at the window's ends") for b in (1, 32, 256, 1024)),
    *(C(f"infer_samples_per_j_b{b}", NUMBER, WORKER, f"offline: samples per joule at batch {b}, where energy is "
        "measured") for b in (1, 32, 256, 1024)),
    C("infer_windows", OBJECTS, WORKER, "list: each timed window {view, batch, calls, seconds, samples_per_s, "
      "joules, short}"),
    # Energy, measured (harness.measure.energy): NVML on a GPU, RAPL on a CPU, else unavailable with the reason.
    C("energy_source", TEXT, WORKER, "the counter read (nvml: GPU name and UUID; rapl: packages), or unavailable"),
    C("energy_note", TEXT, WORKER, "why energy is unavailable, or what to know of its figures (short windows)"),
    C("energy_j", NUMBER, WORKER, "joules from after the framework's import to the end of the cell"),
    C("epoch_j", NUMBERS, WORKER, "list: joules of each training epoch, read around its synced ends"),
    C("samples_per_j", NUMBER, WORKER, "training samples per joule over the steady epochs (after the first)"),
)
del C

# What a column added later means in records written before it: those records trained without an L1 penalty.
BEFORE_IT_EXISTED: dict[str, Any] = {"l1": 0.0}

BY_NAME: dict[str, Column] = {c.name: c for c in COLUMNS}
SCHEMA: dict[str, str] = {c.name: c.description for c in COLUMNS}
WORKER_COLUMNS = frozenset(c.name for c in COLUMNS if c.source == WORKER)


def _text(text: str) -> str:
    return capped(one_line(text))


def plain(value: Any, depth: int = 0) -> Any:
    """`value` as plain JSON (objects, lists, text, finite numbers, booleans, null) with every text printable
    and capped at MAX_TEXT characters.

    NaN and infinity become null (JSON has neither); NumPy values become Python ones; anything else becomes
    its printable text, so a result always serialises."""
    kind = type(value)  # exact types first: records hold hundreds of thousands of plain values
    if kind is float:
        return value if math.isfinite(value) else None
    if kind is str:
        return _text(value)
    if kind is int or kind is bool or value is None:
        return value
    if isinstance(value, int):  # an int subclass (IntEnum, ...): saved as the plain number
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        return _text(value)
    if depth >= MAX_DEPTH:
        return f"<{type(value).__name__} nested deeper than {MAX_DEPTH}>"
    if isinstance(value, dict):
        return {_text(str(k)): plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v, depth + 1) for v in value]
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        return plain(value.tolist(), depth + 1)
    try:
        return _text(str(value))
    except Exception:  # noqa: BLE001 - a plugin's object whose __str__ fails is still recorded as something
        return f"<{type(value).__name__}>"


# Outside its strings, with digits mapped to "0", "E" to "e" and spaces and signs dropped, a number may
# overflow to infinity if it shows _EXPONENT (3 digits) or exceed 64 bits if an integer part (after one of
# _BEFORE_NUMBER) shows _WIDE: where the standard library and orjson would part.
_NUMBER_SHAPES = bytes.maketrans(b"123456789E", b"000000000e")
_EXPONENT, _WIDE, _BEFORE_NUMBER = b"e000", b"0" * 19, b":,["
_NESTING = bytes.maketrans(b"[]", b"{}")
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_CONTROLS = bytes([*range(0x20), 0x7F])


def plain_line(raw: bytes) -> bool:
    """Whether a JSON line decodes to values plain() returns unchanged, the same with any conforming
    decoder, so a reader may decode it fast and skip re-sanitising: UTF-8 and printable, with no escape but
    \\" and \\\\ (a \\u escape may hide a control character or a surrogate), no text over MAX_TEXT; outside
    its strings no NaN/Infinity and no number that may overflow; nesting within MAX_DEPTH. Lines `bench run`
    writes pass; False only costs time."""
    if raw.isascii():  # the common case, without decoding: printable ASCII is everything but controls
        if len(raw.translate(None, _CONTROLS)) != len(raw):
            return False
    else:
        try:
            if not raw.decode("utf-8").isprintable():
                return False
        except UnicodeDecodeError:
            return False
    if b"\\" in raw:
        raw = raw.replace(b"\\\\", b"_").replace(b'\\"', b"_")  # escapes read left to right: pairs first
        if b"\\" in raw:
            return False
    pieces = raw.split(b'"')  # with no escape left, every other quote opens a string
    if len(raw) > MAX_TEXT and max(map(len, pieces)) > MAX_TEXT:  # outside strings too: rare, and only slower
        return False  # a text may be too long (its UTF-8 bytes, an escape as one, are never fewer than characters)
    outside = b"".join(pieces[::2])
    if b"N" in outside or b"I" in outside:
        return False
    numbers = outside.translate(_NUMBER_SHAPES, b" +-")
    if _EXPONENT in numbers or (_WIDE in numbers and any(bytes([c]) + _WIDE in numbers for c in _BEFORE_NUMBER)):
        return False
    brackets = outside.translate(_NESTING, _NOT_BRACKET)
    for _ in range(MAX_DEPTH + 1):  # the record's own braces, then MAX_DEPTH levels inside a column's value
        if not brackets:
            return True
        brackets = brackets.replace(b"{}", b"")  # removes exactly one level of nesting
    return not brackets


def describe(value: Any) -> str:
    """A JSON value's kind as a warning says it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, str):
        return "text"
    if _number(value):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def conform(values: dict[str, Any], allowed: Iterable[str] | None = None,
            is_plain: bool = False) -> tuple[dict[str, Any], list[str]]:
    """`values` made plain and printable, each column of its declared kind, and what had to change.

    A column of the wrong kind is nulled ("details is text, not an object; recorded as null"). With
    `allowed`, other keys are dropped (a worker may not set the run's columns); without it, keys that
    are not columns are kept, plain (records written by other versions). `is_plain` says the values are
    plain already (plain_line said so of the line they were read from)."""
    out: dict[str, Any] = {}
    warnings: list[str] = []
    dropped = []
    for key, value in values.items():
        name = key if is_plain else _text(str(key))
        column = BY_NAME.get(name)
        if allowed is not None and name not in allowed:
            dropped.append(name)
            continue
        if not is_plain:
            value = plain(value)
        if (column is not None and value is not None and type(value) not in column.kind.exact
                and not column.kind.accepts(value)):
            warnings.append(f"{name} is {describe(value)}, not {column.kind.name}; recorded as null")
            value = None
        out[name] = value
    if dropped:
        warnings.append(f"ignored fields a cell does not report: {', '.join(sorted(dropped)[:10])}"
                        + (f" and {len(dropped) - 10} more" if len(dropped) > 10 else ""))
    return out, warnings


def _status_problem(values: Any) -> str:
    if not isinstance(values, dict):
        return f"{describe(values)}, not an object"
    status = values.get("status")
    if status not in STATUSES:
        shown = one_line(repr(status)) if isinstance(status, str) else describe(status)
        return f"status is {shown}, not one of {', '.join(STATUSES)}"
    return ""


def record_problem(record: Any) -> str:
    """Why a parsed JSON value can't be a record at all ('' if it can): no cell id, or no known status."""
    if isinstance(record, dict) and not isinstance(record.get("cell_id"), str):
        return "no cell_id"
    return _status_problem(record)


def measured(values: Any) -> dict[str, Any]:
    """A worker's result made fit for a record: a malformed one (not an object, or no known status)
    becomes an error saying what was wrong; fields of the wrong kind are nulled, with a warning each."""
    problem = _status_problem(values)
    if problem:
        return {"status": "error", "message": f"worker sent a malformed result: {problem}"}
    out, warnings = conform(values, WORKER_COLUMNS)
    out["warnings"] = [*(out.get("warnings") or []), *warnings]
    return out
