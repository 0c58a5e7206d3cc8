"""The Keras-cost view: each Keras engine's steady epoch and compile time against the native backend on that engine.

From `harness.report.render.summary()` rows only (never re-runs anything): keras-jax against jax, keras-torch
against torch, keras-tensorflow against tensorflow, for the same task, mode, device, hardware and
settings, where both finished ok. A ratio above 1 is what writing the model in Keras costs. Keras's
`default` mode (model.compile() as the seeds call it) is set against the native backend's best mode,
`compiled`: what a Keras user runs against the best the framework offers.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from harness.report.format import fmt_seconds, missing

NATIVE = {"keras-jax": "jax", "keras-torch": "torch", "keras-tensorflow": "tensorflow"}
# The native mode a Keras mode is set against, where it is not the mode of the same name.
NATIVE_MODE = {"default": "compiled"}
# What must be equal for two rows to be the same workload on the same machine (mode: through NATIVE_MODE).
SAME = ("task", "mode", "device", "device_name", "precision", "optimizer", "batch_size", "lr", "weight_decay", "l1",
        "epochs", "train_size", "threads")
# Compile time, in order of preference; a pair uses the first measure both of its rows have.
COMPILE_MEASURES = (("compile_s", "reported by the framework"), ("first_epoch_excess_s", "first-epoch excess"))
COLUMNS = ["task", "mode", "device", "engine", "keras_backend", "native_backend", "keras_epoch_s", "native_epoch_s",
           "epoch_ratio", "keras_compile_s", "native_compile_s", "compile_ratio", "compile_measure", "keras_run",
           "native_run", "native_mode"]


def keras_cost(table: pd.DataFrame) -> pd.DataFrame:
    """One row per task, mode, device and Keras engine (and any setting that differs between rows) where
    the Keras backend and its native backend both ran ok. The native row comes from the Keras row's own
    run when that run has one, else from the latest run that does on the same hardware with the same
    settings; keras_run and native_run name them."""
    if table.empty or "backend" not in table:
        return pd.DataFrame(columns=COLUMNS)
    same = [k for k in SAME if k in table]
    ok = table[table["status"].astype(str) == "ok"]
    rows = []
    for keras_row in ok[ok["backend"].isin(list(NATIVE))].to_dict("records"):
        native = _counterpart(ok, keras_row, same)
        if native is None:
            continue
        compile_keras, compile_native, measure = _compile_times(keras_row, native)
        rows.append({
            "task": keras_row["task"], "mode": keras_row["mode"], "device": keras_row["device"],
            "engine": NATIVE[keras_row["backend"]], "keras_backend": keras_row["backend"],
            "native_backend": native["backend"],
            "keras_epoch_s": _number(keras_row.get("steady_epoch_s")),
            "native_epoch_s": _number(native.get("steady_epoch_s")),
            "epoch_ratio": _ratio(keras_row.get("steady_epoch_s"), native.get("steady_epoch_s")),
            "keras_compile_s": compile_keras, "native_compile_s": compile_native,
            "compile_ratio": _ratio(compile_keras, compile_native), "compile_measure": measure,
            "keras_run": keras_row.get("run"), "native_run": native.get("run"), "native_mode": native["mode"],
            **{k: keras_row[k] for k in same if k not in ("task", "mode", "device")},
        })
    extra = [k for k in same if k not in COLUMNS]
    out = pd.DataFrame(rows, columns=[*COLUMNS, *extra])
    return out.sort_values(["task", "mode", "device", "engine"], kind="stable").reset_index(drop=True)


def _counterpart(ok: pd.DataFrame, keras_row: dict[str, Any], same: list[str]) -> dict[str, Any] | None:
    matches = ok["backend"] == NATIVE[keras_row["backend"]]
    for key in same:
        want = NATIVE_MODE.get(keras_row[key], keras_row[key]) if key == "mode" else keras_row[key]
        matches &= ok[key].map(lambda v, want=want: _equal(v, want)).astype(bool)
    candidates = ok[matches]
    if candidates.empty:
        return None
    if "run" in candidates:
        own = candidates[candidates["run"] == keras_row.get("run")]
        candidates = own if len(own) else candidates.sort_values("run", kind="stable")
    return candidates.iloc[-1].to_dict()


def _equal(a: Any, b: Any) -> bool:
    return (missing(a) and missing(b)) or (not missing(a) and not missing(b) and str(a) == str(b))


def _compile_times(keras_row: dict[str, Any], native: dict[str, Any]) -> tuple[float | None, float | None, str | None]:
    for column, measure in COMPILE_MEASURES:
        a, b = _number(keras_row.get(column)), _number(native.get(column))
        if a is not None and b is not None:
            return a, b, measure
    return None, None, None


def _number(value: Any) -> float | None:
    return None if missing(value) else float(value)


def _ratio(a: Any, b: Any) -> float | None:
    """a / b; none where b is not positive or a is negative (a first-epoch excess below zero is noise, not a
    compile time)."""
    a, b = _number(a), _number(b)
    return a / b if a is not None and b is not None and a >= 0 and b > 0 else None


def fmt_ratio(value: Any) -> str:
    return "-" if missing(value) else f"{float(value):.2f}×"


def keras_cost_rows(table: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Header and formatted cells of the Keras-cost table, from `keras_cost(...)`'s frame."""
    header = ["task", "mode", "device", "engine", "Keras epoch", "native epoch", "epoch ×", "Keras compile",
              "native compile", "compile ×", "compile measured as"]
    rows = [[str(r["task"]), _modes(r), str(r["device"]), str(r["engine"]),
             fmt_seconds(r["keras_epoch_s"]), fmt_seconds(r["native_epoch_s"]), fmt_ratio(r["epoch_ratio"]),
             fmt_seconds(r["keras_compile_s"]), fmt_seconds(r["native_compile_s"]), fmt_ratio(r["compile_ratio"]),
             "-" if missing(r["compile_measure"]) else str(r["compile_measure"])]
            for r in table.to_dict("records")]
    return header, rows


def _modes(row: dict[str, Any]) -> str:
    """The mode, or "Keras's / native's" where the pair's modes differ (Keras's default against compiled)."""
    native = row.get("native_mode")
    return str(row["mode"]) if missing(native) or native == row["mode"] else f"{row['mode']} / {native}"
