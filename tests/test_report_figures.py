"""Each figure says what it is: direct compile times with how they were measured, the first-epoch excess
as its own (signed) estimate, cold start, no throughput without a steady epoch, data size and device
memory; records from several environments are named as such; the HTML warns where a figure rests on
one repeat, labels compile bars by how they were measured, and gives charts of one kind one axis scale."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from harness import results
from harness.report.format import fmt_seconds, md_escape
from harness.report.html import DIRECT, ESTIMATE
from harness.report.render import render
from harness.report.summary import summary
from harness.report.tables import RESULT_COLUMNS
from tests.test_report import _md_table, _md_tables

SMALL = Path(__file__).parent / "fixtures" / "runs" / "report-small"
REFERENCE = sorted((Path(__file__).resolve().parents[1] / "results").glob("reference-cpu-*"))[-1]
SOURCE = "jax.monitoring: trace + lower + backend compile"


@pytest.fixture
def df() -> pd.DataFrame:
    return results.load([SMALL])


def _rows(df: pd.DataFrame, **where) -> pd.Series:
    mask = pd.Series(True, index=df.index)
    for key, value in where.items():
        mask &= df[key] == value
    return mask


def _md_row(text: str, *key: str) -> dict[str, str]:
    header, rows = _md_table(text)
    return next(dict(zip(header, r)) for r in rows if tuple(r[:len(key)]) == key)


# -- compile, excess, throughput, memory ---------------------------------------------------

def test_compile_is_the_direct_figure_with_how_it_was_measured(df):
    compiled = _rows(df, backend="fake", task="mnist_mlp", mode="compiled", device="cpu")
    df.loc[compiled, "compile_s"] = [1.5, 2.5, 2.0]
    df.loc[compiled, "compile_source"] = SOURCE
    text = render(df, "md")
    row = _md_row(text, "mnist_mlp", "fake", "compiled", "cpu")
    assert row["compile"] == "2 s"
    want = df.loc[compiled, "first_epoch_excess_s"].median()
    assert row["1st-epoch excess"] == fmt_seconds(want)  # its own column, beside the direct figure
    assert _md_row(text, "mnist_mlp", "fake", "eager", "cpu")["compile"] == "-"  # not reported: not zero
    assert md_escape(f"Compile measured by: fake compiled: {SOURCE}.") in text
    table = render(df, "table", width=200, full=True)
    assert f"compile measured by: fake compiled: {SOURCE}" in " ".join(table.split())


def test_old_records_compile_figure_is_shown_as_the_estimate_it_was(df):
    """Records written before compile_source existed kept the first-epoch excess in compile_s."""
    old = _rows(df, backend="fake", task="mnist_mlp", mode="compiled", device="cpu")
    df.loc[old, "compile_s"] = [0.25, 0.5, 0.75]
    df.loc[old, "first_epoch_excess_s"] = None
    row = _md_row(render(df, "md"), "mnist_mlp", "fake", "compiled", "cpu")
    assert row["1st-epoch excess"] == "500 ms"
    assert "compile" not in row  # no direct figure anywhere: no compile column


def test_a_negative_excess_is_kept_and_shown_signed(df):
    rows = _rows(df, backend="fake", task="linear_regression", mode="eager")
    df.loc[rows, "first_epoch_excess_s"] = -0.002
    assert summary(df).set_index(["backend", "task", "mode"]).loc[
        ("fake", "linear_regression", "eager"), "first_epoch_excess_s"] == pytest.approx(-0.002)
    assert _md_row(render(df, "md"), "linear_regression", "fake", "eager")["1st-epoch excess"] == "-2 ms"


def test_a_one_epoch_cell_has_no_throughput(df):
    rows = _rows(df, backend="fake", task="mnist_mlp", mode="eager", device="cpu")
    df.loc[rows, "steady_epoch_s"] = None  # one epoch: no steady state (samples_per_s left as an old record had it)
    assert pd.isna(summary(df).set_index(["backend", "task", "mode", "device"]).loc[
        ("fake", "mnist_mlp", "eager", "cpu"), "samples_per_s"])
    assert _md_row(render(df, "md"), "mnist_mlp", "fake", "eager", "cpu")["samples/s"] == "-"


def test_cold_start_data_and_device_memory_are_shown_where_present(df):
    text = render(df, "md")
    gpu = _md_row(text, "mnist_mlp", "fake", "eager", "cuda")
    cpu = _md_row(text, "mnist_mlp", "fake", "eager", "cpu")
    ok = df[_rows(df, backend="fake", task="mnist_mlp", mode="eager", device="cpu")]
    assert cpu["cold start"] == fmt_seconds(ok["cold_start_s"].median())
    assert cpu["data"] == gpu["data"] == "7.6 MB"
    assert gpu["peak device"] == "64 MB" and cpu["peak device"] == "-"
    header, _ = _md_tables(text)[1]
    assert header[:3] == ["backend", "mode", "device"]  # the cold-start overview, backend × task
    assert "Cold start: from the start of the cell's process to the end of its first epoch" in text
    none = df.assign(data_mb=None, peak_device_mb=None, cold_start_s=None)
    header, _ = _md_table(render(none, "md"))
    assert not {"data", "peak device", "cold start"} & set(header)


def test_every_shown_figure_is_explained_in_the_notes(df):
    text = render(df, "md")
    header, _ = _md_table(text)
    notes = next(line for line in text.splitlines() if line.startswith("status: ok"))
    for column in RESULT_COLUMNS:
        if column.name in header:
            assert md_escape(column.note) in notes, column.name
    assert "to target: from the start of the cell's process (as cold start)" in notes
    assert "counted from after the data were staged" in notes


# -- environments --------------------------------------------------------------------------

def test_records_from_several_environments_say_how_they_differ(df):
    later = _rows(df, task="mnist_mlp")
    df.loc[later, "env_hostname"] = "gpu-node-7"
    df.loc[later, "version_torch"] = "2.12.0"
    df.loc[later, "env_git_commit"] = "abc123" + "0" * 34
    for fmt in ("table", "md", "html"):
        text = " ".join(render(df, fmt, **({"width": 120} if fmt == "table" else {})).split())
        text = re.sub(r"</?b>", "", text)
        assert "These records come from more than one environment; they differ in:" in text, fmt
        assert "host (fixture-host, gpu-node-7)" in text, fmt
        assert "torch (2.12.0, 2.13.0+cpu)" in text, fmt
        assert "git commit (" in text and "abc123" in text, fmt
    differences = json.loads(render(df, "json"))["environment_differences"]
    assert differences["host"] == ["fixture-host", "gpu-node-7"]
    assert re.search(r"@ [0-9a-f]{12} / [0-9a-f]{12}, host", render(df, "md")), "the run's line names both"


def test_records_from_one_environment_say_nothing_of_it(df):
    for fmt in ("table", "md", "html"):
        assert "more than one environment" not in render(df, fmt), fmt


# -- HTML ----------------------------------------------------------------------------------

def _charts(page: str) -> dict[str, str]:
    return {re.search(r'aria-label="([^"]*)"', svg).group(1): svg for svg in re.findall(r"<svg.*?</svg>", page, re.S)}


def test_html_warns_where_figures_rest_on_one_repeat(df):
    assert "rest on one repeat" not in render(df, "html")  # every ok cell here has 2 or 3 repeats
    single = df[(df["repeat"] == 0) | (df["task"] != "mnist_mlp")]
    page = render(single, "html")
    assert "4 of 8 configurations rest on one repeat" in page
    bars = _charts(page)["mnist_mlp: training time (median; whiskers: min to max over repeats)"]
    assert bars.count('stroke-dasharray="4,3"') == 4  # the four one-repeat bars, outlined
    assert "Dashed outline: the bar rests on one repeat" in bars
    assert "1 repeat" in _md_row(render(single, "md"), "mnist_mlp", "fake", "eager", "cpu")["spread"]


def test_html_compile_bars_are_labelled_by_how_compile_was_measured(df):
    compiled = _rows(df, backend="fake", task="mnist_mlp", mode="compiled", device="cpu")
    df.loc[compiled, ["compile_s", "compile_source"]] = [0.02, SOURCE]
    eager = _rows(df, backend="fake", task="mnist_mlp", mode="eager", device="cpu")
    df.loc[eager, ["compile_s", "compile_source"]] = [0.0, "eager: nothing compiled"]
    chart = _charts(render(df, "html"))["mnist_mlp: compile (direct and estimated) versus steady-state "
                                                 "epoch time"]
    assert DIRECT in chart and ESTIMATE in chart  # legend: the direct figure and the estimate
    assert f"fake compiled cpu / {DIRECT}: 20\u00a0ms" in chart
    assert f"fake eager cpu / {DIRECT}: 0\u00a0s" in chart
    small_print = " ".join(re.findall(r'fill="#555">([^<]*)</text>', chart))
    assert f"fake compiled cpu: {SOURCE}" in small_print and "fake eager cpu: eager: nothing compiled" in small_print
    assert "not reported" in chart  # the cuda cells: no direct figure, said so, no 0 s bar
    plain = _charts(render(results.load([SMALL]), "html"))
    assert DIRECT not in plain["mnist_mlp: compile (direct and estimated) versus steady-state epoch time"]


def _y_axis(svg: str) -> tuple[bool, list[str]]:
    """(log scale?, tick labels) of a chart's y axis."""
    label = re.findall(r'transform="rotate\(-90[^"]*"[^>]*>([^<]*)<', svg)[0]
    ticks = re.findall(r'text-anchor="end" font-family="sans-serif" fill="#222">([^<]*)</text>', svg)
    return "(log scale)" in label, ticks


def test_html_charts_of_one_kind_share_their_axis_scale():
    """The reference run: training times span 145 ms to 1,475 s over the tasks, so every training-time
    chart is on a log axis, even a task whose own times would fit a linear one; speedups share a range."""
    page = render(results.load([REFERENCE]), "html")
    charts = _charts(page)
    kinds: dict[str, list[tuple[bool, list[str]]]] = {}
    for title, svg in charts.items():
        kinds.setdefault(title.split(": ", 1)[1], []).append(_y_axis(svg))
    training = kinds["training time (median; whiskers: min to max over repeats)"]
    assert len(training) == 4 and all(log for log, _ in training)
    speedups = kinds["speedup over eager (steady epoch, eager time / mode time)"]
    assert len(speedups) == 4 and len({(log, tuple(ticks)) for log, ticks in speedups}) == 1
    accuracy = [axis for title, axis in zip(charts, map(_y_axis, charts.values()))
                if title.startswith("mnist_") and "accuracy against" in title]
    assert len(accuracy) == 3 and len({tuple(ticks) for _, ticks in accuracy}) == 1
