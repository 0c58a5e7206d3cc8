"""The executors against real engines on this machine, on loopback: a one-node SLURM cluster (Debian's
slurm-wlm and munge, tests/cluster/slurm.py) and a Ray head (tests/cluster/ray_head.py), each started
once per session and stopped after, every daemon by its pid.

Skipped where slurm-wlm, munge, submitit or Ray are missing, unless BENCH_REQUIRE_CLUSTERS=1 (CI), which
turns that into a failure.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from harness import results
from harness.measure.interference import worker_pids
from harness.plugins.registry import Registry
from harness.run import folders
from harness.run.plan import Selection, plan
from harness.run.runner import QuietProgress, Runner
from tasks.linear_regression import LinearRegression
from tests.cluster import ray_head, slurm
from tests.conftest import REPO, bench
from tests.fakes import FakeBackend, FaultyBackend

pytestmark = pytest.mark.slow  # a real SLURM cluster and Ray head; CI's second step

REQUIRE = "BENCH_REQUIRE_CLUSTERS"
EXAMPLE = REPO / "examples" / "bench-numpy"


def _unavailable(reason: str) -> None:
    if os.environ.get(REQUIRE) == "1":
        pytest.fail(f"{REQUIRE}=1 but {reason}")
    pytest.skip(f"{reason} ({REQUIRE}=1 to require it)")


def _worker_path() -> str:
    """What a node needs on its Python path for these tests' backends: the repository and bench-numpy."""
    return os.pathsep.join([str(REPO), str(EXAMPLE), os.environ.get("PYTHONPATH", "")])


@pytest.fixture(scope="session")
def slurm_conf(tmp_path_factory) -> str:
    try:
        import submitit  # noqa: F401
    except ImportError:
        _unavailable("submitit is not installed (pip install -e '.[slurm]')")
    problem = slurm.missing()
    if problem:
        _unavailable(problem)
    folder = tmp_path_factory.mktemp("slurm")
    try:
        conf = slurm.up(folder)
    except slurm.ClusterError as exc:
        pytest.fail(str(exc))
    yield str(conf)
    slurm.down(folder)


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory) -> tuple[str, dict[str, str]]:
    """(GCS address, what a driver needs in its environment)."""
    if importlib.util.find_spec("ray") is None:  # not imported: Ray reads its settings once, at import
        _unavailable("Ray is not installed (pip install -e '.[ray]')")
    folder = tmp_path_factory.mktemp("ray")
    try:
        address = ray_head.up(folder, env={**os.environ, "PYTHONPATH": _worker_path()})
    except ray_head.HeadError as exc:
        pytest.fail(str(exc))
    yield address, ray_head.driver_env(folder)
    ray_head.down(folder)


@pytest.fixture
def plugins(plugin_site):
    """bench-fake (fake, faulty) and bench-numpy, installed as third-party plugins."""
    plugin_site.install("bench-fake", "bench_fake", "from tests.fakes import bench_backends  # noqa: F401\n",
                        {"fake": "bench_fake"})
    plugin_site.install("bench-numpy", "bench_numpy_entry", "from bench_numpy import bench_backends  # noqa: F401\n",
                        {"numpy": "bench_numpy_entry"})
    return plugin_site


def _env(plugins, **extra: str) -> dict[str, str]:
    env = plugins.env(**extra)
    env["PYTHONPATH"] = os.pathsep.join([str(plugins.path), _worker_path()])
    return env


def _records(out: Path) -> pd.DataFrame:
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    return results.load([run_dir])


def _squeue(conf: str) -> str:
    return subprocess.run(["squeue", "--noheader"], capture_output=True, text=True,
                          env={**os.environ, "SLURM_CONF": conf}, timeout=30).stdout.strip()


def _ray_idle(address: str, driver: dict[str, str]) -> tuple[float, float]:
    """(available CPUs, total CPUs) of the Ray cluster, once they agree or after 15 s; from a separate driver."""
    code = ("import json, time, ray\n"
            f"ray.init(address={address!r}, log_to_driver=False, configure_logging=False)\n"
            "deadline = time.time() + 15\n"
            "while True:\n"
            "    free, total = ray.available_resources().get('CPU', 0), ray.cluster_resources().get('CPU', 0)\n"
            "    if free == total or time.time() > deadline: break\n"
            "    time.sleep(0.2)\n"
            "print(json.dumps([free, total]))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**ray_head.loopback_env(), **driver})
    assert out.returncode == 0, out.stderr[-2000:]
    free, total = eval(out.stdout.strip().splitlines()[-1])  # noqa: S307 - our own json list of two numbers
    return free, total


def _workers_of(cache_dir: str) -> list[int]:
    """bench workers still alive that ran with this test session's settings."""
    marker = f"BENCH_CACHE_DIR={cache_dir}".encode()
    found = []
    for pid in worker_pids():
        try:
            if marker in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                found.append(pid)
        except OSError:
            continue
    return found


# -- the same matrix through local, slurm and ray -----------------------------------------------

MATRIX = ["--backend", "fake,numpy", "--task", "linear_regression,mnist_mlp", "--mode", "eager", "--optimizer", "sgd",
          "--repeat", "2", "--epochs", "1", "--train-size", "512", "--test-size", "256"]


def test_the_same_matrix_through_local_slurm_and_ray_gives_the_same_cells_and_numbers(
        slurm_conf, plugins, tmp_path):
    env = _env(plugins, SLURM_CONF=slurm_conf)
    executors = {"local": [], "slurm": ["--executor", "slurm", "--slurm-folder", str(tmp_path / "jobs")],
                 "ray": ["--executor", "ray"]}  # bench starts and stops its own Ray instance here
    frames = {}
    for name, args in executors.items():
        run = bench("run", *MATRIX, *args, "--out", str(tmp_path / name), env=env, timeout=600)
        assert run.returncode == 0, f"{name}: {run.stderr[-3000:]}"
        df = _records(tmp_path / name).set_index("cell_id").sort_index()
        assert len(df) == 8 and df.index.is_unique, name
        assert (df["status"] == "ok").all(), df["message"].to_dict()
        assert set(df["executor"]) == {name} and df["host"].notna().all() and (df["node_cells"] >= 1).all()
        if name != "local":
            assert df["job_id"].notna().all() and df["job_id"].is_unique
        run_dir = next(p for p in (tmp_path / name).iterdir() if p.is_dir())
        assert all((run_dir / log).is_file() for log in df["log"]), "a cell's log did not come back"
        frames[name] = df
    assert not (tmp_path / "jobs").exists() or not any((tmp_path / "jobs").iterdir()), "submitit's files were left"
    local = frames["local"]
    for name in ("slurm", "ray"):
        assert list(frames[name].index) == list(local.index)
        for column in ("metric_value", "initial_loss", "initial_loss_ref", "threads"):
            assert frames[name][column].tolist() == local[column].tolist(), (name, column)
    assert _squeue(slurm_conf) == ""


# -- faults under each remote executor --------------------------------------------------------

TIMEOUT_S = 5.0


class _Watch(QuietProgress):
    """Cancels one cell from outside bench, through the engine's own command, a moment after it starts."""

    def __init__(self, target: str, cancel):
        self.target, self.cancel, self.thread = target, cancel, None

    def cell_started(self, index, total, cell):
        if cell.cell_id == self.target:
            self.thread = threading.Thread(target=lambda: (time.sleep(1.5), self.cancel(cell.cell_id)))
            self.thread.start()


def _executor(name: str, request, monkeypatch, tmp_path: Path):
    """The executor, and how to cancel one of its cells from outside: scancel, or ray.cancel."""
    if name == "slurm":
        conf = request.getfixturevalue("slurm_conf")
        monkeypatch.setenv("SLURM_CONF", conf)
        from harness.execute.slurm_jobs import SlurmExecutor

        executor = SlurmExecutor({"folder": str(tmp_path / "jobs"), "poll": 0.5})
        return executor, lambda cell_id: subprocess.run(["scancel", executor.jobs[cell_id]], check=True, timeout=30)
    address, driver = request.getfixturevalue("ray_cluster")
    for key, value in {**ray_head.loopback_env({}), **driver}.items():
        monkeypatch.setenv(key, value)
    from harness.execute.ray_tasks import RayExecutor

    executor = RayExecutor({"address": address})

    def cancel(cell_id: str) -> None:
        import ray

        ray.cancel(executor.tasks[cell_id])

    return executor, cancel


@pytest.mark.parametrize("name", ["slurm", "ray"])
def test_a_crash_a_hang_and_a_cancel_from_outside_get_their_statuses_and_the_rest_is_ok(
        name, request, monkeypatch, tmp_path):
    registry = Registry()
    for backend in (FakeBackend, FaultyBackend):
        registry.add("backend", backend, "test")
    registry.add("task", LinearRegression, "test")
    sel = Selection(backends=["fake", "faulty"], tasks=["linear_regression"], modes=["eager", "segfault", "hang"],
                    repeat=2, epochs=1, latency_steps=0, timeout_s=TIMEOUT_S)
    planned = [p for p in plan(registry, sel)
               if not p.skip_reason and not (p.cell.mode == "segfault" and p.cell.repeat == 1)]
    cancelled = next(p.cell.cell_id for p in planned if p.cell.mode == "hang" and p.cell.repeat == 1)
    executor, cancel = _executor(name, request, monkeypatch, tmp_path)
    watch = _Watch(cancelled, cancel)
    try:
        assert executor.gpu_present() is False
        executor.prepare([p.cell for p in planned])
        state = folders.create(tmp_path / "results", planned, {}, ["bench", "test"])
        Runner(progress=watch, executor=executor).run(state)
    finally:
        executor.close()
        if watch.thread:
            watch.thread.join()
    df = results.load([state.run_dir]).set_index("cell_id")
    assert len(df) == len(planned) == 5 and df.index.is_unique
    status = {(r.backend, r.mode, r.repeat): (r.status, r.message) for r in df.itertuples()}
    assert status[("fake", "eager", 0)][0] == status[("fake", "eager", 1)][0] == "ok"
    assert status[("faulty", "segfault", 0)] == ("error", "worker crashed with signal SIGSEGV")
    assert status[("faulty", "hang", 0)] == ("timeout", f"no result within the {TIMEOUT_S:g} s timeout")
    assert status[("faulty", "hang", 1)][0] == "cancelled", status
    assert set(df["executor"]) == {name} and df["job_id"].notna().all()
    assert (df.loc[df["status"] != "cancelled", "log"].notna()).all()
    assert _workers_of(os.environ["BENCH_CACHE_DIR"]) == [], "a cell's worker outlived its cancelled job"
    if name == "slurm":
        assert _squeue(request.getfixturevalue("slurm_conf")) == ""


# -- Ctrl-C, then --resume --------------------------------------------------------------------

@pytest.mark.parametrize("name", ["slurm", "ray"])
def test_sigint_cancels_what_is_queued_or_running_and_resume_finishes_it(name, request, plugins, tmp_path, spawn):
    if name == "slurm":
        conf = request.getfixturevalue("slurm_conf")
        env = _env(plugins, SLURM_CONF=conf)
        args = ["--executor", "slurm", "--slurm-folder", str(tmp_path / "jobs")]
    else:
        address, driver = request.getfixturevalue("ray_cluster")
        env = _env(plugins, **driver)
        args = ["--executor", "ray", "--ray-address", address]
    out = tmp_path / "results"
    command = [sys.executable, "-m", "harness", "run", "--backend", "faulty", "--mode", "ok,slow", "--task",
               "linear_regression", "--repeat", "2", "--epochs", "3", *args, "--out", str(out)]
    proc = spawn(command, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        records = list(out.glob(f"*/{results.RECORDS}"))
        if records and records[0].read_text().strip():
            break
        time.sleep(0.2)
    time.sleep(1.0)  # the next cell (3 s of training) is running, the last two are queued
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    assert "continue with: bench run --resume" in err, err
    if name == "slurm":
        assert _squeue(conf) == "", "jobs left in the queue after Ctrl-C"
    else:
        free, total = _ray_idle(address, driver)
        assert free == total, f"Ray still holds {total - free} CPUs after Ctrl-C"
    assert _workers_of(env["BENCH_CACHE_DIR"]) == [], "a cell's worker outlived Ctrl-C"
    before = _records(out)
    assert 1 <= len(before) < 4 and before["cell_id"].is_unique
    assert f"; {4 - len(before)} queued or running cancelled on {name};" in err, err
    resume = shlex.split(err.rsplit("continue with: ", 1)[1].strip().splitlines()[0])
    assert resume[:3] == ["bench", "run", "--resume"] and "--executor" in resume
    again = subprocess.run([sys.executable, "-m", "harness", *resume[1:]], env=env, cwd=REPO, capture_output=True,
                           text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    after = _records(out)
    assert len(after) == 4 and after["cell_id"].is_unique and (after["status"] == "ok").all()
    assert set(before["cell_id"]) < set(after["cell_id"])


# -- refused before anything is submitted ------------------------------------------------------

def test_a_request_slurm_refuses_or_an_unreachable_controller_is_one_line_exit_2(slurm_conf, plugins, tmp_path):
    dead = tmp_path / "dead.conf"  # the same cluster, its controller at a port nothing listens on
    dead.write_text("".join("SlurmctldPort=1\n" if line.startswith("SlurmctldPort=") else line
                            for line in Path(slurm_conf).read_text().splitlines(keepends=True)))
    cases = [(slurm_conf, ["--slurm-partition", "nope"], "Invalid partition name specified"),
             (str(dead), [], "Unable to contact slurm controller")]
    for conf, args, message in cases:
        out = tmp_path / "results"
        run = bench("run", "--backend", "fake", "--task", "linear_regression", "--executor", "slurm", *args,
                    "--slurm-folder", str(tmp_path / "jobs"), "--out", str(out), env=_env(plugins, SLURM_CONF=conf))
        assert run.returncode == 2 and run.stderr.startswith("bench: error: --executor slurm: "), run.stderr
        assert message in run.stderr and run.stderr.count("\n") == 1, run.stderr
        assert not out.exists() or not any(out.iterdir()), "a run folder was written"
    assert _squeue(slurm_conf) == ""


def test_joining_a_token_cluster_without_its_token_says_which_variables_to_set(ray_cluster, plugins, tmp_path):
    """Ray's client logs a line per retry when the head refuses it; the user gets one line naming the token
    variables, and nothing is written."""
    address, driver = ray_cluster
    env = {k: v for k, v in _env(plugins, **driver).items() if not k.startswith("RAY_AUTH_")}
    out = tmp_path / "results"
    run = bench("run", "--backend", "fake", "--task", "linear_regression", "--executor", "ray", "--ray-address",
                address, "--out", str(out), env=env)
    assert run.returncode == 2 and run.stderr.startswith("bench: error: --executor ray: "), run.stderr
    assert "RAY_AUTH_MODE=token and RAY_AUTH_TOKEN" in run.stderr and run.stderr.count("\n") == 1, run.stderr
    assert not out.exists() or not any(out.iterdir()), "a run folder was written"
