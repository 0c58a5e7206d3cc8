"""bench calibrate: the spread between processes and within one, the repeats a comparison needs at a spread,
and the calibration kept for bench compare and the reports."""

from __future__ import annotations

import json

import pytest

from harness.compare.power import MAX_REPEATS, fail_above_for, repeats_needed, simulate
from harness.measure.noise import cv_of_logs, sd_log_of, spread
from harness.store import calibration
from tests.conftest import bench


def test_spread_between_processes_and_within_one_from_their_epochs():
    # Three processes: their steady epochs (the first, compiling, left out) centre on 1, 1.2 and 1.1 s.
    processes = [[9.0, 1.0, 1.1, 0.9], [9.0, 1.2, 1.32, 1.08], [9.0, 1.1, 1.21, 0.99]]
    found = spread(processes)
    assert found.processes == 3 and found.medians == (1.0, 1.2, 1.1) and found.slow == 0
    assert found.between == pytest.approx(cv_of_logs([1.0, 1.2, 1.1]))
    assert found.within == pytest.approx(cv_of_logs([1.0, 1.1, 0.9]))
    # A fourth process in the machine's slow mode (twice the fastest) is counted, not spread into the others.
    with_slow = spread([*processes, [9.0, 2.0, 2.2, 1.8]])
    assert with_slow.slow == 1 and with_slow.between == pytest.approx(found.between)
    assert spread([[9.0, 1.0, 1.0, 1.0], [9.0, 2.0, 2.0, 2.0]]).between is None  # one fast process: no spread
    assert cv_of_logs([3.0, 3.0]) == 0 and cv_of_logs([3.0]) is None


def test_the_gate_decides_at_a_small_spread_and_says_it_cannot_at_a_large_one():
    assert fail_above_for(0.25) == 1.10 and fail_above_for(0.10) == 1.04
    quiet = repeats_needed(0.02, 0.25)
    assert quiet is not None and quiet <= 5
    assert repeats_needed(0.05, 0.25) > quiet  # more noise, more repeats
    assert repeats_needed(0.5, 0.25) is None  # this VM on a busy day: no practical number decides
    unchanged = simulate(sd_log_of(0.02), 5, 1.0, 1.10)
    slower = simulate(sd_log_of(0.02), 5, 1.25, 1.10)
    assert unchanged.passed >= 0.8 and unchanged.failed <= 0.05 and slower.failed >= 0.9
    assert MAX_REPEATS >= 20


def test_calibrations_pool_so_a_quiet_minute_does_not_erase_a_bursty_one():
    cell = "jax mnist_mlp compiled"
    bursty = {"processes": 12, "slow_processes": 4, "between_cv": 0.05, "within_cv": 0.02}
    quiet = {"processes": 12, "slow_processes": 0, "between_cv": 0.01, "within_cv": 0.01}
    kept = calibration.sessions({"cell": cell, "sessions": [bursty, {"processes": "x"}]}, cell) + [quiet]
    both = calibration.pooled(kept)
    assert both["processes"] == 24 and both["slow_processes"] == 4 and both["calibrations"] == 2
    assert 0.01 < both["between_cv"] < 0.05
    # The slow mode kept from the bursty minute asks for more repeats than the quiet minute alone would.
    alone = repeats_needed(quiet["between_cv"], 0.10)
    pooled_needed = repeats_needed(both["between_cv"], 0.10, slow_share=4 / 24)
    assert pooled_needed is None or pooled_needed > alone
    # Another cell's calibrations are not pooled with these (the negative control).
    assert calibration.sessions({"cell": "torch mnist_mlp compiled", "sessions": [bursty]}, cell) == []


def test_slow_mode_processes_in_the_simulation_cost_repeats():
    quiet = repeats_needed(0.03, 0.25)
    assert repeats_needed(0.03, 0.25, slow_share=0.3) > quiet
    assert simulate(sd_log_of(0.03), 5, 1.0, 1.10, slow_share=0.0).passed > simulate(
        sd_log_of(0.03), 5, 1.0, 1.10, slow_share=0.3).passed


def test_calibrate_measures_saves_and_compare_reads_it(fake_plugin, tmp_path):
    out = tmp_path / "results"
    env = fake_plugin.env()
    done = bench("calibrate", "--backend", "fake", "--task", "linear_regression", "--processes", "4",
                 "--epochs", "3", "--out", str(out), env=env)
    assert done.returncode == 0, done.stderr
    assert "processes of one cell differ by" in done.stdout and "to catch a 25% slowdown" in done.stdout
    assert "two processes taking turns epoch by epoch (lockstep" in done.stdout and "in lockstep" in done.stdout
    assert "for runs made apart" in done.stdout and "the least they need, not what suffices" in done.stdout
    (saved,) = (out / "calibration").glob("*.json")
    found = json.loads(saved.read_text())
    assert (found["processes"] == 4 and 0 <= found["between_cv"] < 10 and len(found["sessions"]) == 1
            and found["cell"] == "fake linear_regression compiled" and found["lockstep_pairs"] == 2
            and set(found["repeats_needed_lockstep"]) == {"25%", "10%"})
    runs = sorted(p.name for p in out.iterdir() if p.is_dir() and p.name != "calibration")
    compared = bench("compare", runs[0], runs[0], "--out", str(out), "--fail-above", "1.10", env=env)
    assert f"this machine ({found['host']}): processes of one cell differ by" in compared.stderr, compared.stderr
    paired = bench("compare", "--run", runs[0], "a", "b", "--out", str(out), "--fail-above", "1.10", env=env)
    assert "cells in lockstep by" in paired.stderr, paired.stderr
    assert "This machine" in bench("report", runs[0], "--out", str(out), env=env).stdout


def test_pooled_lockstep_pairs_set_aside_a_pair_with_one_process_alone_in_the_slow_mode():
    sessions = [{"pair_ratios": [1.0, 1.01, 0.99]}, {"pair_ratios": [1.005, 1.9, "x"]}, {}]
    found = calibration.pooled_pairs(sessions)
    assert found["lockstep_pairs"] == 5 and found["lockstep_lone"] == 1 and found["lockstep_cv"] < 0.02
    # Negative control: the same ratios with the lone pair kept spread far wider.
    assert cv_of_logs([1.0, 1.01, 0.99, 1.005, 1.9]) > 0.2
    assert calibration.pooled_pairs([{"pair_ratios": [1.0]}]) == {}


def test_lockstep_pairs_decide_with_few_repeats_and_a_lone_slow_share_costs_repeats():
    assert repeats_needed(0.015, 0.25, paired=True) <= 5
    assert repeats_needed(0.015, 0.10, paired=True, slow_share=0.3) > repeats_needed(0.015, 0.10, paired=True)


@pytest.mark.parametrize("args, message", [(["--processes", "3"], "--processes must be at least 4"),
                                           (["--epochs", "2"], "--epochs must be at least 3"),
                                           (["--backend", "nope"], "unknown backend 'nope'")])
def test_bad_calibrate_input_is_one_line_exit_2(fake_plugin, tmp_path, args, message):
    done = bench("calibrate", "--backend", "fake", "--task", "linear_regression", *args, "--out",
                 str(tmp_path), env=fake_plugin.env())
    assert done.returncode == 2 and message in done.stderr and done.stderr.count("\n") == 1, done.stderr


def test_calibrate_tells_a_machine_with_a_slow_mode_that_runs_made_apart_may_not_decide():
    from harness.cli.cmd_calibrate import describe

    found = {"host": "vm", "between_cv": 0.03, "within_cv": 0.03, "processes": 24, "slow_processes": 4,
             "lockstep_cv": 0.012, "lockstep_pairs": 12, "lockstep_lone": 1,
             "repeats_needed": {"25%": 5, "10%": 13}, "repeats_needed_lockstep": {"25%": 3, "10%": 4}}
    text = describe(found)
    assert "to catch a 25% slowdown with bench compare --fail-above 1.1: --repeat 3 a side in lockstep" in text
    assert "at least --repeat 5 a side for runs made apart" in text
    assert "may not decide at any practical --repeat. Compare in one run, in lockstep" in text
    assert "1 set aside with one process alone in the slow mode" in text
    # Negative control: a machine whose processes never ran in a slow mode is not told so.
    assert "may not decide" not in describe({**found, "slow_processes": 0})
