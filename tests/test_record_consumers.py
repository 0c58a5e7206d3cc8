"""Every consumer of a record takes any field null or of the wrong kind without a traceback: the progress lines
(which see a record as the runner saved it, after the schema nulled what was of the wrong kind), every report
format, compare with its gate, the Keras-cost view, the busy-machine line and the time-left estimate (which
read records from files, through harness.results.load)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import results
from harness.compare import paired as compare
from harness.report.busy import busy_line
from harness.report.keras_cost import keras_cost
from harness.report.render import FORMATS, render
from harness.report.summary import summary
from harness.run.estimate import Estimates
from harness.run.progress import ConsoleProgress
from harness.store import record
from tests.strategies import JSON_VALUES

RUNS = Path(__file__).parent / "fixtures" / "runs"
FIXTURE = [json.loads(line) for line in (RUNS / "report-small" / "records.jsonl").read_text().splitlines()]
FIELDS = sorted(record.SCHEMA)
FORGED = [None, "", "fast", -1, 0, 1e308, float("nan"), True, [], [1, "x"], {}, {"a": None}]


def _with_keras(records: list[dict]) -> list[dict]:
    """The fixture plus a keras-jax/jax pair of one cell, so that the Keras-cost view has rows to build."""
    ok = next(r for r in records if r.get("status") == "ok")
    return [*records, *({**ok, "backend": name, "cell_id": f"{name}-" + ok["cell_id"].split("-", 1)[1]}
                        for name in ("keras-jax", "jax"))]


RECORDS = _with_keras(FIXTURE)


def _consume(records: list[dict], tmp_path: Path) -> None:
    """Every consumer, on these records as the runner saves them and as reports read them back."""
    saved = [record.conform(r)[0] for r in records]  # what make_record hands on: wrong kinds nulled
    progress = ConsoleProgress(io.StringIO(), Estimates({r.get("cell_id"): 1.0 for r in saved
                                                         if isinstance(r.get("cell_id"), str)}))
    for i, r in enumerate(saved):
        progress.cell_finished(i + 1, len(saved), r)
    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    (run / results.RECORDS).write_bytes(b"".join(json.dumps(r, default=str).encode() + b"\n" for r in records))
    df = results.load([run])
    for fmt in FORMATS:
        assert isinstance(render(df, fmt, width=80), str)
    render(df, "table", width=80, full=True)
    side = compare.Side("a", df)
    table = compare.compare(side, compare.Side("b", df), noise=0.05)
    compare.gate(table, 1.10)
    for fmt in compare.FORMATS:
        compare.render(table, fmt, "t")
    keras_cost(summary(df))
    busy_line(df)
    Estimates.for_cells([], run)


CHUNK = 10  # fields per pass: each record of the pass gets one of them forged, the rest of it left intact


@pytest.mark.parametrize("start", range(0, len(FIELDS), CHUNK))
def test_each_field_nulled_and_forged_in_a_record_of_its_own(start, tmp_path):
    """Record j of a pass has field FIELDS[start + j % CHUNK] set to None, text or a list in turn, so that each
    field is nulled and forged (three times over, in different records) with every other field as it was."""
    fields = FIELDS[start:start + CHUNK]
    forged = [None, "fast", [1, "x"]]
    records = [{**r, fields[j % len(fields)]: forged[(j // len(fields)) % 3]} for j, r in enumerate(RECORDS)]
    assert len(RECORDS) >= 3 * len(fields)  # every field of the pass gets each of the three
    _consume(records, tmp_path)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.lists(st.tuples(st.sampled_from(FIELDS), st.one_of(st.sampled_from(FORGED), JSON_VALUES)),
                        max_size=6),
       which=st.integers(0, len(FIXTURE) + 1))
def test_any_fields_of_any_record_forged_at_once(changes, which, tmp_path):
    records = [dict(r) for r in RECORDS]
    for field, value in changes:
        records[which % len(records)][field] = value
    _consume(records, tmp_path)
