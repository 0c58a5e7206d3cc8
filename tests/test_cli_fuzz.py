"""Properties: whatever arguments `bench` is given, it succeeds or exits 2 with one line — never a traceback;
whatever a worker writes to its event pipe, the parent reads an event or a malformed line, and the run
records the cell and goes on."""

from __future__ import annotations

import shutil

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from harness import results
from harness.cell import events
from harness.cli.main import main
from tests.fakes import EVENTS_ENV
from tests.strategies import event_lines

OPTIONS = ["--backend", "--task", "--mode", "--device", "--precision", "--repeat", "--epochs", "--batch-size",
           "--optimizer", "--lr", "--weight-decay", "--l1", "--threads", "--seed", "--train-size", "--test-size",
           "--timeout", "--resume", "--quick", "--bogus", "-x", "--"]
VALUES = ["fake", "nope", "linear_regression", "mnist_gan", "eager", "compiled", "warp", "cpu", "cuda", "auto",
          "tpu", "fp32", "bf16", "fp8", "sgd", "adam", "lion", "0", "-1", "1", "2", "3", "64", "1e3", "0.05",
          "nan", "inf", "-inf", "", ",", "fake,,", "sgd,adam", "16,32", "abc", "☃", "\x00", "600", "1e9",
          "20990101-000000-dead", "--epochs"]
COMMANDS = ["run", "list", "plugins", "env", "fly", "--help"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(command=st.sampled_from(COMMANDS),
       tokens=st.lists(st.one_of(st.sampled_from(OPTIONS), st.sampled_from(VALUES), st.text(max_size=8)),
                       max_size=8))
def test_random_arguments_succeed_or_exit_2_with_one_line(command, tokens, fake_plugin, tmp_path, capsys):
    out = tmp_path / "fuzz-results"
    # Always the fake backend on the tiny task first, so a valid combination finishes in seconds.
    argv = [command, "--backend", "fake", "--task", "linear_regression", "--epochs", "1", *tokens, "--out", str(out)]
    try:
        code = main(argv)
    except SystemExit as exc:  # only --help exits this way
        code = exc.code
        assert "--help" in argv or "-h" in argv
    captured = capsys.readouterr()
    event(f"exit {code}" + (" after running cells" if "saved" in captured.err else ""))
    assert code in (0, 2), (argv, captured.err)
    assert "Traceback" not in captured.err
    if code == 2:
        lines = captured.err.splitlines()
        assert lines[-1].startswith("bench: error: ") and len(lines[-1]) > len("bench: error: ")


VALID = {
    "--mode": ["eager", "compiled", "eager,compiled"], "--device": ["cpu", "auto", "cuda"],
    "--precision": ["fp32", "bf16"], "--repeat": ["1", "2"], "--epochs": ["1", "2"],
    "--batch-size": ["16", "32,64"], "--optimizer": ["sgd", "adam"], "--lr": ["0.05", "0.1"],
    "--weight-decay": ["0", "0.001", "0,0.001"], "--l1": ["0", "1e-4", "0,1e-4"], "--threads": ["1", "2"],
    "--seed": ["0", "7"], "--train-size": ["64", "500"], "--test-size": ["10", "100"], "--timeout": ["600"],
}


@pytest.mark.slow  # 25 real runs of a fake backend: CI's second step
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pairs=st.lists(st.tuples(st.sampled_from(sorted(VALID)), st.data()), max_size=5))
def test_mostly_valid_run_options_succeed_or_exit_2(pairs, fake_plugin, tmp_path, capsys):
    argv = ["run", "--backend", "fake", "--task", "linear_regression", "--out", str(tmp_path / "r")]
    for option, data in pairs:
        value = data.draw(st.one_of(st.sampled_from(VALID[option]), st.sampled_from(VALUES)), label=option)
        argv += [option, value]
    code = main(argv)
    captured = capsys.readouterr()
    event(f"exit {code}")
    assert code in (0, 1, 2), (argv, captured.err)
    assert "Traceback" not in captured.err
    if code == 1:  # a cell failed, e.g. diverged with a drawn lr of 600: the run is saved and says which
        df = results.load(root=tmp_path / "r")
        assert df["status"].isin(results.FAILED).any() and "saved" in captured.err, (argv, captured.err)
    if code == 2:
        assert captured.err.startswith("bench: error: ") and captured.err.count("\n") == 1


@settings(max_examples=150, deadline=None)
@given(line=event_lines())
def test_any_event_line_is_an_event_or_malformed(line):
    try:
        event = events.parse(line)
    except events.MalformedEvent as exc:
        assert str(exc).isprintable() and len(str(exc)) < 400
        return
    fields = events.EVENTS[event["event"]]
    assert set(event) == {"event", *fields}
    assert all(kind.accepts(event[name]) for name, kind in fields.items())
    assert all(value.isprintable() for value in event.values() if isinstance(value, str))


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(event_lines(), min_size=1, max_size=4))
def test_a_worker_sending_any_event_lines_gets_a_record_and_the_run_goes_on(lines, fake_plugin, tmp_path, capsys,
                                                                            monkeypatch):
    out = tmp_path / "events-fuzz"
    shutil.rmtree(out, ignore_errors=True)  # tmp_path is shared by every example
    monkeypatch.setenv(EVENTS_ENV, (b"\n".join(lines) + b"\n").hex())
    code = main(["run", "--backend", "faulty,fake", "--task", "linear_regression", "--epochs", "1",
                 "--mode", "events,eager", "--timeout", "60", "--out", str(out)])
    captured = capsys.readouterr()
    event(f"exit {code}")
    assert code in (0, 1), captured.err
    assert "Traceback" not in captured.err
    shown = captured.out + captured.err
    assert "\x1b" not in shown and "\x07" not in shown
    shown.encode("utf-8")
    df = results.load(root=out)
    ran = df[df.status != "skipped"]
    assert sorted(ran.backend) == ["fake", "faulty"] and (ran[ran.backend == "fake"].status == "ok").all()
    faulty = ran[ran.backend == "faulty"].iloc[0]
    assert faulty.status == "ok" or faulty.message.startswith("worker sent a malformed")
