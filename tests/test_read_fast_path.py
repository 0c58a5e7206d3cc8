"""Reading records takes a fast path for lines bench wrote (decoded by orjson where installed, not sanitised
again): whatever a line holds, the result must be exactly what the careful path gives."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import results
from harness.store import record
from harness.store.safe_text import MAX_TEXT
from tests.strategies import JSON_VALUES

REFERENCE = Path(__file__).parents[1] / "results" / "reference-cpu-20261203"
HEAD = '{"cell_id": "c", "status": "ok", "x": '
NUMBER_TEXT = st.from_regex(r"-?(0|[1-9]\d{0,24}|[1-9]\d{300,310})(\.\d{1,25})?([eE][+-]?\d{1,3})?", fullmatch=True)


@st.composite
def lines(draw) -> bytes:
    """A record line as bench writes it, as another tool might (non-ASCII, NaN, spaces), or hand-made with
    numbers at the edges of what floats and 64-bit integers hold, or nested around MAX_DEPTH."""
    kind = draw(st.sampled_from(["dumps", "number", "nested", "long"]))
    if kind == "long":  # around MAX_TEXT, with escapes that shorten the text against its bytes
        text = "a" * draw(st.integers(MAX_TEXT - 30, MAX_TEXT + 5)) + draw(st.text('"\\é', max_size=40))
        return json.dumps({"cell_id": "c", "status": "ok", "message": text}, ensure_ascii=draw(st.booleans())).encode()
    if kind == "dumps":
        value = {"cell_id": "c", "status": "ok", "x": draw(JSON_VALUES), "epoch_s": draw(JSON_VALUES)}
        separators = draw(st.sampled_from([(",", ":"), (", ", ": "), (" ,\t", " :\r")]))
        return json.dumps(value, ensure_ascii=draw(st.booleans()), separators=separators).encode("utf-8", "replace")
    if kind == "number":
        return (HEAD + draw(NUMBER_TEXT) + "}").encode()
    depth = draw(st.integers(record.MAX_DEPTH - 3, record.MAX_DEPTH + 3))
    inner = draw(st.sampled_from(["1", '"[]"', "{}", "[]"]))
    opens = "".join(draw(st.sampled_from(["[", '{"k": '])) for _ in range(depth))
    closes = "".join("]" if o == "[" else "}" for o in reversed(opens.replace('{"k": ', "{")))
    return (HEAD + opens + inner + closes + "}").encode()


def _read(tmp_path: Path, line: bytes):
    path = tmp_path / "records.jsonl"
    path.write_bytes(line + b"\n")
    return results.read_records(path)


@pytest.mark.parametrize("fast_decoder", ["orjson", "none installed"])
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(line=lines())
def test_the_fast_path_reads_every_line_as_the_careful_path_does(fast_decoder, line, tmp_path, monkeypatch):
    if fast_decoder != "orjson":
        monkeypatch.setattr(results, "_fast_loads", None)
    fast = _read(tmp_path, line)
    with monkeypatch.context() as careful:
        careful.setattr(results, "plain_line", lambda raw: False)
        assert _read(tmp_path, line) == fast, line


def test_lines_bench_writes_take_the_fast_path():
    """Otherwise a large run loads at the careful path's speed and nothing else would notice."""
    lines = (REFERENCE / "records.jsonl").read_bytes().splitlines()
    assert lines and all(record.plain_line(results.record_line(json.loads(line)).rstrip()) for line in lines)


@pytest.mark.parametrize("text", [
    '"\\u001b[2J"', '"\\ud800"', '"caf\\u00e9"', '"\x7f"', "NaN", "-Infinity", "1e400", "1E+308", "2.5e-999",
    "18446744073709551616", "-9223372036854775809", "[" * 33 + "]" * 33])
def test_lines_the_careful_path_must_read(text):
    assert not record.plain_line((HEAD + text + "}").encode())


def test_what_only_looks_unsafe_inside_a_string_takes_the_fast_path():
    assert record.plain_line((HEAD + '"NaN, Infinity, 1e400, 18446744073709551616, [[[["}').encode())
