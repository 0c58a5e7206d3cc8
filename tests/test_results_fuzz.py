"""Properties: whatever bytes sit in a result file, `bench report` and `bench compare` succeed or exit 2 with
one line, and what they write holds no terminal escape and no lone surrogate; whatever values a record
holds, the record model makes it one that saves and loads."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from harness import results
from harness.cli.main import main
from harness.store import record
from tests.strategies import JSON_VALUES, TEXT

RUNS = Path(__file__).parent / "fixtures" / "runs"
FIXTURE_RECORDS = [json.loads(line) for line in (RUNS / "report-small" / "records.jsonl").read_text().splitlines()]
FIELDS = sorted({key for record in FIXTURE_RECORDS for key in record})


@st.composite
def records_files(draw) -> bytes:
    """Random bytes, or the fixture's records with fields replaced, removed, cut short or interleaved with junk."""
    kind = draw(st.sampled_from(["bytes", "mutated", "truncated"]))
    if kind == "bytes":
        return draw(st.binary(max_size=400))
    lines = []
    for fixture in FIXTURE_RECORDS:
        mutated = dict(fixture)
        for key in draw(st.lists(st.sampled_from(FIELDS), max_size=3)):
            choice = draw(st.integers(0, 2))
            if choice == 0:
                mutated[key] = draw(JSON_VALUES)
            elif choice == 1:
                mutated[key] = draw(TEXT)  # hostile text where text belongs, or where a number does
            else:
                mutated.pop(key, None)
        lines.append(json.dumps(mutated).encode())
        if draw(st.booleans()):
            lines.append(draw(st.binary(max_size=30)).replace(b"\n", b""))
    data = b"\n".join(lines)
    if kind == "truncated":
        data = data[: draw(st.integers(0, len(data)))]
    return data


def _check(code: int, err: str, argv: list[str]) -> None:
    event(f"{argv[0]} exit {code}")
    assert code in (0, 2), (argv, err)
    assert "Traceback" not in err
    if code == 2:
        lines = err.splitlines()
        assert lines[-1].startswith("bench: error: ") and len(lines[-1]) > len("bench: error: ")


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=records_files(), run_file=st.one_of(st.none(), st.binary(max_size=60)),
       fmt=st.sampled_from(["table", "md", "csv", "json", "html"]), compare=st.booleans())
def test_corrupt_result_files_give_a_report_or_exit_2(records, run_file, fmt, compare, tmp_path, capsys):
    shutil.rmtree(tmp_path / "results", ignore_errors=True)  # tmp_path is shared by every example
    run = tmp_path / "results" / "20260101-000000-fuzz"
    shutil.copytree(RUNS / "report-small", run)
    (run / "records.jsonl").write_bytes(records)
    if run_file is not None:
        (run / "run.json").write_bytes(run_file)
    output = tmp_path / "out.txt"
    output.unlink(missing_ok=True)
    if compare:
        argv = ["compare", str(RUNS / "report-small"), str(run), "--format", fmt if fmt != "html" else "md"]
    else:
        argv = ["report", str(run), "--format", fmt, "--output", str(output)]
    code = main(argv + ["--out", str(tmp_path / "results")])
    captured = capsys.readouterr()
    _check(code, captured.err, argv)
    if code == 2:
        assert not output.exists(), "a failed report must not leave a partial file"
    shown = captured.out + captured.err + (output.read_text(encoding="utf-8") if output.exists() else "")
    assert "\x1b" not in shown and "\x07" not in shown, "an escape sequence reached the output"
    shown.encode("utf-8")  # no lone surrogate


def _texts(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _texts(item)
    elif isinstance(value, list):
        for item in value:
            yield from _texts(item)


@settings(max_examples=100, deadline=None)
@given(values=st.dictionaries(st.one_of(st.sampled_from(sorted(record.SCHEMA)), TEXT), JSON_VALUES, max_size=12))
def test_any_values_make_a_record_that_saves_and_loads(values):
    made, warnings = record.conform({**values, "cell_id": "c", "status": "ok"})
    for name, value in made.items():
        column = record.BY_NAME.get(name)
        assert value is None or column is None or column.kind.accepts(value), (name, value)
    assert all(text.isprintable() for text in [*_texts(made), *warnings])  # no escape, no surrogate, one line
    line = results.record_line(made)
    assert record.record_problem(json.loads(line)) == ""
    again, more = record.conform(json.loads(line))
    assert again == made and more == []  # what is saved loads as it was
