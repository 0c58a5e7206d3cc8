"""Inference cells (bench run --phase inference): planning, ids, the worker's timing (percentiles from the
timed queries alone), the record, every report format, compare, progress, and the conformance checks of the
prediction path (each caught on a backend built to fail it)."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest

from harness import results
from harness.api import INFERENCE_BATCHES, Cell, class_ref
from harness.cell.worker import run_cell
from harness.cell.worker_inference import WARMUP_CALLS, latency_figures, wrapped_rows
from harness.cli.main import main
from harness.report import inference_table, summary
from harness.report.render import render
from harness.run.progress import ConsoleProgress
from harness.store import record
from tasks.linear_regression import LinearRegression
from tests.conftest import bench
from tests.fakes import FakeBackend
from tests.inference_fakes import PredictingFake, ScriptedLatency

PLUGIN = "from tests.inference_fakes import bench_backends  # noqa: F401  (the hook is the plugin)\n"


def conformance(*args, **kwargs):
    """tests.test_conformance's runner of the suite, imported once bench_numpy (which it imports) is on the path."""
    import tests.test_numpy_plugin  # noqa: F401  (puts examples/bench-numpy on sys.path)
    from tests.test_conformance import conformance as run

    return run(*args, **kwargs)


def failed(outcomes: dict[str, str]) -> set[str]:
    return {name for name, outcome in outcomes.items() if outcome in ("failure", "error")}


def _cell(backend: type, phase: str = "inference", **changes) -> Cell:
    task = LinearRegression()
    fields = {"backend": backend.name, "task": task.name, "mode": "eager", "device": "cpu",
              "hp": task.hyperparams(epochs=2), "train_size": 256, "test_size": 64, "phase": phase,
              "inference_s": 0.05, "inference_queries": 30, "backend_ref": class_ref(backend),
              "task_ref": class_ref(LinearRegression)}
    fields.update(changes)
    return Cell(**fields)


# -- the cell and its plan -------------------------------------------------------------------------

def test_only_inference_cells_carry_a_marker_in_their_id():
    train, inference = _cell(FakeBackend, "train"), _cell(FakeBackend)
    # A training cell's id is what it was before phases existed, so runs made then still resume.
    assert train.cell_id == "fake-linear_regression-eager-cpu-fp32-sgd-b32-e2-lr0.1-s0-n256-t64-r0"
    assert inference.cell_id == "fake-linear_regression-eager-cpu-fp32-sgd-b32-e2-lr0.1-s0-n256-t64-inf-r0"
    assert Cell.from_dict(inference.to_dict()) == inference
    old = train.to_dict()
    for name in ("phase", "inference_s", "inference_queries"):
        del old[name]
    reread = Cell.from_dict(old)  # a plan written before phases reads as training cells, with the same ids
    assert reread.phase == "train" and reread.cell_id == train.cell_id


def test_a_backend_without_predict_batch_has_its_inference_cells_skipped_with_the_reason():
    task = LinearRegression()
    assert FakeBackend.unsupported_reason(task, _cell(FakeBackend, "train")) is None
    assert (FakeBackend.unsupported_reason(task, _cell(FakeBackend))
            == "inference not implemented: fake has no predict_batch")
    assert PredictingFake.unsupported_reason(task, _cell(PredictingFake)) is None
    assert "phase 'serve' unknown" in FakeBackend.unsupported_reason(task, _cell(FakeBackend, "serve"))


def test_the_batch_sizes_agree_everywhere():
    assert INFERENCE_BATCHES == inference_table.BATCHES == (1, 32, 256, 1024)
    for batch in INFERENCE_BATCHES:
        assert f"infer_samples_per_s_b{batch}" in record.BY_NAME
        assert f"infer_samples_per_j_b{batch}" in record.BY_NAME
        assert f"infer_samples_per_s_b{batch}" in summary.INFERENCE_MEDIANS


@pytest.mark.parametrize("args, message", [
    (["--phase", "serve"], "unknown phase 'serve' (choose from: inference, train)"),
    (["--phase", "inference,inference"], "--phase lists 'inference' twice"),
])
def test_a_bad_phase_is_one_line_exit_2(args, message, tmp_path, capsys, fake_plugin):
    out = tmp_path / "results"
    assert main(["run", "--backend", "fake", "--task", "linear_regression", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(message) and "\n" not in err and "Traceback" not in err
    assert not out.exists()


def test_wrapped_rows_repeat_the_split_when_a_batch_is_larger():
    x = np.arange(6, dtype=np.float32).reshape(3, 2)
    got = wrapped_rows(x, 7)
    assert got.shape == (7, 2) and got.flags["C_CONTIGUOUS"] and got.dtype == np.float32
    assert got[:, 0].tolist() == [0, 2, 4, 0, 2, 4, 0]
    assert wrapped_rows(x, 2)[:, 0].tolist() == [0, 2]


# -- the worker's measurement ----------------------------------------------------------------------

def test_an_inference_cells_percentiles_come_from_its_timed_queries_alone():
    """The backend sleeps 40 ms in each warm-up call, then 2, 4, 8 ms in turn, and times each call itself:
    the record's p50, p90 and p99 are those of its own timed queries (within the harness's own overhead),
    with no warm-up call among them."""
    ScriptedLatency.calls.clear()
    out = run_cell(_cell(ScriptedLatency))
    assert out["status"] == "ok", out.get("message")
    queries = out["infer_queries"]
    assert queries >= 30 and out["infer_window_s"] >= 0.05
    ones = [seconds * 1e3 for rows, seconds in ScriptedLatency.calls if rows == 1]
    timed = ones[WARMUP_CALLS:WARMUP_CALLS + queries]
    assert len(timed) == queries
    assert out["infer_first_ms"] >= ScriptedLatency.WARMUP_S * 1e3
    for q in (50, 90, 99):
        expected = float(np.percentile(timed, q))
        assert abs(out[f"infer_ms_p{q}"] - expected) < 0.5, (q, out[f"infer_ms_p{q}"], expected)
    assert out["infer_ms_p99"] < ScriptedLatency.WARMUP_S * 1e3 * 0.5, "a warm-up call is among the timed queries"
    assert latency_figures(timed) == {"infer_ms_p50": float(np.percentile(timed, 50)),
                                      "infer_ms_p90": float(np.percentile(timed, 90)),
                                      "infer_ms_p99": float(np.percentile(timed, 99))}


def test_an_inference_cell_records_throughput_at_every_batch_and_no_training():
    out = run_cell(_cell(PredictingFake))
    assert out["status"] == "ok", out.get("message")
    windows = out["infer_windows"]
    assert [w["view"] for w in windows] == ["single-stream", "offline", "offline", "offline", "offline"]
    assert [w["batch"] for w in windows[1:]] == list(INFERENCE_BATCHES)
    for window in windows[1:]:
        assert window["seconds"] >= 0.1 * 0.05 and window["calls"] >= 3
        assert out[f"infer_samples_per_s_b{window['batch']}"] == pytest.approx(
            window["calls"] * window["batch"] / window["seconds"])
    assert not any(key in out for key in ("epoch_s", "train_s", "steady_epoch_s", "step_ms_p50"))
    assert out["energy_source"] == "unavailable" and out["infer_samples_per_j_b1024"] is None
    _, warnings = record.conform(out, record.WORKER_COLUMNS)
    assert not warnings, warnings


# -- a run, its reports, compare and progress ------------------------------------------------------

@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """One quick run of the predicting fake, training and inference cells, through the real CLI and workers."""
    from tests.conftest import PluginSite

    site = PluginSite(tmp_path_factory.mktemp("site"))
    site.install("bench-predicting", "bench_predicting", PLUGIN, {"predicting": "bench_predicting"})
    out = tmp_path_factory.mktemp("results")
    done = bench("run", "--backend", "predicting", "--task", "linear_regression", "--mode", "eager,compiled",
                 "--phase", "train,inference", "--quick", "--epochs", "3", "--out", str(out), env=site.env())
    assert done.returncode == 0, done.stderr
    assert "inference: ok batch-1 p50" in done.stderr
    return next(p for p in out.iterdir() if p.is_dir())


@pytest.fixture(scope="module")
def df(run_dir):
    return results.load([run_dir])


def test_the_run_has_a_training_and_an_inference_record_per_mode(df):
    assert sorted(zip(df["mode"], df["phase"])) == [("compiled", "inference"), ("compiled", "train"),
                                                     ("eager", "inference"), ("eager", "train")]
    inference = df[df["phase"] == "inference"]
    assert inference["infer_queries"].ge(100).all() and inference["infer_window_s"].ge(1.0).all()
    assert inference["train_s"].isna().all() and df.loc[df["phase"] == "train", "infer_ms_p50"].isna().all()


def test_every_format_has_the_inference_table_apart_from_the_training_ones(df):
    inference = df[df["phase"] == "inference"].sort_values("mode")
    p50 = [inference_table._ms(v) for v in inference["infer_ms_p50"]]
    md = render(df, "md")
    table = md[md.index("#### Inference (prediction"):].split("####")[1]
    assert all(f"| {v} |" in table for v in p50)
    overview = md[md.index("#### Inference latency"):].split("####")[1]
    assert all(f"| {v} (p99 " in overview for v in p50)
    training = md[:md.index("#### Inference")]
    assert training.count("| predicting |") == 6  # the two matrices' and the results table's rows: training cells only
    assert "Inference (prediction, untrained weights)" in render(df, "html")
    table = render(df, "table", width=200)  # the headline: the two overviews
    assert "Inference latency at batch 1" in table and all(f"{v} (p99 " in table for v in p50)
    assert "Inference throughput at batch 1024" in table
    full = render(df, "table", width=200, full=True)
    assert "Inference (prediction, untrained weights)" in full
    cells = json.loads(render(df, "json"))["cells"]
    assert sorted(c["phase"] for c in cells) == ["inference", "inference", "train", "train"]
    csv = render(df, "csv")
    assert "infer_ms_p50" in csv.splitlines()[0] and len(csv.splitlines()) == 5


def test_a_run_without_inference_cells_has_no_inference_table(df):
    train = df[df["phase"] == "train"]
    for fmt in ("md", "html", "table"):
        assert "Inference" not in render(train, fmt)
    only = df[df["phase"] == "inference"]
    md = render(only, "md")  # a run of inference cells only: their table, no training sections
    assert "#### Inference" in md and "Training time" not in md


def test_compare_pairs_inference_cells_on_their_latency_and_training_cells_on_theirs(df, run_dir, capsys):
    from harness.compare.paired import Side, compare

    side = Side("A", df)
    latency = compare(side, Side("B", df), metric="infer_ms_p50")
    assert len(latency) == 2 and latency["config"].str.endswith("-inf").all()
    epochs = compare(side, Side("B", df), metric="steady_epoch_s")
    assert len(epochs) == 2 and not epochs["config"].str.endswith("-inf").any()


def test_progress_says_what_an_inference_cell_measured(df):
    stream = io.StringIO()
    progress = ConsoleProgress(stream)
    row = df[(df["phase"] == "inference")].iloc[0].to_dict()
    progress.cell_finished(1, 1, {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()})
    assert "ok batch-1 p50" in stream.getvalue() and "samples/s at batch 1024" in stream.getvalue()


# -- the conformance checks of the prediction path -------------------------------------------------

def test_an_honest_asynchronous_predictor_passes_the_prediction_checks(tmp_path):
    code, outcomes, output = conformance("tests.inference_fakes:QueuedPredictions", tmp_path, "test_predict")
    assert code == 0, output
    assert set(outcomes.values()) == {"passed"}, output


def test_a_sync_that_does_not_wait_for_predictions_is_caught(tmp_path):
    code, outcomes, output = conformance("tests.inference_fakes:QueuedLyingSync", tmp_path, "test_predict",
                                         select="sync")
    assert code == 1, output
    assert failed(outcomes) == {"test_sync_waits_for_predictions[compiled]", "test_sync_waits_for_predictions[eager]"}
    assert "sync returns before the predictions are done" in output


def test_predictions_off_the_reference_are_caught(tmp_path):
    code, outcomes, output = conformance("tests.inference_fakes:OffByBias", tmp_path, "test_predict",
                                         select="reference")
    assert code == 1, output
    assert failed(outcomes) and all(name.startswith("test_predicted_batches_match_the_reference")
                                    for name in failed(outcomes)), output
    assert "outputs differ from the reference" in output


def test_a_backend_without_predict_batch_skips_the_prediction_checks(tmp_path):
    code, outcomes, output = conformance("tests.fakes:FakeBackend", tmp_path, "test_predict")
    assert code == 0, output
    assert set(outcomes.values()) == {"skipped"}, output


def test_predict_batch_is_optional_in_the_contract():
    assert not FakeBackend.predicts_batches() and PredictingFake.predicts_batches()
    with pytest.raises(NotImplementedError):
        FakeBackend().predict_batch(None, np.zeros((1, 1), np.float32))
