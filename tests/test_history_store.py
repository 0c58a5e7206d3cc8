"""`bench publish RUN... --to STORE`: a Parquet dataset pandas reads as it is, runs from folders and .tgz
archives, nothing added twice, each record with its environment, bad input as one line with the store
untouched, two machines kept apart."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import tarfile
from pathlib import Path

import pandas as pd
import pytest

from benchmarks.history_speed import write_history
from harness import results
from harness.cli.main import main
from harness.history import columns
from harness.history import store as store_module
from harness.history.series import TIME_METRICS
from harness.history.store import Store
from harness.report.summary import summary
from harness.store.record import COLUMNS

FIXTURE = Path(__file__).parent / "fixtures" / "runs" / "report-small"


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder` and a digest of its bytes (the lock file aside: opening it is not a change)."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != store_module.LOCK}


def archive(run: Path, out: Path, name: str | None = None) -> Path:
    with tarfile.open(out, "w:gz") as tar:
        tar.add(run, arcname=name or run.name)
    return out


def other_host(run: Path, dest: Path, host: str) -> Path:
    """A copy of `run` as if a second machine had made it: its records' host and hostname changed."""
    shutil.copytree(run, dest)
    lines = []
    for line in (dest / results.RECORDS).read_text().splitlines():
        record = json.loads(line)
        record["host"] = host
        record.setdefault("env", {})["hostname"] = host
        lines.append(json.dumps(record))
    (dest / results.RECORDS).write_text("\n".join(lines) + "\n")
    return dest


def test_publish_writes_a_dataset_pandas_reads_as_it_is(tmp_path, capsys):
    store = tmp_path / "store"
    code, out, err = run_cli(capsys, "publish", str(FIXTURE), "--to", str(store))
    assert code == 0, err
    assert "29 records added" in out
    df = pd.read_parquet(store / "records")
    original = results.load([FIXTURE])
    assert len(df) == len(original) == 29
    assert set(df["machine"].astype(str)) == {Store.open(store).machines()[0]}
    # each record keeps its environment and what identifies its cell
    for column in ("env_git_commit", "env_cpu_model", "env_hostname", "framework_version", "env_versions", "host",
                   "config", "run_started", "cell_id", "steady_epoch_s", "curve"):
        assert column in df.columns
    assert set(df["env_git_commit"]) == set(original["env_git_commit"])
    assert json.loads(df["env_versions"].iloc[0])["numpy"] == original["version_numpy"].iloc[0]
    assert sorted(df["cell_id"]) == sorted(original["cell_id"])


def test_every_record_column_has_a_store_column_and_metrics_match_compare():
    names = {name for name, _ in columns.layout()}
    assert {c.name for c in COLUMNS if c.name != "env"} <= names
    from harness.compare.paired import METRICS

    declared = {c.name for c in COLUMNS}
    assert {m for m in METRICS if m in declared} <= set(TIME_METRICS)
    assert "samples_per_s" not in TIME_METRICS and "steady_epoch_s" in TIME_METRICS


def test_store_rows_come_back_as_the_records_they_were(tmp_path):
    """A run's report rendered from the store is its own report: the records come back as results.load
    gives them, so the summary a report is built from is the same."""
    store = Store.open(tmp_path / "store", create=True)
    from harness.history.sources import read_runs

    store.publish(read_runs([str(FIXTURE)], tmp_path))
    back = columns.to_records_frame(store.read())
    original = results.load([FIXTURE])
    keys = ["config", "steady_epoch_s", "train_s", "time_to_target_s", "metric_value", "status", "message"]
    mine = summary(back).sort_values("config").reset_index(drop=True)[keys]
    theirs = summary(original).sort_values("config").reset_index(drop=True)[keys]
    pd.testing.assert_frame_equal(mine, theirs, check_dtype=False)
    assert back["curve"].map(type).eq(list).any() and "version_numpy" in back


def test_publishing_the_same_run_twice_adds_nothing(tmp_path, capsys):
    store = tmp_path / "store"
    assert run_cli(capsys, "publish", str(FIXTURE), "--to", str(store))[0] == 0
    before = snapshot(store)
    code, out, _ = run_cli(capsys, "publish", str(FIXTURE), "--to", str(store))
    assert code == 0 and "already in the store" in out and "0 records added" in out
    assert snapshot(store) == before


def test_an_archive_made_elsewhere_publishes_the_same_records(tmp_path, capsys):
    tgz = archive(FIXTURE, tmp_path / "run.tgz")
    a, b = tmp_path / "a", tmp_path / "b"
    assert run_cli(capsys, "publish", str(tgz), "--to", str(a))[0] == 0
    assert run_cli(capsys, "publish", str(FIXTURE), "--to", str(b))[0] == 0
    assert Store.open(a).keys() == Store.open(b).keys()
    before = snapshot(a)
    code, out, _ = run_cli(capsys, "publish", str(FIXTURE), "--to", str(a))
    assert code == 0 and "already in the store" in out
    assert snapshot(a) == before
    sources = set(pd.read_parquet(a / "records")["source"])
    assert sources == {"run.tgz:report-small"}


def _truncated(tmp_path: Path) -> Path:
    whole = archive(FIXTURE, tmp_path / "whole.tgz").read_bytes()
    out = tmp_path / "cut.tgz"
    out.write_bytes(whole[: len(whole) // 2])
    return out


def _not_a_run(tmp_path: Path) -> Path:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "readme.txt").write_text("hello")
    return archive(folder, tmp_path / "notes.tgz")


def _random_file(tmp_path: Path) -> Path:
    out = tmp_path / "random.bin"
    out.write_bytes(bytes(range(256)) * 40)
    return out


def _no_records(tmp_path: Path) -> Path:
    run = tmp_path / "empty-run"
    run.mkdir()
    shutil.copy(FIXTURE / results.RUN_FILE, run / results.RUN_FILE)
    return run


def _garbage_records(tmp_path: Path) -> Path:
    run = tmp_path / "garbage-run"
    run.mkdir()
    (run / results.RECORDS).write_text("not json\n{\"a\": 1}\n")
    return run


BAD = {"truncated archive": (_truncated, "not a readable archive"),
       "archive without a run": (_not_a_run, "holds no bench run"),
       "random file": (_random_file, "not a bench run with records"),
       "run folder without records": (_no_records, "has no records"),
       "records that are not records": (_garbage_records, "not a bench run with records")}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_exit_2_and_the_store_unchanged(tmp_path, capsys, case):
    make, message = BAD[case]
    store = tmp_path / "store"
    assert run_cli(capsys, "publish", str(FIXTURE), "--to", str(store))[0] == 0
    before = snapshot(store)
    bad = make(tmp_path)
    # the good run of another machine first: all or nothing, so it is not added either
    second = other_host(FIXTURE, tmp_path / "second", "second-host")
    code, out, err = run_cli(capsys, "publish", str(second), str(bad), "--to", str(store))
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("bench: error: ") and message in err, err
    assert "Traceback" not in err
    assert snapshot(store) == before


def test_a_folder_that_is_not_a_store_is_refused_and_left_alone(tmp_path, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "thesis.tex").write_text("keep me")
    code, _, err = run_cli(capsys, "publish", str(FIXTURE), "--to", str(folder))
    assert code == 2 and "not a bench history store" in err and err.count("\n") == 1
    assert snapshot(folder) == {"thesis.tex": hashlib.sha256(b"keep me").hexdigest()}
    code, _, err = run_cli(capsys, "history", str(tmp_path / "nowhere"))
    assert code == 2 and "no history store" in err


def test_without_pyarrow_publish_says_how_to_get_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    code, _, err = run_cli(capsys, "publish", str(FIXTURE), "--to", str(tmp_path / "store"))
    assert code == 2 and err.count("\n") == 1 and "pip install" in err and "pyarrow" in err
    assert not (tmp_path / "store").exists()


def test_two_machines_are_two_partitions_never_pooled(tmp_path, capsys):
    second = other_host(FIXTURE, tmp_path / "second", "second-host")
    store = tmp_path / "store"
    assert run_cli(capsys, "publish", str(FIXTURE), str(second), "--to", str(store))[0] == 0
    opened = Store.open(store)
    machines = opened.machines()
    assert len(machines) == 2 and any(m.startswith("second-host-") for m in machines)
    df = opened.read()
    per_machine = df.groupby("machine", observed=True)["record_key"].nunique()
    assert per_machine.tolist() == [29, 29]
    code, out, _ = run_cli(capsys, "history", str(store), "--format", "json")
    cells = json.loads(out)["cells"]
    assert {c["machine"] for c in cells} == set(machines)
    for c in cells:  # every point of a series comes from its own machine's records
        mine = df[df["machine"] == c["machine"]]
        assert {p["run_id"] for p in c["points"]} <= set(mine["run_id"])


def test_many_publishes_are_merged_into_one_file_and_a_crash_is_finished(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(store_module, "MAX_FILES", 2)
    runs = write_history(tmp_path / "results", runs=4, cells=4, steps={})
    store = tmp_path / "store"
    for run in runs:
        assert run_cli(capsys, "publish", str(run), "--to", str(store))[0] == 0
    opened = Store.open(store)
    files = opened.files()
    assert len(files) == 2 and any(p.name.startswith(store_module.COMPACT) for p in files)
    assert len(opened.read()) == 16 and len(opened.keys()) == 16
    # A crash after a merged file was renamed in, before the files it replaces were removed: readers of the
    # store drop the duplicates meanwhile, and the next publish finishes the job.
    import pyarrow as pa
    import pyarrow.parquet as pq

    merged = pa.concat_tables([pq.read_table(p).replace_schema_metadata(None) for p in files])
    merged = merged.replace_schema_metadata({store_module.REPLACES: json.dumps([p.name for p in files]).encode()})
    pq.write_table(merged, files[0].with_name(f"{store_module.COMPACT}crash.parquet"))
    assert len(Store.open(store).files()) == 3 and len(Store.open(store).read()) == 16
    assert run_cli(capsys, "publish", str(runs[0]), "--to", str(store))[0] == 0
    assert [p.name for p in Store.open(store).files()] == [f"{store_module.COMPACT}crash.parquet"]
    assert len(Store.open(store).read()) == 16


def test_a_run_from_a_folder_of_runs_and_by_id(tmp_path, capsys):
    runs = write_history(tmp_path / "results", runs=3, cells=2, steps={})
    store = tmp_path / "store"
    code, out, _ = run_cli(capsys, "publish", runs[0].name, "--out", str(tmp_path / "results"), "--to", str(store))
    assert code == 0 and "2 records added" in out
    code, out, _ = run_cli(capsys, "publish", str(tmp_path / "results"), "--to", str(store))
    assert code == 0 and "4 records added" in out and "2 already there" in out


def test_publish_needs_runs_or_a_site(tmp_path, capsys):
    code, _, err = run_cli(capsys, "publish", "--to", str(tmp_path / "s"))
    assert code == 2 and "name runs to publish" in err
    code, _, err = run_cli(capsys, "publish", str(FIXTURE), "--to", str(tmp_path / "s"), "--metric", "accuracy")
    assert code == 2 and "unknown metric" in err


def test_a_store_written_by_a_newer_bench_is_refused(tmp_path, capsys):
    store = tmp_path / "store"
    assert run_cli(capsys, "publish", str(FIXTURE), "--to", str(store))[0] == 0
    (store / store_module.MARKER).write_text(json.dumps({"format": "bench-history", "version": 99}))
    code, _, err = run_cli(capsys, "history", str(store))
    assert code == 2 and "newer bench" in err


def test_records_a_backend_filled_oddly_still_publish(tmp_path, capsys):
    """Objects of any shape in curve/details and keys outside the schema all fit the fixed columns."""
    run = tmp_path / "odd"
    shutil.copytree(FIXTURE, run)
    lines = (run / results.RECORDS).read_text().splitlines()
    record = json.loads(lines[0])
    record.update(details={"nested": {"deep": [1, "two", None]}}, curve=[{"epoch": 1, "odd": "text"}], future_key=7)
    record["cell_id"] = record["cell_id"] + "-odd"
    (run / results.RECORDS).write_text("\n".join([*lines, json.dumps(record)]) + "\n")
    store = tmp_path / "store"
    assert run_cli(capsys, "publish", str(run), "--to", str(store))[0] == 0
    df = pd.read_parquet(store / "records")
    odd = df[df["cell_id"].str.endswith("-odd")].iloc[0]
    assert json.loads(odd["extra"]) == {"future_key": 7}
    assert json.loads(odd["details"])["nested"]["deep"] == [1, "two", None]


def test_an_archive_of_a_results_folder_publishes_every_run_in_it(tmp_path, capsys):
    runs = write_history(tmp_path / "results", runs=3, cells=2, steps={})
    tgz = archive(tmp_path / "results", tmp_path / "all.tar.gz", "results")
    code, out, _ = run_cli(capsys, "publish", str(tgz), "--to", str(tmp_path / "store"))
    assert code == 0 and "6 records added" in out
    assert set(pd.read_parquet(tmp_path / "store" / "records")["run_id"]) == {r.name for r in runs}


def test_a_damaged_data_file_is_named_in_one_line(tmp_path, capsys):
    store = tmp_path / "store"
    assert run_cli(capsys, "publish", str(FIXTURE), "--to", str(store))[0] == 0
    data = Store.open(store).files()[0]
    data.write_bytes(data.read_bytes()[:100])
    code, _, err = run_cli(capsys, "history", str(store))
    assert code == 2 and err.count("\n") == 1 and data.name in err and "not a readable Parquet file" in err
