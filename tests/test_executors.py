"""Executors without a cluster: the hook, settings and their errors, the local executor's GPU slots, how many
cells share a machine, and compare's concurrency warning. The SLURM and Ray engines: tests/test_clusters.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from itertools import combinations
from pathlib import Path

import pytest

from harness import results
from harness.cli.main import main
from harness.execute.local import LocalExecutor
from harness.measure.interference import cells_running_here, worker_pids
from harness.plugins.manager import make_plugin_manager
from harness.plugins.registry import Registry, build_registry
from harness.run import folders
from harness.run.plan import Selection, plan
from harness.run.runner import Runner
from tasks.linear_regression import LinearRegression
from tests.conftest import bench
from tests.executor_fakes import PretendGpuBackend

RUNS = Path(__file__).parent / "fixtures" / "runs"


def test_the_builtin_executors_come_from_the_hook():
    registry, plugins = build_registry(make_plugin_manager(autoload=False))
    assert sorted(registry.executors) == ["local", "ray", "slurm"]
    assert plugins.infos["harness.execute.builtin"].provides == ["executor local", "executor slurm", "executor ray"]


REVERSE_PLUGIN = """
from harness import hookimpl
from harness.execute.local import LocalExecutor
from tests.fakes import FakeBackend, bench_backends  # noqa: F401


class Reverse(LocalExecutor):
    name = "reverse"
    description = "this machine, last cell first"

    def map_unordered(self, cells, launch):
        yield from super().map_unordered(list(reversed(cells)), launch)


@hookimpl
def bench_executors():
    return [Reverse]
"""


def test_a_plugins_executor_is_registered_and_runs_cells(plugin_site, tmp_path):
    plugin_site.install("bench-reverse", "bench_reverse", REVERSE_PLUGIN, {"reverse": "bench_reverse"})
    listing = bench("plugins", env=plugin_site.env())
    assert "executor reverse" in listing.stdout, listing.stdout + listing.stderr
    out = tmp_path / "r"
    run = bench("run", "--backend", "fake", "--task", "linear_regression", "--repeat", "2", "--epochs", "1",
                "--executor", "reverse", "--out", str(out), env=plugin_site.env())
    assert run.returncode == 0, run.stderr
    records = results.load([next(out.iterdir())])
    assert list(records["repeat"]) == [1, 0]  # the plugin's order, not the plan's
    assert set(records["executor"]) == {"reverse"} and (records["status"] == "ok").all()


def _config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "executor.toml"
    path.write_text(text)
    return str(path)


BAD = [
    (["--executor", "nope"], "unknown executor 'nope' (choose from: local, ray, slurm)"),
    (["--jobs", "0"], "--jobs must be a whole number >= 1, not '0'"),
    (["--executor", "ray", "--slurm-partition", "gpu"],
     "--slurm-partition is an option of --executor slurm, not of ray"),
    (["--jobs", "2", "--executor", "slurm"], "--jobs is an option of --executor local, not of slurm"),
    (["--executor", "slurm", "--slurm-sbatch", "-p gpu"], "sbatch options written --name=value or --flag, not '-p'"),
    (["--executor", "slurm", "--slurm-sbatch=--array=0-3"], "bench sets sbatch --array itself"),
    (["--executor", "slurm", "--slurm-sbatch", "qos=high job-name=x"], "bench sets sbatch --job-name itself"),
    (["--executor", "slurm", "--slurm-exclusive", "maybe"], "--slurm-exclusive must be true or false, not 'maybe'"),
    (["--executor", "ray", "--ray-address", "head-without-port"], "--ray-address must be host:port"),
    (["--executor", "ray", "--ray-address", "127.0.0.1:1"], "cannot reach Ray at 127.0.0.1:1: Connection refused"),
    (["--executor-config", "{missing}"], "cannot read --executor-config"),
    (["--executor-config", "{config}", "slurm_partiton = 'gpu'\n"],
     "unknown key 'slurm_partiton' in --executor-config"),
    (["--executor-config", "{config}", "local_jobs = 'two'\n"], "local_jobs in --executor-config"),
    (["--executor-config", "{config}", "executor = 'slurm'\nslurm_cpus = 0\n"], "slurm_cpus in --executor-config"),
    (["--executor-config", "{config}", "executor = [\n"], "is not valid TOML"),
]


@pytest.mark.parametrize("args, message", BAD)
def test_bad_executor_settings_are_one_line_exit_2_and_write_nothing(args, message, tmp_path, capsys, fake_plugin):
    args = list(args)
    if "{config}" in args:
        args[args.index("{config}")] = _config(tmp_path, args.pop())
    if "{missing}" in args:
        args[args.index("{missing}")] = str(tmp_path / "missing.toml")
    out = tmp_path / "results"
    assert main(["run", "--backend", "fake", "--task", "linear_regression", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bench: error: ") and message in err and err.count("\n") == 1, err
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("executor, extra, module", [("slurm", "slurm", "submitit"), ("ray", "ray", "ray")])
def test_a_missing_extra_is_one_line_exit_2(executor, extra, module, tmp_path, capsys, fake_plugin, monkeypatch):
    monkeypatch.setitem(sys.modules, module, None)  # `import ray` / `import submitit` now fails as if not installed
    out = tmp_path / "results"
    assert main(["run", "--backend", "fake", "--task", "linear_regression", "--executor", executor,
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == f"bench: error: --executor {executor} needs {'Ray' if module == 'ray' else module}: " \
                  f"pip install 'bench-harness[{extra}]'\n"
    assert not out.exists()


def test_settings_come_from_the_file_and_flags_win(tmp_path, fake_plugin):
    from argparse import Namespace

    from harness.execute.config import choose_executor

    config = _config(tmp_path, "executor = 'slurm'\nslurm_partition = 'gpu'\nslurm_cpus = 4\n"
                               "slurm_sbatch = ['--qos=high', 'requeue']\nray_address = 'auto'\n")
    registry, _ = build_registry(make_plugin_manager(autoload=False))
    args = Namespace(executor=None, executor_config=config, slurm_partition=None, slurm_cpus="8")
    executor = choose_executor(args, registry.executors)
    assert executor.name == "slurm"
    assert executor.settings["partition"] == "gpu" and executor.settings["cpus"] == 8
    assert executor.settings["sbatch"] == {"qos": "high", "requeue": True}
    assert executor.settings["exclusive"] is True and executor.settings["time_margin"] == 300.0
    assert executor._flags(executor._parameters("cpu", 60, "x")) == [
        "--job-name=x", "--time=6", "--partition=gpu", "--cpus-per-task=8", "--exclusive", "--qos=high", "--requeue"]
    assert "--gres=gpu:1" in executor._flags(executor._parameters("cuda", 60, "x"))


# -- the local executor's GPU slots -------------------------------------------------------------

def _pretend_registry() -> Registry:
    registry = Registry()
    registry.add("backend", PretendGpuBackend, "test")
    registry.add("task", LinearRegression, "test")
    return registry


def _windows(df):
    return {r.cell_id: (r.details["began"], r.details["ended"]) for r in df.itertuples()}


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


GPUS = {"0": ("GPU-1a2b", "Pretend H100"), "1": ("GPU-3c4d", "Pretend H200")}


@pytest.fixture
def two_gpus(tmp_path, monkeypatch):
    """An `nvidia-smi` that lists two GPUs (this machine has none), first on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    lines = "".join(f"{i}, {uuid}, {name}, 550.54, 81559 MiB\\n" for i, (uuid, name) in GPUS.items())
    (bin_dir / "nvidia-smi").write_text(f"#!/bin/sh\nprintf '{lines}'\n")
    (bin_dir / "nvidia-smi").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


def test_a_cuda_cell_records_the_gpu_it_was_given(two_gpus):
    from harness.cell.parent_node import gpu_of

    assert gpu_of("1") == ("Pretend H200", "GPU-3c4d")
    assert gpu_of("GPU-1a2b,GPU-3c4d") == ("Pretend H100", "GPU-1a2b")
    assert gpu_of(None) == ("Pretend H100", "GPU-1a2b")  # CUDA's device 0
    assert gpu_of("MIG-7") == (None, None)


def test_jobs_runs_cuda_cells_at_once_each_on_its_own_gpu_and_cores_and_cpu_cells_alone(tmp_path, two_gpus):
    registry = _pretend_registry()
    common = {"backends": ["pretend_gpu"], "tasks": ["linear_regression"], "epochs": 2, "latency_steps": 0,
              "optimizers": ["sgd"], "train_sizes": [256], "test_size": 64}
    planned = (plan(registry, Selection(devices=["cuda"], repeat=4, **common), gpu_present=True)
               + plan(registry, Selection(devices=["cpu"], **common), gpu_present=True)
               + plan(registry, Selection(devices=["cuda"], repeat=2, seed=1, **common), gpu_present=True))
    state = folders.create(tmp_path, planned, {}, ["bench", "test"])
    Runner(executor=LocalExecutor({"jobs": 2, "gpus": ["0", "1"]})).run(state)
    df = results.load([state.run_dir])
    assert len(df) == 7 and (df["status"] == "ok").all() and df["cell_id"].is_unique
    assert set(df["executor"]) == {"local"} and df["host"].notna().all()
    windows = _windows(df)
    cuda = df[df["device"] == "cuda"]
    gpu_of = dict(zip(cuda["cell_id"], (d["cuda_visible_devices"] for d in cuda["details"])))
    assert set(gpu_of.values()) == {"0", "1"}
    for r in cuda.itertuples():  # the record names the GPU the cell was handed
        assert (r.gpu_uuid, r.device_name) == GPUS[gpu_of[r.cell_id]]
    together = [(a, b) for a, b in combinations(cuda["cell_id"], 2) if _overlap(windows[a], windows[b])]
    assert together, "no two cuda cells ran at once"
    for a, b in together:
        assert gpu_of[a] != gpu_of[b], f"{a} and {b} ran at once on GPU {gpu_of[a]}"
    cores = dict(zip(cuda["cell_id"], (tuple(d["cores"]) for d in cuda["details"])))
    for a, b in together:
        assert not set(cores[a]) & set(cores[b]), "cells running at once share cores"
    shared = {cell for pair in together for cell in pair}
    assert (df.set_index("cell_id").loc[sorted(shared), "node_cells"] >= 2).all()
    cpu = df[df["device"] == "cpu"]["cell_id"].item()
    assert not any(_overlap(windows[cpu], windows[other]) for other in cuda["cell_id"]), "a CPU cell shared the machine"
    assert df.set_index("cell_id").loc[cpu, "threads"] == len(os.sched_getaffinity(0))


def test_one_job_runs_every_cell_alone_in_plan_order(tmp_path):
    registry = _pretend_registry()
    planned = plan(registry, Selection(backends=["pretend_gpu"], tasks=["linear_regression"], devices=["cuda"],
                                       repeat=3, epochs=2, latency_steps=0, optimizers=["sgd"], train_sizes=[256],
                                       test_size=64), gpu_present=True)
    state = folders.create(tmp_path, planned, {}, ["bench", "test"])
    Runner(executor=LocalExecutor({"gpus": ["0", "1"]})).run(state)
    df = results.load([state.run_dir])
    windows = sorted(_windows(df).values())
    assert not any(_overlap(a, b) for a, b in zip(windows, windows[1:]))
    assert list(df["repeat"]) == [0, 1, 2]


# -- how many cells share a machine ------------------------------------------------------------

def test_the_workers_on_this_machine_are_found_and_counted():
    workers = [subprocess.Popen([sys.executable, "-m", "harness.cell.worker"], stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]
    mentions = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "-m", "harness.cell.worker"])
    try:
        time.sleep(0.3)
        found = worker_pids()
        assert {w.pid for w in workers} <= found
        assert mentions.pid not in found  # a process merely mentioning the module is not a worker
        assert cells_running_here() >= 2
    finally:
        for process in (*workers, mentions):
            process.kill()
            process.wait()
    assert not {w.pid for w in workers} & worker_pids()


# -- compare's concurrency warning ---------------------------------------------------------------

def _with_sharing(source: Path, target: Path, node_cells: int | None) -> Path:
    shutil.copytree(source, target)
    lines = []
    for line in (target / results.RECORDS).read_text().splitlines():
        record = json.loads(line)
        record["node_cells"] = node_cells
        lines.append(json.dumps(record))
    (target / results.RECORDS).write_text("\n".join(lines) + "\n")
    return target


@pytest.mark.parametrize("a, b, warned", [(1, 2, True), (1, 1, False), (None, 2, False), (2, 2, False)])
def test_compare_warns_when_the_sides_ran_under_different_concurrency(a, b, warned, tmp_path, capsys):
    run_a = _with_sharing(RUNS / "compare-a", tmp_path / "a", a)
    run_b = _with_sharing(RUNS / "compare-b", tmp_path / "b", b)
    assert main(["compare", str(run_a), str(run_b), "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    warning = [line for line in err.splitlines() if "different concurrency" in line]
    if warned:
        assert warning == [f"bench: warning: a and b ran under different concurrency (a: each cell alone on its "
                           f"machine; b: {b} cells at once): cells sharing a machine time each other, so their times "
                           f"may differ for that reason alone"]
    else:
        assert not warning


def test_the_cluster_page_documents_every_option_of_the_builtin_executors():
    from harness.execute.builtin import BUILTIN

    section = (Path(__file__).resolve().parent.parent / "docs" / "clusters.md").read_text()
    for cls in BUILTIN:
        for option in cls.options:
            assert f"`{cls.name}_{option.name}`" in section, f"{cls.name}_{option.name}"
            if option.flag:
                assert f"`{option.flag}" in section, option.flag
