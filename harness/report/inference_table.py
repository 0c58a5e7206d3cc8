"""The inference cells' table (bench run --phase inference): single-stream latency and offline throughput per
backend setting, every report format's own section (docs/inference-and-energy.md).

Training and inference cells are summarised alike (harness.report.summary) and then parted here: training
sections never see an inference row, and a run without inference cells has no inference table.
"""

from __future__ import annotations

import pandas as pd

from harness.report.format import cells, fmt_rate, fmt_value, missing
from harness.report.summary import KEYS, SHOWN_KEYS

INFERENCE = "inference"
BATCHES = (1, 32, 256, 1024)  # harness.api.INFERENCE_BATCHES (a test checks they agree)
NOTE = ("The task's initial weights, untrained; each prediction a call on host inputs, timed between two syncs "
        "(the output left on the device). first: the first batch-1 call, compile included; p50, p90, p99: "
        "latency of batch-1 queries one after another (single-stream), after a warm-up, over at least 10 s and "
        "1,000 queries by default; queries: how many were timed; batch N: samples/s predicting batches of N back "
        "to back (offline), synced at the window's ends; samples/J: samples per joule at batch 1024, where the "
        "device's energy counter could be read. Medians over the repeats that finished ok.")


def part(s: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(training rows, inference rows) of a summary; rows of records older than phases are training rows."""
    if "phase" not in s:
        return s, s.iloc[0:0]
    inference = s["phase"].eq(INFERENCE).to_numpy()
    return s[~inference].reset_index(drop=True), s[inference].reset_index(drop=True)


def _ms(value: object) -> str:
    if missing(value):
        return "-"
    v = float(value)
    return f"{v * 1e3:.3g} µs" if v < 1 else f"{v:.3g} ms" if v < 1e3 else f"{v / 1e3:.3g} s"


def inference_rows(inf: pd.DataFrame) -> tuple[list[str], list[list[str]], int]:
    """Header, formatted rows and how many leading columns are names."""
    keys = [*SHOWN_KEYS, *(k for k in KEYS if k not in SHOWN_KEYS and k in inf
                           and k not in ("optimizer", "lr", "epochs", "batch_size", "weight_decay", "l1")
                           and inf[k].astype(str).nunique() > 1)]
    energy = "infer_samples_per_j_b1024" in inf and inf["infer_samples_per_j_b1024"].notna().any()
    header = [*keys, "status", "first", "p50", "p90", "p99", "queries", *(f"batch {b}" for b in BATCHES),
              *(["samples/J"] if energy else [])]
    columns = [cells(inf[k], fmt_value) for k in keys]
    columns += [[str(v) for v in inf["status"]], cells(inf["infer_first_ms"], _ms)]
    columns += [cells(inf[f"infer_ms_p{q}"], _ms) for q in (50, 90, 99)]
    columns += [cells(inf["infer_queries"], lambda v: "-" if missing(v) else f"{float(v):,.0f}")]
    columns += [cells(inf[f"infer_samples_per_s_b{b}"], fmt_rate) for b in BATCHES]
    if energy:
        columns.append(cells(inf["infer_samples_per_j_b1024"], fmt_rate))
    rows = [list(row) for row in zip(*columns)] if len(inf) else []
    return header, rows, len(keys)


def latency_texts(inf: pd.DataFrame) -> list[str]:
    """Per row, for the backend × task overview: batch-1 p50 (p99), or the status where none finished ok."""
    return [f"{_ms(p50)} (p99 {_ms(p99)})" if ok else str(status)
            for ok, p50, p99, status in zip(inf["ok"], inf["infer_ms_p50"], inf["infer_ms_p99"], inf["status"])]


def throughput_texts(inf: pd.DataFrame, batch: int = BATCHES[-1]) -> list[str]:
    """Per row: samples/s at `batch`, or the status."""
    return [fmt_rate(rate) if ok else str(status)
            for ok, rate, status in zip(inf["ok"], inf[f"infer_samples_per_s_b{batch}"], inf["status"])]


LATENCY_NOTE = ("Single-stream: latency of one batch-1 prediction, host input in, synced; median (p99) over at "
                "least 10 s and 1,000 queries after a warm-up, median over the repeats that finished ok.")
THROUGHPUT_NOTE = (f"Offline: samples/s predicting batches of {BATCHES[-1]} back to back, synced at the window's "
                   "ends; the other batch sizes are in the inference table.")


def inference_note(inf: pd.DataFrame) -> str:
    """The table's note: what each figure is, and which energy counters were read."""
    sources = sorted({str(v) for v in inf.get("energy_source", pd.Series(dtype=object)).dropna()
                      if str(v) != "unavailable"})
    return NOTE + (" Energy measured by: " + "; ".join(sources) + "." if sources else "")
