"""Lockstep (bench run --lockstep): the cells of a group run as live processes that take turns epoch by epoch,
never two at once; the plan makes the groups, the records say which group each cell ran in, and bench compare
tests the cells of one group pair by pair."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from harness import results
from harness.compare import paired as compare
from harness.measure import interference
from harness.measure.lockstep import TURNS_ENV, Coordinator
from harness.plugins.registry import build_registry
from harness.run.plan import Selection, in_lockstep, plan
from tests.conftest import REPO, bench

EPOCH = """
import json, sys, time
from harness.measure.lockstep import Turns
turns = Turns()
turns.first()
spans = []
for _ in range(4):
    start = time.monotonic()
    while time.monotonic() - start < 0.03:  # an epoch's work, on the CPU
        pass
    spans.append((start, time.monotonic()))
    turns.pass_on()
print(json.dumps(spans))
"""


def _epochs(tmp_path, coordinated: bool) -> list[list[tuple[float, float]]]:
    coordinator = Coordinator(tmp_path / "group", 3) if coordinated else None
    procs = [subprocess.Popen([sys.executable, "-c", EPOCH], stdout=subprocess.PIPE, text=True, cwd=REPO,
                              env={"PYTHONPATH": str(REPO), **(coordinator.env(i) if coordinator else {})})
             for i in range(3)]
    try:
        if coordinator:
            coordinator.run([lambda p=p: p.poll() is None for p in procs], lambda: False)
        return [json.loads(p.communicate(timeout=60)[0]) for p in procs]
    finally:
        for p in procs:
            p.kill()
        if coordinator:
            coordinator.close()


def _overlaps(spans: list[list[tuple[float, float]]]) -> int:
    every = sorted((s, e, i) for i, own in enumerate(spans) for s, e in own)
    return sum(later[0] < earlier[1] for earlier, later in zip(every, every[1:]))


def test_the_processes_of_a_group_take_turns_one_epoch_each_in_order(tmp_path):
    spans = _epochs(tmp_path, coordinated=True)
    assert _overlaps(spans) == 0
    order = [i for _, _, i in sorted((s, e, i) for i, own in enumerate(spans) for s, e in own)]
    assert order == [0, 1, 2] * 4
    assert not (tmp_path / "group").exists()  # the pipes are gone with the group


def test_negative_control_processes_without_turns_run_at_once(tmp_path):
    assert _overlaps(_epochs(tmp_path, coordinated=False)) > 0


def test_a_worker_that_dies_in_its_turn_does_not_stall_the_group(tmp_path):
    coordinator = Coordinator(tmp_path / "group", 2)
    dying = "from harness.measure.lockstep import Turns; t = Turns(); t.first(); raise SystemExit(3)"
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=REPO,
                              env={"PYTHONPATH": str(REPO), **coordinator.env(i)})
             for i, code in enumerate([dying, EPOCH])]
    try:
        started = time.monotonic()
        coordinator.run([lambda p=p: p.poll() is None for p in procs], lambda: False)
        assert time.monotonic() - started < 30
        assert len(json.loads(procs[1].communicate(timeout=30)[0])) == 4 and procs[0].wait() == 3
    finally:
        for p in procs:
            p.kill()
        coordinator.close()


def test_plan_groups_the_cells_of_one_repeat_that_differ_only_in_the_lockstep_axes():
    reg, _ = build_registry()
    sel = Selection(backends=["jax"], tasks=["linear_regression", "mnist_mlp"], repeat=2, timeout_s=100,
                    train_sizes=[8192, 10240], pythons=[("a", sys.executable), ("b", sys.executable)],
                    phases=["train", "inference"], lockstep=["python"])
    cells = [p.cell for p in plan(reg, sel)]
    train = [c for c in cells if c.phase == "train"]
    assert all(c.lockstep is None and c.timeout_s == 100 for c in cells if c.phase == "inference")
    groups: dict[str, list] = {}
    for c in train:
        groups.setdefault(c.lockstep, []).append(c)
    assert len(groups) == 2 * 2 * 2 and all(len(g) == 2 for g in groups.values())
    for members in groups.values():  # one repeat, one configuration, the two environments
        assert {c.python_label for c in members} == {"a", "b"} and len({c.repeat for c in members}) == 1
        assert len({(c.task, c.train_size) for c in members}) == 1 and all(c.timeout_s == 200 for c in members)
    ids = [c.lockstep for c in cells if c.lockstep]
    assert all(ids[i] == ids[i + 1] for i in range(0, len(ids), 2))  # a group's cells are next to each other
    wider = [p.cell for p in plan(reg, Selection(**{**sel.__dict__, "lockstep": ["python", "train_size"]}))]
    assert {len([c for c in wider if c.lockstep == g]) for g in {c.lockstep for c in wider if c.lockstep}} == {4}
    alone = plan(reg, Selection(**{**sel.__dict__, "lockstep": []}))
    assert all(p.cell.lockstep is None for p in alone)
    assert in_lockstep(alone, ["backend"]) and all(p.cell.lockstep is None for p in in_lockstep(alone, ["backend"]))


def test_bad_lockstep_settings_are_one_line_exit_2(fake_plugin, tmp_path):
    env = fake_plugin.env()
    for args, message in [(["--lockstep", "colour"], "unknown lockstep axis 'colour'"),
                          (["--lockstep", "python", "--executor", "slurm"],
                           "executor slurm runs each cell on its own")]:
        done = bench("run", "--backend", "fake", *args, "--out", str(tmp_path / "r"), env=env)
        assert done.returncode == 2 and message in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert not (tmp_path / "r").exists()


def _run(fake_plugin, tmp_path, *extra: str) -> pd.DataFrame:
    out = tmp_path / "results"
    done = bench("run", "--backend", "fake", "--task", "linear_regression", "--mode", "eager", "--epochs", "3",
                 "--repeat", "2", "--python", f"a={sys.executable},b={sys.executable}", "--out", str(out), *extra,
                 env=fake_plugin.env())
    assert done.returncode == 0, done.stderr[-2000:]
    (run,) = [p for p in out.iterdir() if p.is_dir()]
    compared = bench("compare", "--run", run.name, "a", "b", "--out", str(out), "--format", "json",
                     env=fake_plugin.env())
    assert compared.returncode in (0, 3), compared.stderr
    return results.load([run]), json.loads(compared.stdout)["cells"][0]


def test_environments_compared_in_one_run_take_turns_by_default_and_compare_pairs_them(fake_plugin, tmp_path):
    df, cell = _run(fake_plugin, tmp_path)
    assert list(df["lockstep"]) == ["r0-g0", "r0-g0", "r1-g1", "r1-g1"]
    assert (df["lockstep_wait_s"] > 0).all() and (df["node_cells"] == 1).all()
    assert all(e["other_cells"] == 0 for epochs in df["interference"] for e in epochs)  # a partner is not beside it
    assert "paired: 2 lockstep groups" in cell["note"]


def test_negative_control_lockstep_none_runs_each_cell_alone_and_compare_does_not_pair(fake_plugin, tmp_path):
    df, cell = _run(fake_plugin, tmp_path, "--lockstep", "none")
    assert df["lockstep"].isna().all() and df["lockstep_wait_s"].isna().all()
    assert "paired" not in (cell["note"] or "")


def _records(values: list[float], run: str, groups: list[str | None], label: str) -> pd.DataFrame:
    return pd.DataFrame({"run_id": run, "cell_id": [f"x-r{i}" for i in range(len(values))], "backend": "x",
                         "task": "t", "mode": "m", "device": "cpu", "precision": "fp32", "optimizer": "sgd",
                         "batch_size": 1, "status": "ok", "repeat": range(len(values)), "steady_epoch_s": values,
                         "lockstep": groups, "python": label})


def test_compare_pairs_the_cells_of_each_lockstep_group_and_so_sees_past_the_machine_s_stretches():
    rng = np.random.default_rng(1)
    level = np.array([1.0, 1.25, 1.1, 1.2, 1.05])  # what each group's stretch of time did to both cells
    a = level * np.exp(rng.normal(0, 0.003, 5))
    b = 1.01 * level * np.exp(rng.normal(0, 0.003, 5))
    groups = [f"r{i}-g{i}" for i in range(5)]
    paired = compare.compare(compare.Side("A", _records(a, "run1", groups, "a")),
                             compare.Side("B", _records(b, "run1", groups, "b")), ignore_python=True)
    assert paired.iloc[0]["verdict"] == "same" and "paired: 5 lockstep groups" in paired.iloc[0]["note"]
    # Negative controls: the same values side against side (no pairing asked, or groups of two runs that only
    # share a name) cannot tell 1% from the stretches' spread.
    for side_b, how in [(_records(b, "run1", groups, "b"), False), (_records(b, "run2", groups, "b"), None)]:
        unpaired = compare.compare(compare.Side("A", _records(a, "run1", groups, "a")), compare.Side("B", side_b),
                                   ignore_python=True, paired=how)
        assert unpaired.iloc[0]["verdict"] == "inconclusive" and "paired" not in unpaired.iloc[0]["note"]


def test_a_group_s_partners_are_not_counted_as_cells_running_beside_a_cell(tmp_path):
    procs = [subprocess.Popen([sys.executable, "-m", "harness.cell.worker"], stdin=subprocess.PIPE, cwd=REPO,
                              env={"PYTHONPATH": str(REPO), **({TURNS_ENV: value} if value else {})})
             for value in (f"{tmp_path}/g/0", f"{tmp_path}/g/1", None)]
    try:
        time.sleep(0.5)
        mine = {p.pid for p in procs}
        assert mine <= interference.worker_pids()  # negative control: every worker, partners included
        assert interference.worker_pids(f"{tmp_path}/g") & mine == {procs[2].pid}
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_a_group_with_one_process_alone_in_the_slow_mode_is_set_aside_unless_every_process_is_kept():
    a = np.array([1.0, 1.2, 1.1, 1.05, 1.15])
    b = a * np.array([1.01, 1.0, 1.02, 1.9, 1.01])  # group 4: B alone ran in the slow mode
    groups = [f"r{i}-g{i}" for i in range(5)]
    sides = compare.Side("A", _records(a, "run1", groups, "a")), compare.Side("B", _records(b, "run1", groups, "b"))
    cut = compare.compare(*sides, ignore_python=True).iloc[0]
    assert cut["verdict"] == "same" and "paired: 4 lockstep groups (1 more set aside" in cut["note"]
    assert cut["ci_high"] < 1.05
    kept = compare.compare(*sides, ignore_python=True, slow_mode=None).iloc[0]  # negative control: --all-processes
    assert kept["verdict"] == "inconclusive" and "paired: 5 lockstep groups" in kept["note"]


def test_a_pair_s_ratio_is_taken_turn_by_turn_so_a_slow_stretch_part_way_through_weighs_on_both_alike():
    # The machine slows 2x from the third turn: A's median lands in the slow stretch, B's (a turn later) does not.
    a = {"epoch_s": [0.5, 0.10, 0.10, 0.20, 0.20, 0.20], "steady_epoch_s": 0.20}
    b = {"epoch_s": [0.5, 0.101, 0.101, 0.101, 0.202, 0.202], "steady_epoch_s": 0.101}
    assert compare.turn_ratio(a, b) == pytest.approx(1.01)
    assert b["steady_epoch_s"] / a["steady_epoch_s"] < 0.6  # negative control: the ratio of the two medians
    # Blocks where both were timed in blocks (k = 2 here: the steady epoch is the blocks' median over k) ...
    blocked = {**a, "steady_epoch_blocks_s": [0.2, 0.2, 0.4], "steady_epoch_s": 0.1}
    assert compare.turn_ratio(blocked, {**b, "steady_epoch_blocks_s": [0.22, 0.22, 0.44], "steady_epoch_s": 0.11}) \
        == pytest.approx(1.1)
    # ... else the epochs of both, and nothing where a record has no series.
    assert compare.turn_ratio(blocked, b) == pytest.approx(1.01)
    assert compare.turn_ratio({"epoch_s": [0.5]}, b) is None and compare.turn_ratio({"epoch_s": "x"}, b) is None


def test_groups_across_an_outer_axis_are_brought_together_in_the_plan():
    reg, _ = build_registry()
    sel = Selection(backends=["jax", "torch"], tasks=["linear_regression", "mnist_mlp"], repeat=2, lockstep=["backend"])
    cells = [p.cell for p in plan(reg, sel)]
    assert [(c.repeat, c.task, c.backend) for c in cells] == [
        (r, t, b) for r in (0, 1) for t in ("linear_regression", "mnist_mlp") for b in ("jax", "torch")]
    assert [c.lockstep for c in cells] == [f"r{r}-g{g}" for r, g in ((0, 0), (0, 0), (0, 1), (0, 1), (1, 2), (1, 2),
                                                                      (1, 3), (1, 3))]


def test_lockstep_with_nothing_to_pair_says_so_and_runs_each_cell_alone(fake_plugin, tmp_path):
    done = bench("run", "--backend", "fake", "--task", "linear_regression", "--mode", "eager", "--epochs", "2",
                 "--lockstep", "python", "--out", str(tmp_path / "r"), env=fake_plugin.env())
    assert done.returncode == 0, done.stderr[-2000:]
    assert "--lockstep python: no two cells of a repeat differ only in that; each runs alone" in done.stderr


def test_the_gate_decides_the_committed_real_pairs_run_in_lockstep_and_not_side_against_side():
    from benchmarks.compare_power import _side, outcome

    folder = REPO / "results" / "reference-lockstep-power-cpu-20261205"
    decided = {"default": [], "every process": []}
    for run in results.run_dirs(folder):
        df = results.load([run])
        for way, paired, slow_mode in (("default", None, compare.SLOW_MODE), ("every process", False, None)):
            a, b, b_slow = (_side(df, label, size, "median", lockstep=paired is None)
                            for label, size in (("a", 16384), ("b", 16384), ("b", 20480)))
            decided[way].append((outcome(a, b, paired, slow_mode), outcome(a, b_slow, paired, slow_mode)))
    assert len(decided["default"]) == 21
    assert decided["default"] == [("pass", "fail")] * 21
    # Negative control: the same processes side against side, every one kept, leave most pairs undecided.
    assert sum(d == ("pass", "fail") for d in decided["every process"]) < 10
