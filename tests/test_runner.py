"""The runner with fake backends: isolation, timeouts, crashes, records."""

from __future__ import annotations

import os
import subprocess

import pytest

from harness import results
from harness.plugins.registry import Registry
from harness.run import folders
from harness.run.plan import Selection, plan
from harness.run.runner import Runner
from tasks.linear_regression import LinearRegression
from tasks.mnist_tasks import MnistCNN, MnistMLP
from tests.fakes import FakeBackend, FaultyBackend, SignalsBackend


@pytest.fixture
def registry() -> Registry:
    registry = Registry()
    registry.add("backend", FakeBackend, "test")
    registry.add("backend", FaultyBackend, "test")
    registry.add("backend", SignalsBackend, "test")
    for task in (LinearRegression, MnistMLP, MnistCNN):
        registry.add("task", task, "test")
    return registry


def _run(registry, tmp_path, **selection):
    sel = Selection(**{"tasks": ["linear_regression"], "epochs": 2, "latency_steps": 3, **selection})
    state = folders.create(tmp_path, plan(registry, sel), {"cpu_model": "test cpu", "plugin_fact": "from the run"},
                        ["bench", "test"])
    Runner().run(state)
    return state, results.load([state.run_dir])


def test_plan_is_the_full_grid_with_repeats_outermost(registry):
    sel = Selection(backends=["fake"], tasks=["linear_regression", "mnist_mlp"], repeat=2,
                    batch_sizes=[16, 32], optimizers=["sgd", "adam"], modes=list(FakeBackend.modes))
    cells = [p.cell for p in plan(registry, sel)]
    assert len(cells) == 2 * 2 * 2 * 2 * len(FakeBackend.modes)
    assert [c.repeat for c in cells] == sorted(c.repeat for c in cells)
    assert len({c.cell_id for c in cells}) == len(cells)
    adam = [p for p in plan(registry, sel) if p.cell.hp.optimizer == "adam"]
    assert all(p.skip_reason == "optimizer 'adam' not implemented" for p in adam)


def test_without_modes_each_backend_runs_its_best_mode_only(registry):
    cells = [p.cell for p in plan(registry, Selection(backends=["fake"], tasks=["linear_regression", "mnist_mlp"]))]
    assert [c.mode for c in cells] == [FakeBackend.modes[-1]] * 2


def test_unsupported_layers_are_skipped_with_reason(registry, tmp_path):
    _, df = _run(registry, tmp_path, backends=["fake"], tasks=["mnist_cnn"], modes=["eager"], optimizers=["sgd"])
    row = df.iloc[0]
    assert row.status == "skipped"
    assert row.message == "layer kinds not implemented: Conv2D, MaxPool2D"


def test_crash_and_timeout_cells_are_recorded_and_others_unaffected(registry, tmp_path):
    from harness.measure import envinfo

    state, df = _run(registry, tmp_path, backends=["fake", "faulty"], modes=["eager", "ok", "raise", "hang"],
                     timeout_s=5)
    by_mode = {(r.backend, r.mode): r for r in df.itertuples()}
    assert by_mode[("fake", "eager")].status == "ok"
    assert by_mode[("faulty", "ok")].status == "ok"
    raised = by_mode[("faulty", "raise")]
    assert raised.status == "error"
    assert raised.env_cpu_model == envinfo.cpu_model() != "test cpu"  # a failed cell's worker says where it ran too
    assert raised.message == "RuntimeError: second line of the message"
    assert "Traceback" in (state.run_dir / raised.log).read_text()
    hung = by_mode[("faulty", "hang")]
    assert hung.status == "timeout"
    assert 5 <= hung.wall_s < 15
    leftover = subprocess.run(["pgrep", "-f", "sleep 3600"], capture_output=True, text=True)
    assert leftover.stdout.strip() == "", "the timed-out cell's helper process survived"
    assert (df[df.backend == "fake"].status.value_counts().to_dict()) == {"skipped": 3, "ok": 1}


def test_every_cell_runs_in_its_own_process(registry, tmp_path):
    _, df = _run(registry, tmp_path, backends=["fake"], modes=["eager", "compiled"])
    assert (df.status == "ok").all()
    assert all(d == {} for d in df.details)
    assert df.peak_host_mb.notna().all()
    assert (df.wall_s > df.total_s).all()  # process start and import are inside the runner's clock


def test_records_carry_their_workers_environment_and_measurements(registry, tmp_path):
    from harness.measure import envinfo

    state, df = _run(registry, tmp_path, backends=["fake"], modes=["eager"], seed=3)
    row = df.iloc[0]
    assert row.run_id == state.run_id and row.schema_version == results.SCHEMA_VERSION
    assert (row.backend, row.task, row.device, row.seed, row.epochs) == ("fake", "linear_regression", "cpu", 3, 2)
    # The worker's own machine, not the one the run was planned with; plugins' extra facts kept.
    assert row.env_cpu_model == envinfo.cpu_model() != "test cpu" and row.device_name == envinfo.cpu_model()
    assert row.env_plugin_fact == "from the run"
    assert 0 < row.cold_start_s < row.wall_s and row.cold_start_s >= row.first_epoch_s
    assert row.first_epoch_excess_s == pytest.approx(row.epoch_s[0] - row.steady_epoch_s)
    assert row.samples_per_s == pytest.approx(row.train_size // row.batch_size * row.batch_size / row.steady_epoch_s)
    assert row.data_mb > 0
    assert len(row.epoch_s) == 2 and len(row.curve) == 2
    assert row.train_s == pytest.approx(sum(row.epoch_s))
    assert row.initial_loss == pytest.approx(row.initial_loss_ref, rel=1e-6)


def test_resume_runs_only_unfinished_cells(registry, tmp_path):
    state, df = _run(registry, tmp_path, backends=["fake"], modes=["eager"])
    reopened = folders.reopen(state.run_dir)
    assert reopened.done == {df.iloc[0].cell_id}
    assert Runner().run(reopened) == []


def test_the_runners_signal_handlers_are_its_own_while_it_runs_and_gone_after(registry, tmp_path):
    """The worker does not get the runner's SIGINT handler (its own is Python's default) and runs in a session
    of its own; the runner's handler is in place only while it runs."""
    import signal

    before = signal.getsignal(signal.SIGINT)
    _, df = _run(registry, tmp_path, backends=["signals"], modes=["eager"])
    assert signal.getsignal(signal.SIGINT) is before
    (details,) = df["details"]
    assert details == {"sigint": "default_int_handler", "own_session": True}


def test_runner_environment_keeps_compile_caches_private(registry, tmp_path, monkeypatch):
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    from harness.cell.parent import child_env

    cell = plan(registry, Selection(backends=["fake"], tasks=["linear_regression"]))[0].cell
    env = child_env(cell, tmp_path)
    assert env["TORCHINDUCTOR_CACHE_DIR"].startswith(str(tmp_path))
    assert env["KERAS_HOME"].startswith(str(tmp_path))
    assert os.getcwd() in env["PYTHONPATH"].split(os.pathsep)


class CacheSpy(FakeBackend):
    """Reports the cache and temporary folders its worker was given."""

    name = "cache_spy"

    def details(self, state):
        return {k: os.environ.get(k) for k in ("TMPDIR", "TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR", "KERAS_HOME")}


def test_cells_get_private_compile_caches_and_share_the_runs_temporary_folder(registry, tmp_path):
    registry.add("backend", CacheSpy, "test")
    _, df = _run(registry, tmp_path, backends=["cache_spy"], modes=["eager", "compiled"])
    first, second = list(df.details)
    assert first["TMPDIR"] == second["TMPDIR"]
    for cache in ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR", "KERAS_HOME"):
        assert first[cache] != second[cache] and not first[cache].startswith(first["TMPDIR"])
    assert not os.path.exists(first["TMPDIR"]) and not os.path.exists(first["TORCHINDUCTOR_CACHE_DIR"])


def test_a_signal_the_user_ignored_stays_ignored_during_a_run(registry, tmp_path):
    import signal

    from harness.run.runner import QuietProgress

    seen = []

    class Spy(QuietProgress):
        def cell_started(self, index, total, cell):
            seen.append((signal.getsignal(signal.SIGHUP), signal.getsignal(signal.SIGTERM)))

    sel = Selection(backends=["fake"], tasks=["linear_regression"], epochs=1, latency_steps=0, modes=["eager"])
    state = folders.create(tmp_path, plan(registry, sel), {}, ["bench", "test"])
    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as under `nohup bench run`
    try:
        Runner(progress=Spy()).run(state)
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, before)
    assert seen[0][0] == signal.SIG_IGN  # a closed terminal does not stop a nohup'd run
    assert seen[0][1] not in (signal.SIG_IGN, signal.SIG_DFL)  # SIGTERM still stops it cleanly


def test_a_worker_reports_its_outcome_even_when_it_cannot_read_its_environment(monkeypatch):
    """An out-of-memory cell's worker may fail to read its environment too; its record must still come back."""
    from harness.api import Cell, class_ref
    from harness.cell.worker import run_cell
    from harness.measure import envinfo

    def no_memory(*_):
        raise MemoryError

    monkeypatch.setattr(envinfo, "collect", no_memory)
    saved = dict(os.environ)
    cell = Cell("faulty", "linear_regression", "raise", "cpu", LinearRegression().hyperparams(epochs=1), train_size=64,
                test_size=32, latency_steps=0, backend_ref=class_ref(FaultyBackend),
                task_ref=class_ref(LinearRegression))
    try:
        result = run_cell(cell)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert (result["status"], result["message"]) == ("error", "RuntimeError: second line of the message")
    assert "env" not in result  # the runner records its own


def test_a_cell_alone_on_the_machine_counts_itself_once_and_sees_no_other(registry, tmp_path):
    """The worker's guardian is a fork with the worker's command line: it is not another cell."""
    from harness.measure.interference import worker_pids

    if worker_pids():
        pytest.skip("other bench cells run on this machine now")
    _, df = _run(registry, tmp_path, backends=["fake"], modes=["eager"])
    if worker_pids():
        pytest.skip("other bench cells started meanwhile")
    record = df.iloc[0]
    assert record["node_cells"] == 1
    epochs = record["interference"]
    assert len(epochs) == 2 and all(e["other_cells"] == 0 for e in epochs)
    assert all(e["cpu_s"] >= 0 and e["involuntary"] >= 0 and e["load"] >= 0 for e in epochs)


def test_an_epoch_too_short_to_time_alone_is_timed_in_blocks(registry, tmp_path):
    """The fake's linear-regression epoch takes well under 100 ms: its steady epoch is a median of blocks of
    epochs, each block at least 0.2 s, divided by the epochs in a block; the record says so."""
    import re

    from harness.cell.worker_blocks import BLOCK_AT_LEAST_S, BLOCKS

    _, df = _run(registry, tmp_path, backends=["fake"], modes=["eager"])
    record = df.iloc[0]
    blocks = record["steady_epoch_blocks_s"]
    k = int(re.search(r"blocks of (\d+) epochs", record["steady_epoch_method"]).group(1))
    assert len(blocks) == BLOCKS and min(blocks) >= BLOCK_AT_LEAST_S * 0.5 and k > 1
    assert record["steady_epoch_s"] == pytest.approx(sorted(blocks)[BLOCKS // 2] / k)
    assert record["samples_per_s"] == pytest.approx(1000 // 32 * 32 / record["steady_epoch_s"])


def test_an_epoch_long_enough_is_timed_alone(registry, tmp_path):
    _, df = _run(registry, tmp_path, backends=["fake"], modes=["eager"], tasks=["mnist_mlp"], optimizers=["sgd"],
                 train_sizes=[20000], test_size=100)
    record = df.iloc[0]
    assert record["status"] == "ok", record["message"]
    if record["epoch_s"][1] < 0.1:
        pytest.skip("this machine trains the fake MLP faster than the blocks' threshold")
    assert record["steady_epoch_method"] == "median epoch after the first"
    assert record["steady_epoch_s"] == record["epoch_s"][1] and record["steady_epoch_blocks_s"] is None
