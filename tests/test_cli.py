"""The command line: choices, bad input (exit 2, one line, nothing written), plugins listing."""

from __future__ import annotations

import pytest

from harness.cli.main import main
from tests.conftest import bench

BAD_RUN_ARGS = [
    (["--backend", "nope"], "unknown backend 'nope' (choose from: "),
    (["--task", "mnist_gan"],
     "unknown task 'mnist_gan' (choose from: linear_regression, mnist_cnn, mnist_lstm, mnist_mlp)"),
    (["--mode", "warp"], "unknown mode 'warp' (choose from: "),
    (["--device", "tpu"], "unknown device 'tpu' (choose from: auto, cpu, cuda)"),
    (["--precision", "fp8"], "unknown precision 'fp8' (choose from: bf16, fp32, tf32)"),
    (["--optimizer", "lion"], "unknown optimizer 'lion' (choose from: adagrad, adam, momentum, rmsprop, sgd)"),
    (["--epochs", "0"], "--epochs must be a positive whole number, not '0'"),
    (["--epochs", "two"], "--epochs must be a positive whole number, not 'two'"),
    (["--batch-size", "-8"], "--batch-size must be a positive whole number, not '-8'"),
    (["--batch-size", "32,,64"], "--batch-size takes a comma-separated list without empty items"),
    (["--repeat", "0"], "--repeat must be a positive whole number, not '0'"),
    (["--lr", "0"], "--lr must be a number > 0, not '0'"),
    (["--lr", "nan"], "--lr must be a number > 0, not 'nan'"),
    (["--timeout", "-1"], "--timeout must be a number > 0, not '-1'"),
    (["--threads", "0"], "--threads must be a positive whole number, not '0'"),
    (["--seed", "-3"], "--seed must be a whole number >= 0, not '-3'"),
    (["--train-size", "1.5"], "--train-size must be a positive whole number, not '1.5'"),
    (["--train-size", "1e400"], "--train-size must be a positive whole number, not '1e400'"),
    (["--task", "mnist_mlp", "--train-size", "1e5"],
     "--train-size 100,000 asks for more than the 60,000 samples of MNIST's split (mnist_mlp)"),
    (["--task", "mnist_mlp", "--test-size", "10001"],
     "--test-size 10,001 asks for more than the 10,000 samples of MNIST's split (mnist_mlp)"),
    (["--frobnicate"], "unrecognized arguments: --frobnicate"),
]


@pytest.mark.parametrize("args,message", BAD_RUN_ARGS)
def test_bad_run_input_is_one_line_exit_2_and_writes_nothing(args, message, tmp_path, capsys, fake_plugin):
    out = tmp_path / "results"
    assert main(["run", "--backend", "fake", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bench: error: ") and message in err
    assert err.count("\n") == 1
    assert not out.exists()


@pytest.mark.parametrize("text,value", [("1e7", 10_000_000), ("60_000", 60000), ("6e4", 60000), ("512", 512)])
def test_whole_numbers_are_read_in_the_forms_the_docs_write(text, value):
    """The README and `bench list` write sizes as 1e7; the parser must take them as they are written."""
    from harness.cli.main import build_parser

    assert build_parser().parse_args(["run", "--train-size", text]).train_size == [value]


def test_cuda_asked_for_on_a_machine_without_one_is_exit_2(tmp_path, capsys, fake_plugin):
    from harness.measure.envinfo import gpu_present

    if gpu_present():
        pytest.skip("this machine has a GPU")
    out = tmp_path / "results"
    assert main(["run", "--backend", "fake", "--device", "cuda", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bench: error: --device cuda: no CUDA GPU visible") and err.count("\n") == 1
    assert not out.exists()


def test_a_plain_run_takes_the_native_backends_and_all_takes_every_available_one():
    from harness.cli.cmd_run import _backends
    from harness.cli.main import build_parser
    from harness.plugins.registry import build_registry

    reg, _ = build_registry()
    available = {n for n, b in reg.backends.items() if b.availability().ok}
    plain = set(_backends(build_parser().parse_args(["run"]), reg))
    assert plain == available - {"keras-jax", "keras-tensorflow", "keras-torch"}
    assert set(_backends(build_parser().parse_args(["run", "--backend", "all"]), reg)) == available


def test_unwritable_output_directory(tmp_path, capsys, fake_plugin):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(["run", "--backend", "fake", "--task", "linear_regression", "--out", str(blocker / "sub")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"bench: error: cannot write results to {blocker / 'sub'}: ") and err.count("\n") == 1


def test_missing_data_directory_is_reported_with_how_to_fix(tmp_path, capsys, monkeypatch, fake_plugin):
    monkeypatch.setenv("BENCH_DATA_DIR", str(tmp_path / "nowhere"))
    out = tmp_path / "results"
    assert main(["run", "--backend", "fake", "--task", "mnist_mlp", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"MNIST file train-images-idx3-ubyte[.gz] not found in {tmp_path / 'nowhere'}" in err
    assert "set BENCH_DATA_DIR" in err and err.count("\n") == 1
    assert not out.exists()


def test_unknown_command_and_no_command(capsys):
    assert main(["fly"]) == 2
    assert "invalid choice: 'fly'" in capsys.readouterr().err
    assert main([]) == 0
    assert "COMMAND" in capsys.readouterr().out


def test_real_process_prints_no_traceback_for_bad_input(tmp_path):
    result = bench("run", "--epochs", "-1", "--out", str(tmp_path / "r"))
    assert result.returncode == 2
    assert result.stderr == "bench: error: --epochs must be a positive whole number, not '-1'\n"


def test_third_party_backend_appears_runs_and_autoload_hides_it(fake_plugin, tmp_path):
    listing = bench("plugins", env=fake_plugin.env())
    assert listing.returncode == 0
    assert "bench-fake 0.1" in listing.stdout and "backend fake" in listing.stdout
    run = bench("run", "--backend", "fake", "--task", "linear_regression", "--out", str(tmp_path / "r"),
                env=fake_plugin.env())
    assert run.returncode == 0, run.stderr
    assert "linear_regression" in run.stdout and "fake" in run.stdout
    hidden = bench("plugins", env=fake_plugin.env(BENCH_DISABLE_PLUGIN_AUTOLOAD="1"))
    assert "bench-fake" not in hidden.stdout
    refused = bench("run", "--backend", "fake", "--out", str(tmp_path / "r2"),
                    env=fake_plugin.env(BENCH_DISABLE_PLUGIN_AUTOLOAD="1"))
    assert refused.returncode == 2 and "unknown backend 'fake'" in refused.stderr


def test_broken_package_is_listed_and_the_others_still_run(fake_plugin, tmp_path):
    fake_plugin.install("bench-kaputt", "kaputt", "import this_module_does_not_exist\n")
    listing = bench("plugins", env=fake_plugin.env())
    assert listing.returncode == 0
    flat = " ".join(listing.stdout.replace("│", " ").split())  # the table may wrap the message over lines
    assert "bench-kaputt" in flat and "broken" in flat and "this_module_does_not_exist" in flat, listing.stdout
    run = bench("run", "--backend", "fake", "--task", "linear_regression", "--out", str(tmp_path / "r"),
                env=fake_plugin.env())
    assert run.returncode == 0, run.stderr


def test_backend_whose_framework_is_missing_is_listed_unavailable(plugin_site, capsys):
    plugin_site.install("bench-ghost", "ghost", """
        from harness import hookimpl
        from tests.fakes import FakeBackend

        class Ghost(FakeBackend):
            name = "ghost"
            module = "ghost_framework_not_installed"
            distributions = ("ghost-framework",)
            availability = classmethod(FakeBackend.__mro__[1].availability.__func__)

        @hookimpl
        def bench_backends():
            return [Ghost]
    """)
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "backend ghost (unavailable: ghost_framework_not_installed is not installed)" in out
    assert main(["list"]) == 0
    assert "no: ghost_framework_not_installed is not installed" in capsys.readouterr().out


def test_batch_larger_than_the_training_set_is_bad_input(tmp_path, capsys, fake_plugin):
    out = tmp_path / "results"
    assert main(["run", "--backend", "fake", "--task", "linear_regression", "--train-size", "100",
                 "--batch-size", "128", "--out", str(out)]) == 2
    assert "batch size 128 exceeds the 100 training samples of linear_regression" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("variable", ["BENCH_JAX_EPOCH_LOOP", "BENCH_JAX_TIME_LOOP"])
def test_bad_backend_environment_variable_is_exit_2_before_anything_runs(variable, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(variable, "sideways")
    out = tmp_path / "results"
    assert main(["run", "--backend", "jax", "--task", "linear_regression", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == f"bench: error: backend jax: {variable} must be one of " + \
        ("scan, step" if "EPOCH" in variable else "python, scan") + " (or unset), not 'sideways'\n"
    assert not out.exists()


def test_bad_backend_environment_variable_stops_a_resume_too(tmp_path, capsys, monkeypatch):
    from harness.api import Cell
    from harness.run import folders
    from harness.run.plan import PlannedCell
    from tasks.linear_regression import LinearRegression

    cell = Cell("jax", "linear_regression", "eager", "cpu", LinearRegression().hyperparams())
    state = folders.create(tmp_path, [PlannedCell(cell)], {}, ["bench", "run"])
    before = sorted(p.name for p in state.run_dir.iterdir())
    monkeypatch.setenv("BENCH_JAX_EPOCH_LOOP", "sideways")
    assert main(["run", "--resume", state.run_id, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == ("bench: error: backend jax: BENCH_JAX_EPOCH_LOOP must be one of scan, step (or unset), "
                   "not 'sideways'\n")
    assert sorted(p.name for p in state.run_dir.iterdir()) == before  # nothing run, nothing written


def test_resume_with_timeout_caps_the_cells_still_to_run(fake_plugin, tmp_path, spawn):
    # A budgeted session (benchmarks/gpu/run.sh) must not be held hostage by one cell longer than its budget.
    import signal
    import subprocess
    import sys

    from harness import results
    from harness.measure import envinfo
    from tests.conftest import REPO

    out = tmp_path / "results"
    args = ["run", "--backend", "faulty", "--task", "linear_regression", "--mode", "hang", "--epochs", "1"]
    proc = spawn([sys.executable, "-m", "harness", *args, "--out", str(out)], cwd=REPO,
                            env=fake_plugin.env(), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    for line in proc.stderr:
        if "hang cpu: starting" in line:
            break
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    assert proc.returncode == 130
    (run_dir,) = results.run_dirs(out)
    info = results.read_run(run_dir)
    results.write_json_atomic(run_dir / results.RUN_FILE, {**info, "env": {**info["env"], "cpu_model": "earlier"}})
    resumed = bench("run", "--resume", run_dir.name, "--timeout", "2", "--out", str(out), env=fake_plugin.env())
    assert resumed.returncode == 1, resumed.stderr
    (record,) = results.read_records(run_dir / results.RECORDS)[0]
    assert (record["status"], record["message"]) == ("timeout", "no result within the 2 s timeout")
    # No worker reported its environment: the record carries the resuming session's, not the run's first one.
    assert record["env"]["cpu_model"] == envinfo.cpu_model() != "earlier"
