"""The Keras-cost view: Keras engines against the native backend on the same engine, from synthetic summaries."""

from __future__ import annotations

import pandas as pd
import pytest

from harness import results
from harness.api import Cell, Hyperparams
from harness.report.keras_cost import COLUMNS, keras_cost, keras_cost_rows
from harness.report.render import render
from harness.report.summary import summary
from harness.run.runner import make_record

CPU = {"cpu_model": "Xeon"}


def record(backend: str, steady: float | None, compile_s: float | None = None, run: str = "run-a",
           status: str = "ok", task: str = "mnist_mlp", mode: str = "compiled", batch: int = 128,
           env: dict | None = None, repeat: int = 0) -> dict:
    cell = Cell(backend, task, mode, "cpu", Hyperparams(batch_size=batch, epochs=3), repeat=repeat)
    values = {"status": status, "steady_epoch_s": steady, "compile_s": compile_s, "train_s": 1.0,
              "compile_source": None if compile_s is None else "the framework's own counter"}
    return results.flatten(make_record(run, cell, env or CPU, values, "1.0"))


def summary_of(*records: dict) -> pd.DataFrame:
    return summary(pd.DataFrame(list(records)))


def test_each_keras_engine_is_divided_by_its_own_native_backend():
    table = keras_cost(summary_of(
        record("keras-jax", 3.0, 2.0), record("jax", 1.0, 0.5),
        record("keras-torch", 4.0, 9.0), record("torch", 2.0, 3.0),
        record("keras-tensorflow", 6.0, 1.0), record("tensorflow", 1.5, 4.0),
    ))
    assert list(table.columns[:len(COLUMNS)]) == COLUMNS
    got = {r["engine"]: r for r in table.to_dict("records")}
    assert set(got) == {"jax", "torch", "tensorflow"} and len(table) == 3
    assert (got["jax"]["keras_backend"], got["jax"]["native_backend"]) == ("keras-jax", "jax")
    assert got["jax"]["epoch_ratio"] == pytest.approx(3.0)
    assert got["torch"]["epoch_ratio"] == pytest.approx(2.0)
    assert got["tensorflow"]["epoch_ratio"] == pytest.approx(4.0)
    assert got["torch"]["compile_ratio"] == pytest.approx(3.0)
    assert got["tensorflow"]["compile_ratio"] == pytest.approx(0.25)
    assert got["jax"]["compile_measure"] == "reported by the framework"
    assert (got["jax"]["keras_epoch_s"], got["jax"]["native_epoch_s"]) == (3.0, 1.0)


def test_a_row_only_where_both_ran_ok():
    table = keras_cost(summary_of(
        record("keras-jax", 3.0), record("jax", None, status="error"),
        record("keras-torch", None, status="timeout"), record("torch", 2.0),
        record("keras-tensorflow", 2.0), record("tensorflow", 1.0),
        record("tensorflow", 1.0, task="mnist_cnn"),  # no Keras row for the CNN
    ))
    assert list(table["engine"]) == ["tensorflow"]


def test_a_repeat_that_failed_leaves_the_configuration_out():
    table = keras_cost(summary_of(record("keras-jax", 3.0), record("keras-jax", None, status="oom", repeat=1),
                                  record("jax", 1.0)))
    assert table.empty


def test_rows_pair_only_the_same_settings_and_hardware():
    table = keras_cost(summary_of(
        record("keras-jax", 3.0, batch=32), record("jax", 1.0, batch=128),
        record("keras-torch", 3.0, mode="eager"), record("torch", 1.0, mode="compiled"),
        record("keras-tensorflow", 3.0), record("tensorflow", 1.0, env={"cpu_model": "Epyc"}),
    ))
    assert table.empty


def test_one_row_per_task_mode_and_engine():
    records = [record(b, 2.0 if b.startswith("keras") else 1.0, task=t, mode=m)
               for b in ("keras-jax", "jax", "keras-torch", "torch") for t in ("mnist_mlp", "mnist_cnn")
               for m in ("eager", "compiled")]
    table = keras_cost(summary_of(*records))
    assert len(table) == 8
    assert not table.duplicated(["task", "mode", "device", "engine"]).any()
    assert set(table["epoch_ratio"]) == {2.0}


def test_the_native_row_comes_from_the_same_run_else_the_latest():
    own = keras_cost(summary_of(record("keras-jax", 3.0, run="20260101-b"), record("jax", 1.0, run="20260101-a"),
                                record("jax", 1.5, run="20260101-b"), record("jax", 2.0, run="20260101-c")))
    assert (own.loc[0, "native_run"], own.loc[0, "epoch_ratio"]) == ("20260101-b", 2.0)
    latest = keras_cost(summary_of(record("keras-jax", 3.0, run="20260101-b"), record("jax", 1.0, run="20260101-a"),
                                   record("jax", 2.0, run="20260101-c")))
    assert (latest.loc[0, "keras_run"], latest.loc[0, "native_run"]) == ("20260101-b", "20260101-c")
    assert latest.loc[0, "epoch_ratio"] == 1.5


def test_compile_time_uses_one_measure_for_both_sides():
    table = summary(pd.DataFrame([record("keras-tensorflow", 3.0, None), record("tensorflow", 1.0, 0.4),
                                         record("keras-jax", 3.0, 2.0), record("jax", 1.0, None)]))
    table["first_epoch_excess_s"] = [8.0 if b == "keras-tensorflow" else 2.0 for b in table["backend"]]
    # keras-jax reports compile_s and jax does not: both fall back to the first-epoch excess
    out = keras_cost(table).set_index("engine")
    assert out.loc["tensorflow", "compile_measure"] == "first-epoch excess"
    assert out.loc["tensorflow", "compile_ratio"] == 4.0
    assert out.loc["jax", "compile_measure"] == "first-epoch excess"
    assert (out.loc["jax", "keras_compile_s"], out.loc["jax", "native_compile_s"]) == (2.0, 2.0)
    without = keras_cost(table.drop(columns="first_epoch_excess_s")).set_index("engine")
    assert without["compile_measure"].isna().all() and without["compile_ratio"].isna().all()


def test_no_ratio_over_a_zero_or_missing_native_time_or_of_a_negative_excess():
    table = keras_cost(summary_of(record("keras-torch", 2.0, 0.0, mode="eager"),
                                  record("torch", None, 0.0, mode="eager")))
    row = table.iloc[0]
    assert pd.isna(row["epoch_ratio"]) and pd.isna(row["compile_ratio"])  # one-epoch runs: no steady epoch
    table = summary(pd.DataFrame([record("keras-torch", 2.0), record("torch", 1.0)]))
    table["first_epoch_excess_s"] = [-0.05, 0.1]  # the first epoch came out faster than the steady one
    row = keras_cost(table).iloc[0]
    assert row["keras_compile_s"] == -0.05 and pd.isna(row["compile_ratio"])


def test_formatted_rows():
    header, rows = keras_cost_rows(keras_cost(summary_of(record("keras-jax", 3.0, 2.0), record("jax", 0.5, None))))
    assert header[:4] == ["task", "mode", "device", "engine"] and len(header) == len(rows[0])
    assert rows == [["mnist_mlp", "compiled", "cpu", "jax", "3 s", "500 ms", "6.00×", "-", "-", "-", "-"]]


def test_an_empty_summary_gives_an_empty_table():
    assert list(keras_cost(summary(results.load([], root="."))).columns) == COLUMNS
    assert keras_cost_rows(keras_cost(pd.DataFrame())) == (keras_cost_rows(keras_cost(pd.DataFrame()))[0], [])


@pytest.mark.parametrize("fmt", ["table", "md", "html"])
def test_bench_report_shows_the_keras_cost_in_every_format(fmt):
    df = pd.DataFrame([record("keras-jax", 3.0, 2.0), record("jax", 1.0, 0.5), record("torch", 2.0, 3.0)])
    text = render(df, fmt, width=120, full=True)
    assert "Keras cost" in text and "3.00×" in text  # keras-jax over jax; keras-torch did not run: no torch row
    alone = render(pd.DataFrame([record("jax", 1.0, 0.5)]), fmt, width=120)
    assert "Keras cost" not in alone


def test_keras_default_is_set_against_the_native_backends_compiled_mode():
    """`default` (model.compile() as the seeds call it) is what a Keras user runs; the native side is its best
    mode, compiled, never a native eager row, and never a native row with other penalties."""
    table = keras_cost(summary_of(
        record("keras-tensorflow", 14.0, mode="default"), record("tensorflow", 7.0, mode="compiled"),
        record("tensorflow", 1.0, mode="eager"),
        record("keras-jax", 3.0, mode="default"), record("jax", 99.0, mode="eager"),  # no compiled jax: no pair
    ))
    assert len(table) == 1
    row = table.iloc[0]
    assert (row["mode"], row["native_mode"], row["engine"], row["epoch_ratio"]) == ("default", "compiled",
                                                                                    "tensorflow", 2.0)
    _, rows = keras_cost_rows(table)
    assert rows[0][:4] == ["mnist_mlp", "default / compiled", "cpu", "tensorflow"]
    text = render(pd.DataFrame([record("keras-tensorflow", 14.0, mode="default"),
                                record("tensorflow", 7.0, mode="compiled")]), "table", width=120, full=True)
    assert "default / compiled" in text and "2.00×" in text


def test_rows_with_other_penalties_do_not_pair():
    def penalised(backend, steady, l1):
        cell = Cell(backend, "mnist_mlp", "compiled", "cpu", Hyperparams(batch_size=128, epochs=3, l1=l1))
        return results.flatten(make_record("run-a", cell, CPU, {"status": "ok", "steady_epoch_s": steady,
                                                                "train_s": 1.0}, "1.0"))

    assert keras_cost(summary_of(penalised("keras-jax", 3.0, 1e-4), penalised("jax", 1.0, 0.0))).empty
    assert len(keras_cost(summary_of(penalised("keras-jax", 3.0, 1e-4), penalised("jax", 1.0, 1e-4)))) == 1
