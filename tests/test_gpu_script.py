"""benchmarks/gpu/run.sh gets one chance per lent GPU. Rehearsed here on the CPU (BENCH_GPU_DEVICE=cpu) with a
small budget, tiny cells and three NumPy backends: `fake`, which trains; `stalls`, whose compiled linear regression
hangs in a bench cell; and `blind`, whose device can never be used. The phases must run in order within their caps,
the hung cell must be cut at its cap while later cells still run, the skipped checks must show as FAIL, and the
archive must hold what the summary says. Where the script cannot work at all, it stops at once with one line.
(The real frameworks are rehearsed by hand with the real budget: docs/gpu.md.)"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.plugins.registry import build_registry
from harness.run.plan import Selection, plan
from tests.conftest import REPO, PluginSite

pytestmark = pytest.mark.slow  # the GPU script rehearsed within its 70 s budget; CI's second step

SCRIPT = REPO / "benchmarks" / "gpu" / "run.sh"
BUDGET_S = 70
CAPS_S = {"preflight": 8, "honesty": 24, "headline": 22, "archive": 6}
CELL_CAP_S = 8
TASKS = ("mnist_mlp", "linear_regression")  # what the rehearsal backends (NumPy Dense layers) can train
SLACK_S = 4  # a phase may end this much past its cap: the poll, SIGINT and the exit of what it stops

REHEARSAL_PLUGIN = """
import os
import time

from harness import hookimpl
from tests.fakes import FakeBackend


class Stalls(FakeBackend):
    '''Passes the checks, which run in pytest's process; in a bench cell its compiled linear regression hangs.'''

    name = "stalls"

    def build(self, task, cell, data, weights):
        state = super().build(task, cell, data, weights)
        state["hang"] = (cell.mode == "compiled" and task.name == "linear_regression"
                         and "BENCH_EVENT_FD" in os.environ)
        return state

    def train_epoch(self, state, order):
        if state["hang"]:
            time.sleep(3600)
        return super().train_epoch(state, order)


class Blind(FakeBackend):
    '''Its device can never be used: every check on it is skipped, and so is every cell.'''

    name = "blind"

    def device_problem(self, cell):
        return "the rehearsal's unusable device"


@hookimpl
def bench_backends():
    return [Stalls, Blind, FakeBackend]
"""


@dataclass
class Rehearsal:
    done: subprocess.CompletedProcess
    out: Path
    unpacked: Path

    def phase_lines(self) -> list[re.Match]:
        pattern = re.compile(r"^(\d) (\S+(?: \S+)?)\s+([\d.]+) s(?: \(cap (\d+) s\))?\s+(.*)$")
        return [m for m in map(pattern.match, self.done.stdout.splitlines()) if m]

    def run_folder(self, suffix: str) -> Path:
        return next(p for p in self.unpacked.iterdir() if p.name.endswith(suffix))

    def records(self, suffix: str) -> list[dict]:
        return [json.loads(line) for line in (self.run_folder(suffix) / "records.jsonl").read_text().splitlines()]


def _script(env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=env, timeout=timeout,
                          check=False)


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory) -> Rehearsal:
    root = tmp_path_factory.mktemp("gpu-rehearsal")
    (root / "site").mkdir()
    site = PluginSite(root / "site")
    site.install("bench-gpu-rehearsal", "bench_gpu_rehearsal", REHEARSAL_PLUGIN, {"rehearsal": "bench_gpu_rehearsal"})
    backends = ["stalls", "blind", "fake"]
    env = site.env(
        PYTHON=sys.executable, OUT=str(root / "out"), BENCH_DISABLE_PLUGIN_AUTOLOAD="0",
        BENCH_CACHE_DIR=str(tmp_path_factory.getbasetemp() / "cache"), BENCH_GPU_DEVICE="cpu",
        BENCH_GPU_BACKENDS=",".join(backends), BENCH_GPU_TASKS=",".join(TASKS), BENCH_GPU_BUDGET_S=str(BUDGET_S),
        BENCH_GPU_CAPS_S=",".join(str(c) for c in CAPS_S.values()), BENCH_GPU_CELL_CAP_S=str(CELL_CAP_S),
        BENCH_GPU_EPOCHS="2", BENCH_GPU_TRAIN_SIZE="512", BENCH_GPU_TEST_SIZE="256")
    env.pop("BENCH_RESULTS_DIR", None)
    done = _script(env, timeout=BUDGET_S + 60)
    unpacked = root / "unpacked"
    if (root / "out" / "gpu-runs.tgz").exists():
        with tarfile.open(root / "out" / "gpu-runs.tgz") as tar:
            tar.extractall(unpacked, filter="data")
    return Rehearsal(done, root / "out", unpacked)


def test_the_phases_run_in_order_each_within_its_cap(rehearsal):
    assert rehearsal.done.returncode == 1, rehearsal.done.stdout + rehearsal.done.stderr  # blind fails its checks
    lines = rehearsal.phase_lines()
    assert [int(m[1]) for m in lines] == [1, 2, 3, 4, 5], rehearsal.done.stdout
    took = {m[2]: float(m[3]) for m in lines}
    for (phase, cap), line in zip(CAPS_S.items(), (lines[0], lines[1], lines[2], lines[4])):
        assert int(line[4]) == cap and float(line[3]) <= cap + SLACK_S, (phase, line[0])
    assert sum(took.values()) <= BUDGET_S + SLACK_S, took
    total = re.search(r"^total (\d+) s of (\d+) s$", rehearsal.done.stdout, re.MULTILINE)
    assert total and int(total[1]) <= BUDGET_S + SLACK_S, rehearsal.done.stdout


def test_a_cell_over_its_cap_is_recorded_timeout_and_later_cells_still_run(rehearsal):
    records = rehearsal.records("-compiled")
    first = [(r["backend"], r["task"]) for r in records if r["repeat"] == 0]
    hung = next((i for i, r in enumerate(records)
                 if (r["backend"], r["task"], r["repeat"]) == ("stalls", "linear_regression", 0)), None)
    assert hung is not None, f"the hung cell has no record: it was not cut at its cap; recorded: {first}"
    assert records[hung]["status"] == "timeout", records[hung]["message"]
    assert records[hung]["wall_s"] <= CELL_CAP_S + SLACK_S, records[hung]["wall_s"]
    later = [(r["backend"], r["task"], r["repeat"]) for r in records[hung + 1:] if r["status"] == "ok"]
    assert ("fake", "linear_regression", 0) in later, first
    # Every backend's MLP before anyone's second task: the plan's order, --order task.
    tasks = [t for _, t in first]
    assert tasks == sorted(tasks, key=TASKS.index), first


def test_a_skipped_check_is_a_failure_in_the_summary(rehearsal):
    text = rehearsal.done.stdout
    honesty = next(m for m in rehearsal.phase_lines() if m[1] == "2")
    assert honesty[5].startswith("FAIL"), honesty[0]
    blind = re.search(r"^    blind\s+(.*)$", text, re.MULTILINE)
    assert blind and blind[1].startswith("FAIL") and "skipped" in blind[1], text
    assert "the rehearsal's unusable device" in blind[1]
    for backend in ("stalls", "fake"):  # their checks pass, or are cut on a loaded machine: never a skip
        line = re.search(rf"^    {backend}\s+(PASS|FAIL): sync \d/2, initial loss \d/4(.*)$", text, re.MULTILINE)
        assert line and "skipped" not in line[2], text


def test_the_archive_holds_what_the_summary_says(rehearsal):
    out = rehearsal.out
    assert sorted(p.name for p in out.iterdir()) == ["gpu-log.txt", "gpu-runs.tgz", "report.md", "summary.txt"]
    assert all(p.stat().st_size < 16 * 2**20 for p in out.iterdir())
    summary = (out / "summary.txt").read_text()
    assert summary.splitlines() == rehearsal.done.stdout.splitlines()
    session = next(p for p in rehearsal.unpacked.iterdir() if not (p / "run.json").exists())
    assert (session / "summary.txt").read_text() == summary
    assert (session / "report.md").read_text() == (out / "report.md").read_text()
    said = re.findall(r"^    (reference-gpu-\S+) \(run (\S+)\): (\d+) of (\d+) cells recorded", summary, re.MULTILINE)
    assert {name for name, *_ in said} == {p.name for p in rehearsal.unpacked.iterdir() if (p / "run.json").exists()}
    for name, run_id, recorded, planned in said:
        folder = rehearsal.unpacked / name
        assert len((folder / "records.jsonl").read_text().splitlines()) == int(recorded), name
        assert len(json.loads((folder / "run.json").read_text())["plan"]) == int(planned), name
        assert f"run {run_id}" in (out / "report.md").read_text()
    assert {"honesty-blind.jsonl", "honesty-stalls.txt"} <= {p.name for p in (session / "checks").iterdir()}


def test_stops_at_once_when_pytest_is_missing(tmp_path):
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "pytest.py").write_text("raise ImportError('not installed on this machine')\n")
    done = _script({**os.environ, "PYTHON": sys.executable, "OUT": str(tmp_path / "out"), "PYTHONPATH": str(shadow)},
                   timeout=60)
    assert done.returncode == 2
    assert done.stdout.strip() == f"run.sh: stopping: {sys.executable} cannot import pytest"
    assert not (tmp_path / "out").exists()


def test_stops_with_one_line_when_no_framework_sees_a_gpu(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "OUT": str(tmp_path / "out"), "CUDA_VISIBLE_DEVICES": ""}
    env.pop("BENCH_GPU_BACKENDS", None)
    done = _script(env, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1].startswith("run.sh: stopping: no framework sees a GPU here (torch: ")
    assert not (tmp_path / "out" / "gpu-runs.tgz").exists()  # no check or run was started


def test_a_bad_setting_is_one_line_and_exit_2(tmp_path):
    done = _script({**os.environ, "PYTHON": sys.executable, "OUT": str(tmp_path / "out"), "BENCH_GPU_BUDGET_S": "lots"},
                   timeout=60)
    assert (done.returncode, done.stdout.strip(), done.stderr) == (
        2, "run.sh: stopping: BENCH_GPU_BUDGET_S must be a number, not 'lots'", "")


def test_order_task_puts_every_backends_first_task_before_anyones_second():
    registry, _ = build_registry()
    tasks = ["mnist_mlp", "linear_regression", "mnist_lstm"]
    planned = plan(registry, Selection(backends=["torch", "jax"], tasks=tasks, modes=["compiled"], repeat=2,
                                       order="task"))
    got = [(p.cell.repeat, p.cell.task, p.cell.backend) for p in planned]
    assert got == [(r, t, b) for r in range(2) for t in tasks for b in ("torch", "jax")]
    default = plan(registry, Selection(backends=["torch", "jax"], tasks=tasks, modes=["compiled"]))
    assert [(p.cell.backend, p.cell.task) for p in default] == [(b, t) for b in ("torch", "jax") for t in tasks]


# -- the verdict of the honesty phase, from pytest's outcomes ------------------------------------------


@pytest.fixture
def outcomes():
    sys.path.insert(0, str(REPO / "benchmarks" / "gpu"))
    try:
        import outcomes

        yield outcomes
    finally:
        sys.path.remove(str(REPO / "benchmarks" / "gpu"))
        sys.modules.pop("outcomes", None)


def _outcomes_file(path: Path, collected: list[str], reports: list[tuple[str, str, str]]) -> Path:
    lines = [{"collected": collected}] + [{"test": t, "when": w, "outcome": o, "seconds": 0.1, "reason": "why"}
                                          for t, w, o in reports]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


SYNC = "harness/conformance/test_sync.py::test_sync_waits_for_the_work[eager]"
LOSS = "harness/conformance/test_weights.py::test_initial_loss_matches_the_reference[mnist_mlp-eager]"


def test_a_backend_passes_only_when_every_collected_check_ran_and_passed(tmp_path, outcomes):
    passed = _outcomes_file(tmp_path / "a.jsonl", [SYNC, LOSS], [(SYNC, "call", "passed"), (LOSS, "call", "passed")])
    assert outcomes.verdict(passed, 0, 30).text == "PASS: sync 1/1, initial loss 1/1"
    skipped = _outcomes_file(tmp_path / "b.jsonl", [SYNC, LOSS], [(SYNC, "setup", "skipped"), (LOSS, "call", "passed")])
    assert not outcomes.verdict(skipped, 0, 30).passed
    assert "1 skipped, which proves nothing" in outcomes.verdict(skipped, 0, 30).text
    cut = _outcomes_file(tmp_path / "c.jsonl", [SYNC, LOSS], [(SYNC, "call", "passed")])
    assert outcomes.verdict(cut, None, 30).text == (
        "FAIL: sync 1/1, initial loss 0/1; 1 not run (stopped at its 30 s share)")
    torn = _outcomes_file(tmp_path / "d.jsonl", [SYNC], [(SYNC, "call", "failed"), (SYNC, "teardown", "passed")])
    assert outcomes.verdict(torn, 1, 30).text.startswith("FAIL: sync 0/1; 1 failed")
    assert outcomes.verdict(tmp_path / "none.jsonl", 4, 30).text == "FAIL: no check collected (pytest exit 4)"
