"""The results store: atomic appends, tolerant loading, schema."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from harness import results


def _record(cell_id: str, **values) -> dict:
    record = {column: None for column in results.SCHEMA}
    record.update({"cell_id": cell_id, "status": "ok", "schema_version": results.SCHEMA_VERSION,
                   "backend": "b", "task": "t", "env": {"cpu_model": "x", "versions": {"numpy": "2.0"}}})
    record.update(values)
    return record


def test_round_trip_keeps_every_column_and_nested_values(tmp_path):
    curve = [{"epoch": 1, "train_s": 0.5, "accuracy": 0.9}]
    results.append_record(tmp_path, _record("a", epoch_s=[0.5, 0.4], curve=curve, metric_value=0.9))
    results.append_record(tmp_path, _record("b", status="error", message="boom"))
    df = results.load([tmp_path])
    assert list(df.cell_id) == ["a", "b"]
    assert set(results.SCHEMA) - {"env"} <= set(df.columns)
    assert df.iloc[0].epoch_s == [0.5, 0.4] and df.iloc[0].curve == curve
    assert df.iloc[0].env_cpu_model == "x" and df.iloc[0].version_numpy == "2.0"
    assert df.iloc[1].message == "boom"


def test_nan_and_infinity_are_stored_as_null(tmp_path):
    results.append_record(tmp_path, _record("a", metric_value=float("nan"), train_s=float("inf")))
    line = (tmp_path / results.RECORDS).read_text()
    assert "NaN" not in line and "Infinity" not in line
    assert pd.isna(results.load([tmp_path]).iloc[0].metric_value)


def test_torn_last_line_is_skipped_with_a_warning_and_next_append_starts_fresh(tmp_path):
    results.append_record(tmp_path, _record("a"))
    with open(tmp_path / results.RECORDS, "ab") as f:
        f.write(results.record_line(_record("torn"))[:40])  # a crash mid-write
    with pytest.warns(UserWarning, match=r"records.jsonl:2: unreadable record \(cut short or corrupt\), skipped"):
        assert list(results.load([tmp_path]).cell_id) == ["a"]
    results.append_record(tmp_path, _record("c"))
    with pytest.warns(UserWarning):
        df = results.load([tmp_path])
    assert list(df.cell_id) == ["a", "c"]
    assert len(df.attrs["problems"]) == 1


def test_garbage_lines_and_foreign_json_are_reported(tmp_path):
    path = tmp_path / results.RECORDS
    path.write_bytes(b'\xff\xfe\x00garbage\n[1, 2]\n{"no": "cell"}\n' + results.record_line(_record("ok")))
    with pytest.warns(UserWarning) as warned:
        df = results.load([path])
    assert list(df.cell_id) == ["ok"]
    assert df.attrs["problems"] == [f"{path}: 3 lines skipped: lines 1, 2, 3 (line 1: not a bench record (not a "
                                    "JSON object))"]
    assert len(warned) == 1  # one line per file, however many lines are bad


def test_a_field_of_the_wrong_kind_is_nulled_and_the_record_kept(tmp_path):
    path = tmp_path / results.RECORDS
    path.write_bytes(results.record_line(_record("a", train_s="fast", details=[1], message="\x1b[31mred")))
    with pytest.warns(UserWarning, match=r"records.jsonl:1: record kept, details is a list, not an object; recorded "
                                         r"as null; train_s is text, not a number; recorded as null"):
        df = results.load([path])
    row = df.iloc[0]
    assert row.cell_id == "a" and pd.isna(row.train_s) and row.details is None
    assert row.message == "\\x1b[31mred"  # text from a file is made printable too


def test_load_all_runs_under_a_root_and_latest(tmp_path):
    for run_id in ("20260101-000000-aaaa", "20260102-000000-bbbb"):
        (tmp_path / run_id).mkdir()
        results.write_json_atomic(tmp_path / run_id / results.RUN_FILE, {"plan": []})
        results.append_record(tmp_path / run_id, _record(run_id))
    assert len(results.load(root=tmp_path)) == 2
    assert results.resolve("latest", tmp_path).name == "20260102-000000-bbbb"
    assert len(results.load(["20260101-000000-aaaa"], root=tmp_path)) == 1


def test_unknown_run_is_a_results_error(tmp_path):
    with pytest.raises(results.ResultsError, match="no run 'nope'"):
        results.load(["nope"], root=tmp_path)
    with pytest.raises(results.ResultsError, match="no runs in"):
        results.resolve("latest", tmp_path)


def test_empty_load_has_the_schema_columns(tmp_path):
    df = results.load(root=tmp_path)
    assert df.empty and "status" in df.columns


def test_run_file_that_is_not_json_is_a_results_error(tmp_path):
    (tmp_path / results.RUN_FILE).write_text("{not json")
    with pytest.raises(results.ResultsError, match="cannot read"):
        results.read_run(tmp_path)


def test_a_record_of_numpy_values_and_non_finite_numbers_is_saved_as_strict_json(tmp_path):
    """What a backend hands over (NumPy scalars and arrays, NaN, infinity, a tuple) is saved as JSON any strict
    parser reads, one line per record: NaN and infinity as null, NumPy values as plain numbers and lists."""
    import numpy as np

    def no_constants(name: str):
        raise AssertionError(f"{name} is not JSON")

    results.append_record(tmp_path, _record("a", train_s=np.float32(1.5), epochs=np.int64(3), steady_epoch_s=np.nan,
                                             epoch_s=np.array([0.5, np.inf]), details={"shape": (2, np.int32(3))}))
    results.append_record(tmp_path, _record("b"))
    lines = (tmp_path / results.RECORDS).read_bytes().splitlines()
    assert len(lines) == 2
    saved = json.loads(lines[0], parse_constant=no_constants)
    assert (saved["train_s"], saved["epochs"], saved["steady_epoch_s"], saved["epoch_s"], saved["details"]) == (
        1.5, 3, None, [0.5, None], {"shape": [2, 3]})
    assert type(saved["epochs"]) is int


def test_gpus_are_found_through_the_driver_where_nvidia_smi_is_missing(tmp_path):
    from harness.measure import envinfo

    (tmp_path / "version").write_text("NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.159.03  Thu Oct 1\n")
    for i, bus in enumerate(("0000:00:05.0", "0000:00:06.0")):
        (tmp_path / "gpus" / bus).mkdir(parents=True)
        (tmp_path / "gpus" / bus / "information").write_text(
            f"Model: \t\t NVIDIA H200\nIRQ:   \t\t 42\nGPU UUID: \t GPU-{i}\n")
    assert envinfo.driver_gpus(tmp_path) == [
        {"index": str(i), "uuid": f"GPU-{i}", "name": "NVIDIA H200", "driver": "580.159.03", "memory": ""}
        for i in range(2)]
    assert envinfo.driver_gpus(tmp_path / "absent") == []


def test_a_long_text_is_cut_once_and_loads_as_it_was_saved():
    from harness.store import record
    from harness.store.safe_text import CUT, MAX_TEXT

    made, _ = record.conform({"cell_id": "c", "status": "error", "message": "\x1b" * 700 + "b" * 5000,
                              "details": {"k" * 3000: ["é" * 2500]}})
    assert len(made["message"]) == MAX_TEXT and made["message"].startswith("\\x1b") and made["message"].endswith(CUT)
    (key, (value,)), = made["details"].items()
    assert len(key) == len(value) == MAX_TEXT
    line = results.record_line(made)
    assert record.conform(json.loads(line)) == (made, [])
