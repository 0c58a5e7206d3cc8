"""What every report shows, as plain tables of strings: the terminal, Markdown and HTML renderers lay
out the same sections.

A report is a list of `Section`s (title, header, rows, note). The results table's columns are listed
once in RESULT_COLUMNS, each with the note saying exactly what its figure is. Above ROW_LIMIT
configurations (a sweep) a report shows a digest instead of one row per configuration: a per-backend
aggregate, the fastest and slowest configurations of each task, the failures grouped by reason, and an
overview of each backend's fastest configuration; CSV and JSON keep every configuration.

To add a section (e.g. a cost table from another module), append a builder to EXTRA_SECTIONS: it takes
the records and the summary and returns a Section, or None when it has nothing to show.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from harness.report.busy import busy_line
from harness.report.format import (
    cells,
    fmt_mb,
    fmt_rate,
    fmt_seconds,
    fmt_value,
    missing,
)
from harness.report.inference_table import (
    INFERENCE,
    LATENCY_NOTE,
    THROUGHPUT_NOTE,
    inference_note,
    inference_rows,
    latency_texts,
    part,
    throughput_texts,
)
from harness.report.summary import (
    KEYS,
    NOISY_CV,
    SHOWN_KEYS,
    environment_differences,
    environments,
    varying_keys,
)

ROW_LIMIT = 60  # configurations shown one per row; above this, the digest
SHORT = {"batch_size": "batch", "train_size": "n train", "precision": "prec", "optimizer": "opt"}


@dataclass
class Section:
    """One table of a report. `names`: columns of names (backend, task...), which no layout may wrap or
    shorten; `numeric`: columns of numbers (right-aligned, never wrapped)."""

    title: str
    header: list[str]
    rows: list[list[str]]
    note: str = ""
    names: frozenset[int] = frozenset()
    numeric: frozenset[int] = frozenset()
    wrap: frozenset[int] = frozenset()  # columns of words that may wrap in a narrow terminal (all others never do)
    kind: str = ""  # which section this is, for renderers that treat one specially ("results", "failures")


# Builders of sections other modules contribute: (records, summary) -> Section | None.
def keras_cost_section(df: pd.DataFrame, s: pd.DataFrame) -> "Section | None":
    """Each Keras engine against the native backend on that engine, where both ran (harness.report.keras_cost)."""
    from harness.report.keras_cost import keras_cost, keras_cost_rows

    header, rows = keras_cost_rows(keras_cost(s))
    if not rows:
        return None
    return Section("Keras cost (Keras backend / native backend on the same engine)", header, rows,
                   note="epoch: median steady epoch; ×: Keras over native, above 1 is what writing the model in "
                        "Keras costs; compile: the framework's own figure where both report one, else both "
                        "first-epoch excesses (no ratio for a negative excess)",
                   names=frozenset({0, 1, 2, 3}), numeric=frozenset(range(4, 10)), wrap=frozenset({10}),
                   kind="keras_cost")


INFERENCE_LATENCY = "Inference latency at batch 1, backend × task"
INFERENCE_THROUGHPUT = "Inference throughput at batch 1024 (samples/s), backend × task"


def inference_section(inference: pd.DataFrame) -> "Section | None":
    """The inference cells' own table (harness.report.inference_table); None when a run has none."""
    if inference.empty:
        return None
    header, rows, names = inference_rows(inference)
    return Section("Inference (prediction, untrained weights)", header, rows, inference_note(inference),
                   names=frozenset(range(names)), numeric=frozenset(range(names + 1, len(header))),
                   wrap=frozenset({names}), kind=INFERENCE)


EXTRA_SECTIONS: list[Callable[[pd.DataFrame, pd.DataFrame], "Section | None"]] = [keras_cost_section]


# -- the results table ---------------------------------------------------------------------

def _spread(s: pd.DataFrame, compact: bool) -> list[str]:
    out = []
    for ok, cv, noisy, iqr in zip(s["ok"], s["train_s_cv"], s["noisy"], s["train_s_iqr"]):
        if ok > 1 and not missing(cv):
            text = f"{cv * 100:.2g}%" + (" noisy" if noisy else "")
            out.append(text if compact else f"IQR {fmt_seconds(iqr)}, CV {text}")
        else:
            out.append("1 repeat" if ok == 1 else "-")
    return out


def _to_target(s: pd.DataFrame, compact: bool) -> list[str]:
    out = []
    for ok, reached, seconds in zip(s["ok"], s["target_reached"], s["time_to_target_s"]):
        out.append("-" if not ok else f"{fmt_seconds(seconds)} ({reached}/{ok})" if reached else "not reached")
    return out


def _metric(s: pd.DataFrame, compact: bool) -> list[str]:
    out = []
    for ok, met, name, value in zip(s["ok"], s["target_met"], s["metric"], s["metric_value"]):
        if not ok:
            out.append("-")
            continue
        verdict = f"{'met' if met == ok else 'missed'} {met}/{ok}"
        out.append(f"{fmt_value(value)} {verdict}" if compact else f"{name} {fmt_value(value)} ({verdict})")
    return out


def _column(name: str, fmt: Callable) -> Callable[[pd.DataFrame, bool], list[str]]:
    return lambda s, compact: cells(s[name], fmt)


def _present(name: str) -> Callable[[pd.DataFrame], bool]:
    return lambda s: name in s and bool(s[name].notna().any())


@dataclass(frozen=True)
class Column:
    """A figure of the results table: its header (and shorter terminal header), the note saying what it
    is, its cells from the summary, and when it is shown (e.g. only where some backend reports it)."""

    name: str
    short: str
    note: str
    cells: Callable[[pd.DataFrame, bool], list[str]]
    present: Callable[[pd.DataFrame], bool] = field(default=lambda s: True)
    text: bool = False  # words that may wrap in a narrow terminal (numbers never do)


RESULT_COLUMNS = [
    Column("status", "status", "status: ok, or each status with its share of the repeats (reasons under "
           "'Failed and skipped cells')", lambda s, compact: list(s["status"].astype(str)), text=True),
    Column("train", "train", "train: wall time of all epochs, compile included, median over the repeats that "
           "finished ok", _column("train_s", fmt_seconds)),
    Column("spread", "CV", f"spread: over those repeats, IQR and coefficient of variation (noisy above "
           f"{NOISY_CV:.0%}); '1 repeat': the figures of this row rest on one run, so the machine's run-to-run "
           "noise is not measured", _spread),
    Column("cold start", "cold", "cold start: from the start of the cell's process to the end of the first "
           "epoch (import, data, setup and every first-step cost alike; bench's parity check excluded)",
           _column("cold_start_s", fmt_seconds), _present("cold_start_s")),
    Column("epoch", "epoch", "epoch: median epoch after the first (steady state)",
           _column("steady_epoch_s", fmt_seconds)),
    Column("samples/s", "samples/s", "samples/s: training throughput over the steady epochs ('-' for a one-epoch "
           "cell, which has none)", _column("samples_per_s", fmt_rate)),
    Column("samples/J", "samples/J", "samples/J: training samples per joule over the steady epochs, where the "
           "device's energy counter could be read (NVML on a GPU, RAPL on a CPU; the counter in each record's "
           "energy_source)", _column("samples_per_j", fmt_rate), _present("samples_per_j")),
    Column("compile", "compile", "compile: compile time as the framework itself reports it (how, per backend, "
           "under 'compile measured by'); '-' where it cannot tell", _column("compile_s", fmt_seconds),
           _present("compile_s")),
    Column("1st-epoch excess", "excess", "1st-epoch excess: first epoch minus the median later epoch, an "
           "estimate of one-time costs (compile, warm-up) that on a noisy machine can come out negative",
           _column("first_epoch_excess_s", fmt_seconds), _present("first_epoch_excess_s")),
    Column("to target", "to target", "to target: from the start of the cell's process (as cold start) until the "
           "quality target was first met, over the repeats that met it", _to_target, text=True),
    Column("final metric", "metric", "final metric: the headline test metric after training (repeats whose "
           "final metrics meet the target)", _metric, text=True),
    Column("peak host", "host mem", "peak host: resident memory of the cell's process, the most over repeats",
           _column("peak_host_mb", fmt_mb)),
    Column("data", "data", "data: size of the task's arrays as loaded (training and test splits)",
           _column("data_mb", fmt_mb), _present("data_mb")),
    Column("peak device", "device mem", "peak device: accelerator memory at its peak, counted from after the "
           "data were staged and the model built (so the data's own size is not in it), the most over repeats",
           _column("peak_device_mb", fmt_mb), _present("peak_device_mb")),
    Column("ran on", "ran on", "ran on: the executor and hosts, and how many cells shared a machine at once, where "
           "cells left this machine or shared it", lambda s, compact: [v if isinstance(v, str) else "-"
                                                                        for v in s["ran_on"]],
           _present("ran_on"), text=True),
]


def result_columns(s: pd.DataFrame) -> list[Column]:
    return [c for c in RESULT_COLUMNS if c.present(s)]


def notes(columns: list[Column]) -> str:
    return "; ".join(c.note for c in columns) + "."


NOTES = notes(RESULT_COLUMNS)
MATRIX_NOTE = ("Training time: all epochs, compile included, median over the repeats that finished ok; ✓: every "
               "such repeat met the task's quality target; a status instead of a time: no repeat finished ok "
               "(see below why); -: not run.")
COLD_NOTE = ("Cold start: from the start of the cell's process to the end of its first epoch, median over the "
             "repeats that finished ok: what a user waits for before training is under way, whatever a "
             "framework does at setup or in its first step.")


def display_rows(s: pd.DataFrame, compact: bool = False) -> tuple[list[str], list[list[str]]]:
    """Header and formatted cells of the results table (`compact`: the terminal's shorter headers and cells,
    the metric's name left to the caption)."""
    keys = varying_keys(s)
    columns = result_columns(s)
    header = [*(SHORT.get(k, k) if compact else k for k in keys), *(c.short if compact else c.name for c in columns)]
    data = [cells(s[k], fmt_value) for k in keys] + [c.cells(s, compact) for c in columns]
    return header, [list(row) for row in zip(*data)] if len(s) else []


def results_section(s: pd.DataFrame, title: str = "Results") -> Section:
    header, rows = display_rows(s)
    keys = len(varying_keys(s))
    names = frozenset(i for i, k in enumerate(header[:keys]) if k in ("task", "backend", "mode", "device", "run"))
    columns = result_columns(s)
    numeric = frozenset(keys + i for i, c in enumerate(columns) if c.name != "status")
    wrap = frozenset(keys + i for i, c in enumerate(columns) if c.text)
    return Section(title, header, rows, notes(columns), names, numeric, wrap, kind="results")


# -- overview matrices ---------------------------------------------------------------------

def keys_within_tasks(s: pd.DataFrame) -> list[str]:
    """The settings besides backend, mode and device that differ between cells of one task (a setting that
    differs only between tasks, such as each task's epochs, tells that task's cells nothing)."""
    return [k for k in varying_keys(s) if k not in SHOWN_KEYS
            and s.groupby("task")[k].nunique().max() > 1]  # unknown for a failed cell: no difference


def _matrix(s: pd.DataFrame, texts: list[str], row_keys: list[str] | None) -> tuple[list[str], list[list[str]]]:
    """Rows: `row_keys` (default: backend, mode, device and every key that varies within a task); columns:
    tasks; each cell the texts of the rows of that backend setting and task."""
    tasks = sorted({str(t) for t in s["task"]})  # str() of each: pandas keeps a missing task NaN in astype(str)
    if row_keys is None:
        row_keys = ["backend", "mode", "device", *keys_within_tasks(s)]
    frame = pd.DataFrame({k: cells(s[k], fmt_value) for k in row_keys}).assign(task=s["task"].astype(str).to_numpy(),
                                                                                text=texts)
    joined: dict[tuple, dict[str, list[str]]] = {}
    for row, task, text in zip(zip(*(frame[k] for k in row_keys)), frame["task"], frame["text"]):
        joined.setdefault(row, {}).setdefault(task, []).append(text)
    header = [*row_keys, *tasks]
    rows = [[*key, *("; ".join(by_task.get(t, [])) or "-" for t in tasks)] for key, by_task in sorted(joined.items())]
    return header, rows


def matrix_rows(s: pd.DataFrame, row_keys: list[str] | None = None) -> tuple[list[str], list[list[str]]]:
    """The backend × task overview of training time: one row per backend setting, one column per task,
    each cell the median training time (✓ when every ok repeat met the target) or why there is none."""
    texts = []
    for ok, repeats, train, met, status in zip(s["ok"], s["repeats"], s["train_s"], s["target_met"], s["status"]):
        if ok:
            text = fmt_seconds(train) + (" ✓" if met == ok else "")
            texts.append(text + (f" ({ok}/{repeats} ok)" if ok < repeats else ""))
        else:
            texts.append(str(status))
    return _matrix(s, texts, row_keys)


def cold_matrix_rows(s: pd.DataFrame, row_keys: list[str] | None = None) -> tuple[list[str], list[list[str]]]:
    """The same overview of cold start (process start to the end of the first epoch)."""
    texts = [fmt_seconds(cold) if ok else str(status) for ok, cold, status in zip(s["ok"], s["cold_start_s"],
                                                                                   s["status"])]
    return _matrix(s, texts, row_keys)


def steady_matrix_rows(s: pd.DataFrame, row_keys: list[str] | None = None) -> tuple[list[str], list[list[str]]]:
    """The same overview of the steady epoch (median epoch after the first)."""
    texts = [(fmt_seconds(epoch) if not missing(epoch) else "-") if ok else str(status)
             for ok, epoch, status in zip(s["ok"], s["steady_epoch_s"], s["status"])]
    return _matrix(s, texts, row_keys)


def _matrix_section(title: str, header: list[str], rows: list[list[str]], note: str) -> Section:
    first_task = next((i for i, h in enumerate(header) if h not in ("backend", "mode", "device", *KEYS, "run",
                                                                      "train_size", "threads")), len(header))
    return Section(title, header, rows, note, frozenset(range(first_task)), frozenset(range(first_task, len(header))),
                   frozenset(), kind="overview")


# -- failures, digest ----------------------------------------------------------------------

def failures_section(s: pd.DataFrame, keys: list[str]) -> Section | None:
    """Cells that did not all finish ok, grouped by `keys`, status and reason."""
    bad = s[s["ok"] < s["repeats"]]
    if bad.empty:
        return None
    frame = pd.DataFrame({k: cells(bad[k], fmt_value) for k in keys})
    frame["status"] = bad["status"].astype(str).to_numpy()
    frame["why"] = bad["message"].fillna("").astype(str).replace("", "-").to_numpy()
    grouped = frame.groupby([*keys, "status", "why"], sort=True).size().rename("configurations").reset_index()
    header = [*keys, "status", "configurations", "why"]
    rows = [list(r) for r in zip(*(grouped[k] for k in keys), grouped["status"],
                                 grouped["configurations"].astype(str), grouped["why"])]
    names = frozenset(i for i, k in enumerate(keys) if k in ("task", "backend", "mode", "device", "run"))
    return Section("Failed and skipped cells", header, rows, "", names, frozenset({len(keys) + 1}),
                   frozenset({len(keys), len(keys) + 2}), kind="failures")


def is_sweep(s: pd.DataFrame) -> bool:
    return len(s) > ROW_LIMIT


def _group_keys(s: pd.DataFrame) -> list[str]:
    return ["run", *SHOWN_KEYS] if s["run"].nunique() > 1 else list(SHOWN_KEYS)


def representatives(s: pd.DataFrame) -> pd.DataFrame:
    """Per run, task, backend, mode and device: its fastest configuration that finished ok (else its first)."""
    ranked = s.assign(_failed=s["ok"].eq(0), _train=s["train_s"].astype(float))
    ranked = ranked.sort_values(["_failed", "_train"], kind="stable", na_position="last")
    best = ranked.drop_duplicates(_group_keys(s)).drop(columns=["_failed", "_train"])
    return best.loc[sorted(best.index)]


def extremes(s: pd.DataFrame) -> pd.DataFrame:
    """The fastest and slowest configurations of each task that finished ok, ROW_LIMIT rows at most."""
    ok = s[s["ok"] > 0].assign(_train=lambda d: d["train_s"].astype(float)).sort_values(["task", "_train"],
                                                                                         kind="stable")
    k = max(1, ROW_LIMIT // (2 * max(1, ok["task"].nunique())))
    by_task = ok.groupby("task", sort=False)
    shown = pd.concat([by_task.head(k), by_task.tail(k)])
    return shown[~shown.index.duplicated()].sort_values(["task", "_train"], kind="stable").drop(columns="_train")


def aggregate_section(s: pd.DataFrame) -> Section:
    """Per backend setting and task: how many configurations, how many finished, and their training times."""
    keys = _group_keys(s)
    settings = [k for k in varying_keys(s) if k not in keys and s.groupby(keys)[k].nunique().max() > 1]
    best = representatives(s).set_index(keys)
    frame = s.assign(_ok=s["ok"].gt(0), _failed=s["ok"].eq(0) & s["status"].ne("skipped"),
                     _train=s["train_s"].astype(float))
    agg = frame.groupby(keys, sort=True).agg(configurations=("config", "size"), ok=("_ok", "sum"),
                                             failed=("_failed", "sum"), fastest=("_train", "min"),
                                             median=("_train", "median"), slowest=("_train", "max"))
    values = zip(*(cells(best[k], fmt_value) for k in settings)) if settings else ([] for _ in range(len(best)))
    setting = [", ".join(f"{SHORT.get(k, k)} {v}" for k, v in zip(settings, row)) or "-" for row in values]
    agg = agg.join(pd.Series(setting, index=best.index, name="setting"))
    agg.loc[agg["ok"] == 0, "setting"] = "-"
    index = agg.index.to_frame(index=False)
    header = [*keys, "configs", "ok", "failed", "fastest", "median", "slowest", "fastest config"]
    columns = [cells(index[k], fmt_value) for k in keys] + [
        cells(agg["configurations"], str), cells(agg["ok"], str), cells(agg["failed"], str),
        cells(agg["fastest"], fmt_seconds), cells(agg["median"], fmt_seconds), cells(agg["slowest"], fmt_seconds),
        cells(agg["setting"], str)]
    note = ("configs: configurations of each backend setting; ok: those with a repeat that finished ok; failed: "
            "those with none (skipped ones apart); fastest, median, slowest: over those configurations, of their "
            "training time (median over ok repeats); fastest config: the settings of the fastest.")
    return Section("Per backend: every configuration summarised", header, [list(r) for r in zip(*columns)], note,
                   frozenset(range(len(keys))), frozenset(range(len(keys), len(keys) + 6)),
                   frozenset({len(header) - 1}), kind="aggregate")


# -- the whole report ----------------------------------------------------------------------

@dataclass
class Report:
    """Everything a renderer lays out: the summary `s` (every configuration), `shown` (the rows the overview
    and charts use: all of them, or in a sweep each backend setting's fastest), `listed` (the rows of the
    results table: all, or in a sweep the fastest and slowest of each task), and the sections in order."""

    records: pd.DataFrame
    s: pd.DataFrame
    shown: pd.DataFrame
    listed: pd.DataFrame
    sweep: bool
    sections: list[Section]
    runs: str
    environments: list[dict]
    differences: dict[str, list[str]]
    compile_sources: list[str]
    targets: dict[str, str]
    inference: pd.DataFrame = field(default_factory=pd.DataFrame)  # inference cells' rows (`s` has none of them)
    busy: str = ""  # one line when the records say their machine was busy (harness.report.busy)
    machine: str = ""  # the machine's measured noise (bench calibrate), where known

    @property
    def digest_note(self) -> str:
        if not self.sweep:
            return ""
        return (f"{len(self.s):,} configurations: more than {ROW_LIMIT}, so tables and charts show a digest "
                "(each backend setting's fastest configuration in the overview and charts, a per-backend "
                "summary of all of them, and the fastest and slowest of each task); --format csv or json has "
                "every configuration.")


def targets_by_task(s: pd.DataFrame) -> dict[str, str]:
    known = s[s["target"].notna()].drop_duplicates("task").sort_values("task")
    return dict(zip(known["task"].astype(str), known["target"].astype(str)))


def compile_sources(s: pd.DataFrame) -> list[str]:
    """How compile_s was measured, per backend and mode ('backend mode: source')."""
    known = s[s["compile_source"].notna()].drop_duplicates(["backend", "mode", "compile_source"])
    known = known.sort_values(["backend", "mode"])
    return [f"{b} {m}: {src}" for b, m, src in zip(known["backend"], known["mode"], known["compile_source"])]


def runs_named(envs: list[dict]) -> str:
    """Which runs a report shows, each with its records and their time span."""
    if not envs:
        return "no runs"
    return "; ".join(f"run {e['run_id']} ({e['records']} records, {e['first'] or '?'} to {e['last'] or '?'})"
                     for e in envs)


def differences_line(differences: dict[str, list[str]]) -> str:
    if not differences:
        return ""
    parts = [f"{label} ({', '.join(values)})" for label, values in differences.items()]
    return ("These records come from more than one environment; they differ in: " + "; ".join(parts)
            + ". Compare figures across them with care.")


def build(df: pd.DataFrame, s: pd.DataFrame, machine: str = "") -> Report:
    envs = environments(df)
    s, inference = part(s)  # inference cells have a table of their own, and no place in the training ones
    sweep = is_sweep(s)
    shown = representatives(s) if sweep else s
    listed = extremes(s) if sweep else s
    sections: list[Section] = []
    if not s.empty:
        sweep_note = " Each cell: the fastest configuration of that backend setting." if sweep else ""
        row_keys = [k for k in _group_keys(s) if k != "task"] if sweep else None
        sections.append(_matrix_section("Training time, backend × task", *matrix_rows(shown, row_keys),
                                        MATRIX_NOTE + sweep_note))
        if shown["cold_start_s"].notna().any():
            sections.append(_matrix_section("Cold start, backend × task", *cold_matrix_rows(shown, row_keys),
                                            COLD_NOTE + sweep_note))
        if sweep:
            sections.append(aggregate_section(s))
            sections.append(results_section(listed, f"Fastest and slowest configurations of each task "
                                                    f"({len(listed)} of {len(s):,})"))
            failures = failures_section(s, _group_keys(s))
        else:
            sections.append(results_section(s))
            failures = failures_section(s, [*SHOWN_KEYS, *keys_within_tasks(s)])
        if failures:
            sections.append(failures)
        sections += [section for build_extra in EXTRA_SECTIONS if (section := build_extra(df, s)) is not None]
    if not inference.empty:
        sections.append(_matrix_section(INFERENCE_LATENCY, *_matrix(inference, latency_texts(inference), None),
                                        LATENCY_NOTE))
        sections.append(_matrix_section(INFERENCE_THROUGHPUT, *_matrix(inference, throughput_texts(inference), None),
                                        THROUGHPUT_NOTE))
        sections.append(inference_section(inference))
        failed = failures_section(inference, list(SHOWN_KEYS))
        if failed:
            sections.append(dataclasses.replace(failed, title="Failed and skipped inference cells"))
    return Report(df, s, shown, listed, sweep, sections, runs_named(envs), envs, environment_differences(df),
                  [] if s.empty else compile_sources(s), {} if s.empty else targets_by_task(s), inference,
                  busy_line(df), machine)


def constant_settings(s: pd.DataFrame) -> str:
    """The settings every row of `s` shares (hyperparameters a table leaves out because they do not vary)."""
    parts = []
    for k in ("optimizer", "batch_size", "lr", "weight_decay", "l1", "epochs", "precision", "train_size", "threads"):
        values = s[k].dropna().astype(str).unique() if k in s else []
        if len(values) == 1 and not (k in ("weight_decay", "l1") and not s[k].dropna().iloc[0]):  # no penalty: unsaid
            parts.append(f"{k} {fmt_value(s[k].dropna().iloc[0])}")
    return ", ".join(parts)


def single_repeat_share(s: pd.DataFrame) -> tuple[int, int]:
    """(configurations whose figures rest on one ok repeat, configurations with any ok repeat)."""
    ok = s["ok"].to_numpy()
    return int(np.sum(ok == 1)), int(np.sum(ok > 0))
