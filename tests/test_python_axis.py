"""Two Python environments in one run (bench run --python): each cell's worker runs in the interpreter asked
for, the environments of one configuration alternate in time, every record names its environment and carries
its versions, and bench compare --run pairs them."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from harness import results
from tests.conftest import bench


@pytest.fixture(scope="module")
def second_env(tmp_path_factory) -> Path:
    """Another virtual environment, its own interpreter, seeing this one's packages through a .pth file (its
    frameworks are this one's: what differs is the interpreter, which is what the run must follow)."""
    folder = tmp_path_factory.mktemp("envs") / "venv-b"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = folder / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (Path(site) / "parent-env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def test_cells_alternate_between_environments_and_compare_pairs_them(fake_plugin, second_env, tmp_path):
    out = tmp_path / "results"
    env = fake_plugin.env()
    done = bench("run", "--backend", "fake", "--task", "linear_regression", "--mode", "eager", "--epochs", "2",
                 "--repeat", "2", "--python", f"a={sys.executable},{second_env}", "--out", str(out), env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    (run,) = [p for p in out.iterdir() if p.is_dir()]
    lines = [json.loads(line) for line in (run / results.RECORDS).read_text().splitlines()]
    assert [r["python"] for r in lines] == ["a", "venv-b", "a", "venv-b"]  # alternating in time
    assert all(r["status"] == "ok" for r in lines)
    executables = {r["python"]: r["env"]["python_executable"] for r in lines}
    assert executables == {"a": sys.executable, "venv-b": str(second_env)}
    assert all(r["cell_id"].endswith(f"-py{r['python']}-r{r['repeat']}") for r in lines)
    compared = bench("compare", "--run", run.name, "a", "venv-b", "--out", str(out), "--format", "json", env=env)
    assert compared.returncode == 0, compared.stderr
    (cell,) = json.loads(compared.stdout)["cells"]
    assert (cell["n_a"], cell["n_b"]) == (2, 2) and cell["verdict"] not in ("only in A", "only in B")


def test_an_interpreter_that_cannot_run_the_worker_is_one_line_exit_2(fake_plugin, tmp_path):
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'ModuleNotFoundError: No module named numpy' >&2\nexit 1\n")
    fake.chmod(0o755)
    for given, message in [(str(fake), "cannot run bench's worker (ModuleNotFoundError: No module named numpy)"),
                           (str(tmp_path / "nope"), "is not an executable interpreter"),
                           ("bad/label=x", "the label 'bad/label'")]:
        done = bench("run", "--backend", "fake", "--python", given, "--out", str(tmp_path / "r"),
                     env=fake_plugin.env())
        assert done.returncode == 2 and message in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert not (tmp_path / "r").exists()


def test_a_record_names_the_framework_version_of_the_environment_its_cell_ran_in():
    from harness.api import Cell, Hyperparams
    from harness.run.runner import make_record

    cell = Cell(backend="jax", task="mnist_mlp", mode="compiled", device="cpu", hp=Hyperparams(),
                backend_ref="backends.jax_backend:JaxBackend", python="/opt/old/bin/python", python_label="old")
    worker = {"status": "ok", "env": {"versions": {"jax": "0.9.0", "numpy": "2.0"}}}
    assert make_record("r", cell, {"versions": {"jax": "0.10.2"}}, worker, "0.10.2")["framework_version"] == "0.9.0"
    # A worker that read no version of the backend's distributions keeps the run's own.
    assert make_record("r", cell, {}, {"status": "ok", "env": {"versions": {}}}, "0.10.2")["framework_version"] == \
        "0.10.2"
