"""Which run a report shows: `latest` is the newest run by start time and never a committed reference
run, and every format names the runs it shows."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from harness import results
from harness.cli.main import main

SMALL = Path(__file__).parent / "fixtures" / "runs" / "report-small"


def _run(root: Path, name: str, created: str | None, first_record: str | None = "2026-01-01T00:00:00+00:00") -> Path:
    """A copy of the fixture run named `name`, started at `created` (None: run.json says nothing) and
    whose records say they finished at `first_record` onwards."""
    run = root / name
    shutil.copytree(SMALL, run)
    info = json.loads((run / results.RUN_FILE).read_text())
    info.pop("created", None)
    if created:
        info["created"] = created
    (run / results.RUN_FILE).write_text(json.dumps(info))
    records, _ = results.read_records(run / results.RECORDS)
    for r in records:
        r.update(run_id=name, timestamp=first_record)
    (run / results.RECORDS).write_bytes(b"".join(results.record_line(r) for r in records))
    return run


def test_latest_is_the_newest_by_start_time_not_by_name(tmp_path):
    _run(tmp_path, "zz-started-first", "2026-03-01T10:00:00+00:00")
    _run(tmp_path, "aa-started-last", "2026-03-02T09:00:00+01:00")
    _run(tmp_path, "mm-started-between", "2026-03-01T23:00:00")  # no zone: UTC
    assert [p.name for p in results.run_dirs(tmp_path)] == ["zz-started-first", "mm-started-between",
                                                             "aa-started-last"]
    assert results.resolve("latest", tmp_path).name == "aa-started-last"


def test_a_run_without_a_start_time_is_placed_by_its_first_record(tmp_path):
    _run(tmp_path, "b-old", "2026-03-01T10:00:00+00:00")
    _run(tmp_path, "a-no-created", None, first_record="2026-03-05T00:00:00+00:00")
    assert results.resolve("latest", tmp_path).name == "a-no-created"


def test_latest_never_picks_a_committed_reference_run(tmp_path, capsys):
    _run(tmp_path, "20260301-100000-abcd", "2026-03-01T10:00:00+00:00")
    _run(tmp_path, "reference-cpu-20261201", "2026-12-01T23:02:45+00:00")  # newer, and sorts last by name
    assert results.resolve("latest", tmp_path).name == "20260301-100000-abcd"
    assert main(["report", "--out", str(tmp_path), "--format", "md"]) == 0
    out = capsys.readouterr().out
    assert "run 20260301-100000-abcd (29 records" in out and "reference-cpu" not in out


def test_only_reference_runs_is_a_one_line_error_naming_them(tmp_path, capsys):
    _run(tmp_path, "reference-cpu-20261201", "2026-12-01T23:02:45+00:00")
    assert main(["report", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "besides the committed reference runs (reference-cpu-20261201)" in err
    assert "bench report reference-cpu-20261201" in err
    assert main(["report", "reference-cpu-20261201", "--out", str(tmp_path)]) == 0  # named: shown


def test_the_repository_reference_run_is_not_latest_on_a_fresh_clone(tmp_path):
    """A fresh clone's results/ holds only the committed reference runs: `latest` must not resolve."""
    committed = Path(__file__).resolve().parents[1] / "results"
    references = [p for p in committed.iterdir() if p.name.startswith(results.REFERENCE_PREFIX)
                  and (p / results.RUN_FILE).is_file()]  # a run; reference-regularisation-* holds several
    assert references, "the repository commits a reference run"
    for p in references:
        (tmp_path / p.name).mkdir()
        shutil.copy(p / results.RUN_FILE, tmp_path / p.name / results.RUN_FILE)
    with pytest.raises(results.ResultsError, match="besides the committed reference runs"):
        results.resolve("latest", tmp_path)


@pytest.mark.parametrize("fmt", ["table", "md", "html", "json", "csv"])
def test_every_format_names_the_runs_it_shows(tmp_path, capsys, fmt):
    _run(tmp_path, "run-one", "2026-03-01T10:00:00+00:00")
    _run(tmp_path, "run-two", "2026-03-02T10:00:00+00:00")
    assert main(["report", "run-one", "run-two", "--out", str(tmp_path), "--format", fmt]) == 0
    out = capsys.readouterr().out
    assert "run-one" in out and "run-two" in out
    if fmt in ("table", "md", "html"):
        assert "run run-one (29 records" in out and "run run-two (29 records" in out


def test_a_run_with_nothing_to_show_says_why_and_exits_2(tmp_path, capsys):
    """Not "no cell has finished yet" for every case: a stopped run, a running one and one whose lines are all
    unreadable each get their own line, exit 2."""
    import fcntl

    run = _run(tmp_path, "20260301-100000-aaaa", "2026-03-01T10:00:00+00:00")
    planned = len(json.loads((run / results.RUN_FILE).read_text())["plan"])
    (run / results.RECORDS).write_bytes(b"")

    def report() -> str:
        assert main(["report", str(run)]) == 2
        last = capsys.readouterr().err.splitlines()[-1]  # after any warning naming unreadable lines
        assert last.startswith("bench: error: run 20260301-100000-aaaa")
        return last

    assert (f"has no records: it stopped before its first cell ended ({planned} cells planned); finish it with "
            "bench run --resume 20260301-100000-aaaa") in report()
    with open(run / ".lock", "a+") as held:  # as `bench run` holds a run folder it writes
        fcntl.flock(held, fcntl.LOCK_EX)
        import subprocess
        import sys

        child = subprocess.run([sys.executable, "-m", "harness", "report", str(run)], capture_output=True, text=True)
    assert child.returncode == 2 and "it is running in another bench process" in child.stderr
    (run / results.RECORDS).write_bytes(b"{not json\n[1, 2]\n")
    assert "none of the 2 lines of its records.jsonl could be read" in report()
