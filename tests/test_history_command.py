"""`bench history STORE`: each cell's series, its change points, and the CI gate that names the cell, the
change and the first run after it."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest

from benchmarks.history_speed import write_history
from harness.cli.main import main
from tests.conftest import bench

STEPPED = "torch-linear_regression-compiled-cpu-fp32-adam-b32-e20-lr0.0001-s0"


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """Two stores of 40 runs of 4 cells at a per-process CV of 0.03: one where a cell gets 15% slower from
    run 20 on (with a torch upgrade), one flat."""
    base = tmp_path_factory.mktemp("history")
    made = {}
    for name, steps in (("stepped", {STEPPED: (0.5, 1.15)}), ("flat", {})):
        runs = write_history(base / name / "results", runs=40, cells=4, cv=0.03, steps=steps, seed=1)
        assert main(["publish", str(base / name / "results"), "--to", str(base / name / "store")]) == 0
        made[name] = (base / name / "store", runs)
    return made


def test_the_gate_names_the_cell_the_change_and_the_first_run_after_it(stores, capsys):
    store, runs = stores["stepped"]
    code, out, err = run_cli(capsys, "history", str(store), "--fail-on-regression")
    assert code == 1
    lines = [line for line in err.splitlines() if line.startswith("bench: regression:")]
    assert len(lines) == 1, err
    line = lines[0]
    assert STEPPED in line and re.search(r"\+1[3-7]%", line)
    assert f"from run {runs[20].name}" in line and "torch 2.12.0 -> 2.13.0" in line
    assert "1 regression(s)" in err
    assert "regression" in out


def test_a_flat_history_passes_the_gate(stores, capsys):
    store, _ = stores["flat"]
    code, out, err = run_cli(capsys, "history", str(store), "--fail-on-regression")
    assert code == 0, err
    assert "0 regression(s)" in out and "bench: regression" not in err


def test_undecidable_cells_fail_only_when_asked(stores, capsys):
    store, _ = stores["flat"]
    code, out, _ = run_cli(capsys, "history", str(store), "--threshold", "0.02")
    assert code == 0 and "not decidable" in out and "noise hides steps under" in out
    code, _, err = run_cli(capsys, "history", str(store), "--threshold", "0.02", "--fail-on-undecided")
    assert code == 3 and "not decidable" in err


def test_json_and_csv_hold_the_series_with_commits_and_versions(stores, capsys):
    store, runs = stores["stepped"]
    code, out, _ = run_cli(capsys, "history", str(store), "--format", "json")
    assert code == 0
    doc = json.loads(out)
    cell = next(c for c in doc["cells"] if c["config"] == STEPPED)
    assert cell["verdict"] == "regression" and len(cell["points"]) == 40
    change = cell["changes"][0]
    assert change["first_run_after"]["run_id"] == runs[20].name
    assert change["last_run_before"]["run_id"] == runs[19].name
    assert change["first_run_after"]["framework_version"] == "2.13.0"
    assert {p["commit"] for p in cell["points"]} and all(p["commit"] for p in cell["points"])
    code, out, _ = run_cli(capsys, "history", str(store), "--format", "csv", "--cell", STEPPED)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 40 and {r["config"] for r in rows} == {STEPPED}
    assert [r["run_id"] for r in rows if r["step_ratio"]] == [runs[20].name]


def test_points_and_filters(stores, capsys):
    store, runs = stores["stepped"]
    code, out, _ = run_cli(capsys, "history", str(store), "--cell", STEPPED, "--points")
    assert code == 0 and out.count(runs[20].name) >= 2 and "<- step +" in out
    code, _, err = run_cli(capsys, "history", str(store), "--cell", "no-such-cell")
    assert code == 2 and "match --machine/--cell" in err
    code, out, _ = run_cli(capsys, "history", str(store), "--format", "md", "--noise", "0.3")
    assert code == 0 and out.startswith("### ")


@pytest.mark.parametrize("args, message", [(["--format", "xml"], "unknown format"),
                                           (["--threshold", "5"], "fraction"),
                                           (["--threshold", "-1"], "--threshold must be"),
                                           (["--metric", "samples_per_s"], "unknown metric")])
def test_bad_options_are_one_line_exit_2(stores, capsys, args, message):
    store, _ = stores["flat"]
    code, _, err = run_cli(capsys, "history", str(store), *args)
    assert code == 2 and message in err and err.count("\n") == 1


def test_the_real_command_line_gate(stores):
    """The console script in a fresh process, as CI runs it."""
    store, runs = stores["stepped"]
    done = bench("history", str(store), "--fail-on-regression", "--cell", "torch-linear_regression")
    assert done.returncode == 1 and f"from run {runs[20].name}" in done.stderr


def test_a_calibrated_machine_noise_travels_into_the_store_and_weighs_its_points(tmp_path, capsys):
    """bench calibrate's figure for a host, in the results folder publish reads, is carried into the store
    (same CPU model only) and used where runs have one repeat: the points then count as that noisy."""
    import math

    from harness.history.store import Store
    from harness.store import calibration

    results = tmp_path / "results"
    write_history(results, runs=20, cells=2, cv=0.03, steps={}, seed=3)
    cpu = json.loads(next(results.glob("*/run.json")).read_text())["env"]["cpu_model"]
    quiet = tmp_path / "quiet"
    assert main(["publish", str(results), "--to", str(quiet)]) == 0
    calibration.save(results, "bench-a", {"host": "bench-a", "cpu_model": "another CPU", "between_cv": 0.3})
    other = tmp_path / "other"
    assert main(["publish", str(results), "--to", str(other), "--out", str(results)]) == 0
    assert not (other / "calibration").exists()  # measured on other hardware under the same host name
    calibration.save(results, "bench-a", {"host": "bench-a", "cpu_model": cpu, "between_cv": 0.3})
    noisy = tmp_path / "noisy"
    capsys.readouterr()
    assert main(["publish", str(results), "--to", str(noisy), "--out", str(results)]) == 0
    assert "bench calibrate noise figure is in the store" in capsys.readouterr().out
    machine = Store.open(noisy).machines()[0]
    assert (noisy / "calibration" / f"{machine}.json").is_file()
    sd = {}
    for name, store in (("quiet", quiet), ("noisy", noisy)):
        code, out, _ = run_cli(capsys, "history", str(store), "--format", "json")
        sd[name] = json.loads(out)["cells"][0]["noise_sd_log"]
    assert sd["noisy"] >= math.sqrt(math.log1p(0.09)) > 3 * sd["quiet"]


@pytest.mark.slow
def test_any_field_null_or_odd_publishes_analyses_and_builds_a_site(tmp_path, capsys):
    """As tests/test_record_consumers.py asks of the reports: every field of every record of a run forged
    (one odd value per field, cycling through null, empty, negative, huge, NaN, wrong kinds), and publish,
    history and the site still finish, or refuse in one line, never with a traceback."""
    from harness import results
    from harness.store import record
    from tests.test_record_consumers import FIXTURE, FORGED

    cases = [(field, FORGED[n % len(FORGED)]) for n, field in enumerate(sorted(record.SCHEMA))]
    cases.append(("steady_epoch_s", 1e308))  # every point of a series the same huge number: the chart's axis
    for n, (field, value) in enumerate(cases):
        run = tmp_path / f"run-{n}"
        run.mkdir()
        forged = [{**r, field: value} for r in FIXTURE]
        (run / results.RECORDS).write_text("\n".join(json.dumps(r) for r in forged) + "\n")
        store, site = tmp_path / f"store-{n}", tmp_path / f"site-{n}"
        for args in (["publish", str(run), "--to", str(store)], ["history", str(store), "--format", "json"],
                     ["publish", "--to", str(store), "--site", str(site), "--full-reports", "none"]):
            code = main(args)
            _, err = capsys.readouterr()
            assert code in (0, 2), (field, value, args, err)
            assert "Traceback" not in err and (code == 0 or err.count("\n") == 1), (field, value, args, err)
