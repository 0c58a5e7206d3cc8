"""The terminal report at 80, 100 and 120 columns: every line fits, no backend, task, mode or device
name is ever folded or shortened, and constant key columns give way before timing columns."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from rich.cells import cell_len

from harness import results
from harness.report.render import render
from harness.report.terminal import fit
from tests.test_report import rich_tables

ROOT = Path(__file__).resolve().parents[1]
SMALL = ROOT / "tests" / "fixtures" / "runs" / "report-small"
REFERENCE = sorted((ROOT / "results").glob("reference-cpu-*"))[-1]  # the newest real CPU run
LONG = ("RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.15 GiB total capacity; 61.20 GiB "
        "already allocated; 1.38 GiB free; 62.50 GiB reserved in total by PyTorch) If reserved memory is >> "
        "allocated memory try setting max_split_size_mb to avoid fragmentation.")
NAME_COLUMNS = ("backend", "mode", "device", "task")


def _with_long_failure() -> pd.DataFrame:
    """The reference run with one cell failed with a framework's long message."""
    df = results.load([REFERENCE])
    failed = df.index[(df.backend == "torch") & (df.task == "mnist_cnn") & (df["mode"] == "compiled")]
    df.loc[failed, ["status", "message", "train_s"]] = ["oom", LONG, None]
    return df


RUNS = {"report-small": lambda: results.load([SMALL]), "reference": lambda: results.load([REFERENCE]),
        "long failure": _with_long_failure}


def _names(df: pd.DataFrame) -> set[str]:
    return {str(v) for column in NAME_COLUMNS for v in df[column].dropna().unique()}


@pytest.mark.parametrize("width", [80, 100, 120])
@pytest.mark.parametrize("run", list(RUNS))
def test_every_line_fits_and_no_name_is_folded(run, width):
    df = RUNS[run]()
    text = render(df, "table", width=width, full=True)
    too_wide = [line for line in text.splitlines() if cell_len(line) > width]
    assert not too_wide, too_wide[:3]
    names = _names(df)
    tables = rich_tables(text)
    assert tables
    for title, header, rows in tables:
        for i, column in enumerate(header):
            if column in NAME_COLUMNS:
                cells = [row[i] for row in rows]
                assert set(cells) <= names, (title, column, set(cells) - names)
    # a continuation line of a wrapped row never carries a piece of a name
    for line in text.splitlines():
        if line.startswith("│"):
            cells = [c.strip() for c in line.split("│")[1:-1]]
            if not cells[0]:
                assert not any(c in names or any(n.startswith(c) for n in names) for c in cells[:2] if c), line


@pytest.mark.parametrize("width", [80, 100, 120])
def test_the_long_failure_message_wraps_and_stays_whole(width):
    text = render(_with_long_failure(), "table", width=width, full=True)
    assert " ".join(text.split()).count(" ".join(LONG.split())) == 1
    assert "mnist_cnn torch compiled cpu: oom" in text


def test_constant_key_columns_give_way_before_timing_columns():
    """At 100 columns the reference run's device column (cpu everywhere) goes to the title; train and the
    steady epoch stay."""
    text = render(results.load([REFERENCE]), "table", width=100, full=True)
    results_tables = [(title, header) for title, header, _ in rich_tables(text) if "train" in header]
    assert len(results_tables) == 4
    for title, header in results_tables:
        assert "device" not in header and title.endswith("device cpu")
        assert {"backend", "mode", "train", "epoch", "metric"} <= set(header)


def test_fit_drops_in_order_only_what_it_must():
    header = ["backend", "device", "train", "epoch", "samples/s"]
    rows = [["tensorflow", "cpu", "1.2 s", "300 ms", "12.3k"]]
    natural = sum(max(len(h), len(r)) for h, r in zip(header, rows[0])) + 3 * len(header) + 1
    assert fit(header, rows, frozenset(), natural, [1, 4, 3])[0] == [0, 1, 2, 3, 4]
    kept, widths = fit(header, rows, frozenset(), natural - 1, [1, 4, 3])
    assert kept == [0, 2, 3, 4] and widths[0] == len("tensorflow")  # the constant device column goes first
    assert fit(header, rows, frozenset(), 20, [1, 4, 3]) is None  # never by cutting a name


@pytest.mark.parametrize("width", [80, 100, 120])
def test_the_reference_run_is_one_line_per_row_at_every_width(width):
    """No narrow column stacks a name letter by letter and no value wraps: columns give way instead."""
    text = render(results.load([REFERENCE]), "table", width=width, full=True)
    body = [line for line in text.splitlines() if line.startswith("│")]
    continued = [line for line in body if not line.split("│")[1].strip()]
    assert body and not continued, continued[:3]


SCREEN_LINES = 50  # a terminal of 80 x 50: what "one screen" means here


@pytest.mark.parametrize("run", ["reference", "long failure"])
def test_the_default_report_fits_one_screen_at_80_columns(run):
    """48 cells: both headline grids whole (never split by task), one line per cell that did not finish,
    and a pointer to the rest."""
    text = render(RUNS[run](), "table", width=80)
    lines = text.splitlines()
    assert len(lines) <= SCREEN_LINES, len(lines)
    assert all(cell_len(line) <= 80 for line in lines)
    grids = [i for i, line in enumerate(lines) if line.startswith("backend mode ")]
    assert len(grids) == 2  # training time and steady epoch, each with every task in one table
    for i in grids:
        assert lines[i].split() == ["backend", "mode", "linear_regression", "mnist_cnn", "mnist_lstm", "mnist_mlp"]
    assert "keras-tensorflow compiled" in text and "--full" in text
    if run == "long failure":
        assert any(line.startswith("torch compiled mnist_cnn: oom: RuntimeError: CUDA out of memory") for line in lines)
    full = render(RUNS[run](), "table", width=80, full=True)
    assert len(full.splitlines()) > 2 * SCREEN_LINES  # the rest is there, one flag away


def test_a_run_of_one_epoch_cells_says_why_it_has_no_steady_epoch_instead_of_a_grid_of_dashes():
    df = results.load([REFERENCE])
    one_epoch = df.assign(steady_epoch_s=None)  # as --quick writes them: one epoch, no steady one
    text = render(one_epoch, "table", width=80)
    assert "Steady epoch: none, every cell ran one epoch" in text
    assert sum(line.startswith("backend mode ") for line in text.splitlines()) == 1  # training time only
    assert "Steady epoch: none" not in render(df, "table", width=80)  # the negative control: a real grid there


def test_the_keras_cost_reads_one_row_a_line_at_80_columns():
    """Each Keras/native pair stands beside its ratio on one line; an excess pair is marked and explained."""
    text = render(results.load([REFERENCE]), "table", width=80, full=True)
    section = text[text.index("Keras cost, "):]
    rows = [line for line in section.splitlines() if line.startswith(("compiled ", "eager "))]
    assert len(rows) == 23  # 4 tasks x 3 engines x 2 modes, less keras-jax's skipped eager LSTM
    for line in rows:
        assert cell_len(line) <= 80 and line.count(" / ") == 2 and line.count("×") >= 1, line
    assert any(line.startswith("compiled tensorflow") and " *" in line for line in rows)
    assert "*: compile as first-epoch excesses" in " ".join(section.split())
