"""The parent trusts nothing a worker or a plugin sends, and a run survives its own machine (issue 13).

Each test drives the fault-injection backend (tests/fakes.py, one mode per fault) through the real
`bench` command, with healthy cells before and after the faulty ones in the same run.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from harness import results
from harness.cli.main import main
from harness.plugins.manager import BUILTIN_PLUGINS
from harness.store.safe_text import CUT, MAX_TEXT
from tests.conftest import REPO, bench
from tests.fakes import ESCAPES, FORMULA, LONG_MESSAGE, SPAM_BYTES

TAG_ENV = "BENCH_FAULT_TAG"  # every process a test's bench starts inherits it, daemons included


def tagged(tag: str) -> list[int]:
    """Processes whose environment carries this test's tag (found the way a leak would be)."""
    needle = f"{TAG_ENV}={tag}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if needle in f.read().split(b"\0"):
                    found.append(int(entry))
        except OSError:
            continue
    return found


def wait_untagged(tag: str, seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while (left := tagged(tag)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


@pytest.fixture
def tag():
    """A tag for this test's processes; whatever still carries it at the end is killed."""
    value = uuid.uuid4().hex
    yield value
    for pid in tagged(value):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def _env(site, tag: str, **extra: str) -> dict[str, str]:
    return site.env(**{TAG_ENV: tag, **extra})


# -- 1, 2, 3, 4, 6, 9 (log): one run, every parent-side fault between healthy cells ------------------

PARENT_RUN = ["run", "--backend", "faulty,fake", "--task", "linear_regression", "--epochs", "2", "--timeout", "60",
              "--mode", "ok,event_number,event_list,event_types,result_types,details_str,peak_str,surrogate,"
                        "escape,formula,daemon,exit_helper,spam,long_message,eager"]
EXPECTED = {  # mode: (status, start of the message)
    "ok": ("ok", ""),
    "event_number": ("error", "worker sent a malformed event: not a JSON object: 42"),
    "event_list": ("error", "worker sent a malformed event: not a JSON object: [1, 2]"),
    "event_types": ("error", "worker sent a malformed event: epoch event: epoch is text, not a whole number"),
    "result_types": ("error", "worker sent a malformed result: status is a list, not one of ok, skipped"),
    "details_str": ("ok", ""),
    "peak_str": ("ok", ""),
    "surrogate": ("error", "FileNotFoundError: no data in data/\\udcff.bin"),
    "escape": ("error", "RuntimeError: \\x1b[2J\\x1b[31mred alert\\x1b[0m\\x07"),
    "formula": ("skipped", FORMULA),
    "daemon": ("ok", ""),
    "exit_helper": ("error", "worker exited with code 3 before reporting a result"),
    "spam": ("ok", ""),
    "long_message": ("error", "RuntimeError: the start of a long message xxx"),
}


def test_parent_side_faults_are_recorded_and_the_run_goes_on(fake_plugin, tmp_path, tag):
    out = tmp_path / "results"
    env = _env(fake_plugin, tag)
    run = subprocess.run([sys.executable, "-m", "harness", *PARENT_RUN, "--out", str(out)], capture_output=True,
                         env=env, cwd=REPO, timeout=600)
    stdout, stderr = run.stdout.decode(), run.stderr.decode()  # strict UTF-8: no lone surrogate escaped raw
    assert run.returncode == 1, stderr
    assert "Traceback" not in stderr
    assert "\x1b" not in stdout + stderr, "escape sequences reached the terminal"
    assert wait_untagged(tag, 5) == [], "a cell's process (worker, helper or daemon) outlived the run"

    df = results.load(root=out)
    ran = df[(df.backend == "faulty") & (df["mode"].isin(list(EXPECTED)))]
    got = {r.mode: (r.status, r.message) for r in ran.itertuples()}
    assert set(got) == set(EXPECTED), sorted(got)  # no record dropped, none duplicated
    for mode, (status, message) in EXPECTED.items():
        assert got[mode][0] == status and got[mode][1].startswith(message), (mode, got[mode])
    assert df[(df.backend == "fake") & (df["mode"] == "eager")].status.tolist() == ["ok"]

    by_mode = {r.mode: r for r in ran.itertuples()}
    assert by_mode["details_str"].details is None
    assert any("details" in w for w in by_mode["details_str"].warnings)
    assert pd_none(by_mode["peak_str"].peak_device_mb)
    assert any("peak_device_mb" in w for w in by_mode["peak_str"].warnings)
    assert by_mode["exit_helper"].wall_s < 20, "a helper holding the event pipe hid the worker's exit"
    for row in ran.itertuples():  # malformed-event cells were killed at once, not at the timeout
        assert row.status != "timeout"

    run_dir = results.run_dirs(out)[0]
    log = (run_dir / by_mode["spam"].log).read_bytes()
    assert len(log) < 3 * 2**20 < SPAM_BYTES
    assert re.search(rb"bench: \d+ bytes of this cell's output cut here", log)
    assert log.startswith(b"x" * 1023) and b"x" * 1023 in log[-2**20:]  # head and tail kept

    long = by_mode["long_message"]  # cut in the record, whole in the log
    assert len(long.message) == MAX_TEXT and long.message.endswith(CUT)
    assert LONG_MESSAGE.encode() in (run_dir / long.log).read_bytes()

    reports = {}
    for fmt in ("table", "md", "csv", "json", "html"):
        shown = bench("report", run_dir.name, "--format", fmt, "--out", str(out), env=env)
        assert shown.returncode == 0, (fmt, shown.stderr)
        assert "\x1b" not in shown.stdout and "\udcff" not in shown.stdout, fmt
        reports[fmt] = shown.stdout
        assert len(shown.stdout) < 200_000, (fmt, len(shown.stdout))  # a megabyte message is not the page
    cells = json.loads(reports["json"])["cells"]
    assert {c["mode"] for c in cells if c["backend"] == "faulty"} >= set(EXPECTED)
    assert f"'{FORMULA}".replace('"', '""') in reports["csv"]  # neutralised, as OWASP recommends
    assert not re.search(r"(^|,)\"?[=+@\t\r]", reports["csv"], re.M)

    resumed = bench("run", "--resume", run_dir.name, "--out", str(out), env=env)
    assert "0 of" in resumed.stderr and "cells to run" in resumed.stderr  # nothing runs again


def pd_none(value) -> bool:
    return value is None or value != value


# -- 5: plugin-supplied names -----------------------------------------------------------------------

BAD_NAME_PLUGIN = """
from harness import hookimpl
from tests.fakes import FakeBackend

class Bad(FakeBackend):
    name = {name!r}

@hookimpl
def bench_backends():
    return [Bad]
"""
# every built-in backend, so only the fake plugins run (a new built-in backend cannot slip in)
BUILTINS_BLOCKED = ",".join(m for m in BUILTIN_PLUGINS if m.startswith("backends."))


def test_bad_plugin_names_break_only_their_plugin_and_build_no_path(fake_plugin, tmp_path, tag):
    fake_plugin.install("bench-slash", "slash_plugin", BAD_NAME_PLUGIN.format(name="fake/slash"))
    fake_plugin.install("bench-dots", "dots_plugin", BAD_NAME_PLUGIN.format(name="../../escape"))
    fake_plugin.install("bench-noisy", "noisy_plugin", f"raise RuntimeError({ESCAPES!r})\n")
    env = _env(fake_plugin, tag, BENCH_BLOCK_PLUGINS=BUILTINS_BLOCKED)
    out = tmp_path / "results"
    run = bench("run", "--task", "linear_regression", "--epochs", "1", "--mode", "eager,ok", "--out", str(out),
                env=env)
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    df = results.load(root=out)
    assert set(df.backend) == {"fake", "faulty"}
    assert set(df[df.status == "ok"].backend) == {"fake", "faulty"}
    assert not [p for p in tmp_path.rglob("*escape*")], "a log was written from an unchecked name"
    listing = bench("plugins", env=env)
    flat = " ".join(listing.stdout.replace("│", " ").split())
    assert "slash_plugin" in flat and "dots_plugin" in flat
    assert flat.count("broken: backend name") == 2, listing.stdout
    assert "broken: RuntimeError: \\x1b[2J" in flat
    listed = bench("list", env=env)
    assert listed.returncode == 0 and "fake" in listed.stdout
    assert "\x1b" not in listing.stdout + listed.stdout, "a plugin's escape sequence reached the terminal"


def test_one_name_rule_for_the_registry_and_the_conformance_suite():
    from harness.api import NAME_MAX, name_problem
    from harness.conformance import test_contract

    for good in ("torch", "keras-jax", "tf_2.1", "a" * NAME_MAX):
        assert name_problem(good) is None
    for bad in ("", "-x", ".hidden", "a/b", "../../x", "x\n", "a b", "=cmd", "é", "a" * (NAME_MAX + 1), 7):
        assert name_problem(bad), bad
    assert test_contract.name_problem is name_problem


# -- 7: bench run itself killed -------------------------------------------------------------------

HANG_RUN = ["run", "--backend", "fake,faulty", "--task", "linear_regression", "--mode", "eager,hang",
            "--epochs", "1", "--timeout", "120"]


def _start_and_wait_for_hang(spawn, site, tag, tmp: Path, out: Path) -> subprocess.Popen:
    env = _env(site, tag, TMPDIR=str(tmp))
    proc = spawn([sys.executable, "-m", "harness", *HANG_RUN, "--out", str(out)], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        if "faulty linear_regression hang cpu: starting" in line:
            break
    time.sleep(2.0)  # the worker is in its first epoch, hanging, with a helper process
    return proc


def _temporary_folders(tmp: Path) -> list[str]:
    return sorted(p.name for p in tmp.iterdir() if p.name.startswith(("bench-run-", "bench-cell-")))


def test_killed_run_takes_its_worker_along_and_the_next_run_cleans_up(fake_plugin, tmp_path, tag, spawn):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    out = tmp_path / "results"
    proc = _start_and_wait_for_hang(spawn, fake_plugin, tag, tmp, out)
    assert tagged(tag), "the hanging cell should be running"
    proc.kill()  # SIGKILL: bench run can clean nothing up itself
    proc.wait(timeout=30)
    assert wait_untagged(tag, 5) == [], "the worker or its helper outlived bench run"
    assert _temporary_folders(tmp), "a killed run leaves its temporary folders"
    again = bench("run", "--backend", "fake", "--task", "linear_regression", "--mode", "eager", "--epochs", "1",
                  "--out", str(tmp_path / "second"), env=_env(fake_plugin, tag, TMPDIR=str(tmp)))
    assert again.returncode == 0, again.stderr
    assert _temporary_folders(tmp) == [], "the next run removes the stale temporary folders"


def test_hangup_stops_the_run_cleanly_and_resumably(fake_plugin, tmp_path, tag, spawn):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc = _start_and_wait_for_hang(spawn, fake_plugin, tag, tmp, tmp_path / "results")
    proc.send_signal(signal.SIGHUP)  # the terminal was closed
    rest = proc.stderr.read()
    assert proc.wait(timeout=30) == 130, rest
    assert "continue with: bench run --resume" in rest
    assert wait_untagged(tag, 5) == []
    assert _temporary_folders(tmp) == []


# -- 8: one bench run per run folder ---------------------------------------------------------------

def test_second_resume_of_a_run_in_progress_is_exit_2(fake_plugin, tmp_path, tag, spawn):
    out = tmp_path / "results"
    env = _env(fake_plugin, tag)
    first = spawn([sys.executable, "-m", "harness", "run", "--backend", "faulty", "--mode", "hang",
                   "--task", "linear_regression", "--timeout", "10", "--out", str(out)], cwd=REPO, env=env,
                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    run_id = None
    for line in first.stderr:
        run_id = run_id or (re.search(r"bench: run (\S+):", line) or [None, None])[1]
        if "hang cpu: starting" in line:
            break
    try:
        second = bench("run", "--resume", run_id, "--out", str(out), env=env)
        assert second.returncode == 2, second.stderr
        assert second.stderr.startswith(f"bench: error: run {run_id} is in progress") and \
            second.stderr.count("\n") == 1, second.stderr
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=60)
    assert len(results.load([out / run_id])) == 0  # no record from the refused resume


# -- 9: a full disk ---------------------------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs: room for a run's small files, not for a 4 MiB record."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs to fill needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_disk_stops_the_run_cleanly_with_no_torn_record(fake_plugin, tmp_path, tag, small_disk):
    out = small_disk / "results"
    env = _env(fake_plugin, tag)
    run = bench("run", "--backend", "fake,faulty", "--task", "linear_regression", "--epochs", "1",
                "--mode", "eager,big_result,ok", "--out", str(out), env=env)
    assert run.returncode == 4, run.stderr
    assert "Traceback" not in run.stderr
    match = re.search(r"No space left on device.*continue with: bench run --resume (\S+) --out", run.stderr)
    assert match, run.stderr
    run_id = match.group(1)
    for line in (out / run_id / results.RECORDS).read_bytes().splitlines():
        json.loads(line)  # every line whole: no torn record
    saved = results.load([out / run_id])
    assert "fake" in set(saved[saved.status == "ok"].backend)  # the healthy cell before it is kept
    assert wait_untagged(tag, 5) == []

    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    resumed = bench("run", "--resume", run_id, "--out", str(out), env=env)
    assert resumed.returncode == 0, resumed.stderr
    final = results.load([out / run_id])
    assert len(final) == len(set(final.cell_id)) == 6
    assert (final[final.status != "skipped"].status == "ok").all()


# -- 10: reading junk -------------------------------------------------------------------------------

def test_junk_lines_are_summarised_in_one_line(tmp_path, capsys):
    fixture = Path(__file__).parent / "fixtures" / "runs" / "report-small" / results.RECORDS
    good = fixture.read_bytes().splitlines()[:3]
    junk = [b"{garbage", b"[1, 2]", b'{"cell_id": "x", "status": "fine"}', b"\xff\xfe"] * 5000
    (tmp_path / results.RECORDS).write_bytes(b"\n".join([good[0], *junk, *good[1:]]) + b"\n")
    assert main(["report", str(tmp_path / results.RECORDS), "--format", "json"]) == 0
    captured = capsys.readouterr()
    assert len(json.loads(captured.out)["cells"]) >= 1
    warnings = captured.err.splitlines()
    assert len(warnings) == 1, warnings[:5]
    assert "20000 lines skipped" in warnings[0] and "lines 2, 3, 4, 5, 6" in warnings[0]


# -- 11: repeated grid values -----------------------------------------------------------------------

@pytest.mark.parametrize("option,value,repeated", [
    ("--mode", "eager,eager", "'eager'"), ("--backend", "fake,fake", "'fake'"), ("--lr", "0.1,0.10", "0.1"),
    ("--batch-size", "16,16", "16"), ("--optimizer", "sgd,sgd", "'sgd'"), ("--threads", "1,1", "1"),
])
def test_repeated_grid_values_are_exit_2(option, value, repeated, fake_plugin, tmp_path, capsys):
    out = tmp_path / "results"
    argv = ["run", "--backend", "fake", "--task", "linear_regression", "--epochs", "1", option, value]
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == f"bench: error: {option} lists {repeated} twice\n"
    assert not out.exists()
