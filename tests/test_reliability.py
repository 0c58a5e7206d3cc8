"""A run survives crashing, hanging, diverging and interrupted cells and loses nothing."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import pytest

from harness import results
from tests.conftest import REPO, bench

FAULT_RUN = ["run", "--backend", "faulty,fake", "--task", "linear_regression", "--epochs", "2",
             "--mode", "ok,raise,exit,segfault,hang,nan,oom,eager", "--timeout", "8"]
EXPECTED = {
    ("faulty", "ok"): ("ok", ""),
    ("faulty", "raise"): ("error", "RuntimeError: second line of the message"),
    ("faulty", "exit"): ("error", "worker exited with code 3 before reporting a result"),
    ("faulty", "segfault"): ("error", "worker crashed with signal SIGSEGV"),
    ("faulty", "hang"): ("timeout", "no result within the 8 s timeout"),
    ("faulty", "nan"): ("diverged", "test loss nan after epoch 1"),
    ("faulty", "oom"): ("oom", "MemoryError"),
    ("fake", "eager"): ("ok", ""),
}


def test_every_fault_gets_its_status_and_healthy_cells_are_ok(fake_plugin, tmp_path):
    out = tmp_path / "results"
    run = bench(*FAULT_RUN, "--out", str(out), env=fake_plugin.env())
    assert run.returncode == 1, run.stderr  # some cells failed
    assert "Traceback" not in run.stderr
    df = results.load(root=out)
    ran = df[df.status != "skipped"]
    got = {(r.backend, r.mode): (r.status, r.message) for r in ran.itertuples()}
    assert set(got) == set(EXPECTED)
    for key, (status, message) in EXPECTED.items():
        assert got[key][0] == status, (key, got[key])
        assert got[key][1].startswith(message), (key, got[key])
    skipped = df[df.status == "skipped"]
    assert len(skipped) == len(df) - len(EXPECTED)
    assert all("not offered" in m for m in skipped.message)
    run_dir = results.run_dirs(out)[0]
    for row in ran.itertuples():  # every failed cell keeps its log
        assert (run_dir / row.log).is_file()


def _cell_ids(root) -> set[str]:
    return set(results.load(root=root).cell_id)


SLOW_RUN = ["run", "--backend", "fake,faulty", "--task", "linear_regression", "--mode", "eager,slow",
            "--epochs", "3"]


@pytest.mark.slow  # two runs interrupted mid-cell and resumed: CI's second step
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_mid_cell_then_resume_finishes_the_same_cells(signum, fake_plugin, tmp_path, spawn):
    out = tmp_path / "interrupted"
    proc = spawn([sys.executable, "-m", "harness", *SLOW_RUN, "--out", str(out)], cwd=REPO,
                            env=fake_plugin.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    for line in proc.stderr:  # wait until the slow cell (3 s of epochs) has started
        seen.append(line)
        if "faulty linear_regression slow cpu: starting" in line:
            break
    time.sleep(1.5)  # mid-cell
    proc.send_signal(signum)
    _, rest = proc.communicate(timeout=60)
    assert proc.returncode == 130, "".join(seen) + rest
    match = re.search(r"continue with: bench run --resume (\S+) --out", rest)
    assert match, rest
    run_id = match.group(1)
    saved = results.load([out / run_id])
    assert "faulty" not in set(saved[saved.status == "ok"].backend)  # the interrupted cell left no record
    assert len(saved) >= 1

    resumed = bench("run", "--resume", run_id, "--out", str(out), env=fake_plugin.env())
    assert resumed.returncode == 0, resumed.stderr
    assert "cells to run" in resumed.stderr

    reference = tmp_path / "uninterrupted"
    assert bench(*SLOW_RUN, "--out", str(reference), env=fake_plugin.env()).returncode == 0
    assert _cell_ids(out) == _cell_ids(reference)
    final = results.load(root=out)
    assert len(final) == len(set(final.cell_id))  # nothing ran twice
    slow = final[(final["mode"] == "slow") & (final.backend == "faulty")]
    assert list(slow.status) == ["ok"]


def test_resume_refuses_new_run_options(tmp_path, capsys):
    from harness.cli.main import main

    assert main(["run", "--resume", "x", "--epochs", "3", "--out", str(tmp_path)]) == 2
    assert "--resume continues a run as it was planned; drop --epochs" in capsys.readouterr().err


def test_resume_of_unknown_run_is_exit_2(tmp_path, capsys):
    from harness.cli.main import main

    assert main(["run", "--resume", "20990101-000000-dead", "--out", str(tmp_path)]) == 2
    assert "no run '20990101-000000-dead'" in capsys.readouterr().err
