"""`bench compare` on the committed fixture runs, and the Mann-Whitney test it rests on."""

from __future__ import annotations

import json
import math
import shutil
import statistics
from pathlib import Path

import numpy as np
import pytest

from harness import compare, results
from harness.cli import main
from harness.mannwhitney import exact_sf, mann_whitney, midranks, smallest_p

RUNS = Path(__file__).parent / "fixtures" / "runs"
A, B, SMALL = RUNS / "compare-a", RUNS / "compare-b", RUNS / "report-small"
EVIL = "<script>alert(1)</script>"

# (x, y, U of x, two-sided p, method) from scipy.stats.mannwhitneyu 1.17.1 (method="auto").
KNOWN = [
    ([1, 2, 3, 4, 5], [6, 7, 8, 9, 10], 0.0, 0.007936507936507936, "exact"),
    ([1, 2, 3, 4, 5], [1.5, 2.5, 3.5, 4.5, 5.5], 10.0, 0.6904761904761905, "exact"),
    ([1.1, 2.2, 3.3, 4.4], [5, 6, 7, 8, 9, 10, 11, 12, 13], 0.0, 0.002797202797202797, "exact"),
    ([3], [1, 2], 2.0, 0.6666666666666666, "exact"),
    ([0.31, 0.29, 0.35, 0.30, 0.33, 0.28, 0.36, 0.32],
     [0.40, 0.27, 0.38, 0.41, 0.37, 0.39, 0.42, 0.361, 0.45, 0.44, 0.43, 0.46, 0.47, 0.48, 0.49, 0.50, 0.51, 0.52,
      0.53, 0.54], 8.0, 4.311308659134746e-05, "exact"),
    ([1, 2, 2, 3, 3, 3, 4], [3, 4, 4, 5, 5, 6, 7, 8], 3.5, 0.004832240868896149, "asymptotic"),
    (list(range(10)), [3.5 + i for i in range(10)], 21.0, 0.031209012771740218, "asymptotic"),
    ([1, 2, 3, 4, 5, 6, 7, 8, 9], [2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5, 9.5, 10.5], 28.0, 0.28931483238198774,
     "asymptotic"),
    ([5, 5, 5], [5, 5, 5], 4.5, 1.0, "asymptotic"),
]


@pytest.mark.parametrize("x, y, u, p, method", KNOWN)
def test_mann_whitney_matches_known_values(x, y, u, p, method):
    result = mann_whitney(x, y)
    assert result.u == u
    assert result.p == pytest.approx(p, rel=1e-9)
    assert result.method == method


def test_mann_whitney_agrees_with_scipy_on_random_samples():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(7)
    for i in range(400):
        n1, n2 = rng.integers(1, 16, size=2)
        x, y = rng.normal(size=n1), rng.normal(0.8, size=n2)
        if i % 3 == 0:  # ties
            x, y = np.round(x), np.round(y)
        want = stats.mannwhitneyu(x, y)
        got = mann_whitney(x, y)
        assert got.u == want.statistic
        assert got.p == pytest.approx(want.pvalue, rel=1e-9, abs=1e-15)


def test_exact_distribution_and_its_floor():
    assert exact_sf(0, 5, 5) == 1.0
    assert exact_sf(25, 5, 5) == pytest.approx(1 / math.comb(10, 5))
    for u in range(26):  # symmetric about n1*n2/2: P(U >= u) = P(U <= 25 - u) = 1 - P(U >= 26 - u)
        assert exact_sf(u, 5, 5) == pytest.approx(1 - exact_sf(26 - u, 5, 5))
    assert sum(exact_sf(u, 3, 4) - exact_sf(u + 1, 3, 4) for u in range(13)) == pytest.approx(1.0)
    assert smallest_p(5, 5) == pytest.approx(2 / 252)
    assert smallest_p(3, 3) == pytest.approx(0.1)
    ranks, ties = midranks(np.array([3.0, 1.0, 3.0, 2.0]))
    assert list(ranks) == [3.5, 1.0, 3.5, 2.0] and sorted(ties) == [1, 1, 2]


def test_mann_whitney_rejects_empty_or_non_finite_samples():
    with pytest.raises(ValueError):
        mann_whitney([], [1.0])
    with pytest.raises(ValueError):
        mann_whitney([1.0, math.nan], [1.0])


# -- comparing the fixture runs ------------------------------------------------------------

def _side(path: Path) -> compare.Side:
    return compare.Side(path.name, results.load([path]))


def _steady(path: Path, task: str, mode: str) -> list[float]:
    lines = (path / results.RECORDS).read_text().splitlines()
    return [r["steady_epoch_s"] for r in map(json.loads, lines) if (r["task"], r["mode"]) == (task, mode)]


def test_fixture_runs_give_the_expected_verdicts():
    table = compare.compare(_side(A), _side(B))
    verdicts = {(r.task, r.mode): r.verdict for r in table.itertuples()}
    assert verdicts == {("linear_regression", "eager"): "slower", ("linear_regression", "compiled"): "same",
                        ("mnist_mlp", "eager"): "faster"}
    for r in table.itertuples():
        a, b = _steady(A, r.task, r.mode), _steady(B, r.task, r.mode)
        assert (r.n_a, r.n_b) == (5, 5)
        assert r.ratio == pytest.approx(statistics.median(b) / statistics.median(a))
        assert r.p == pytest.approx(mann_whitney(a, b).p)
    slower = table[table.verdict == "slower"].iloc[0]
    assert slower.p == pytest.approx(2 / 252) and slower.ratio > 1.5


def test_swapping_the_runs_swaps_the_verdicts_and_inverts_the_ratios():
    forward = compare.compare(_side(A), _side(B)).set_index(["task", "mode"])
    backward = compare.compare(_side(B), _side(A)).set_index(["task", "mode"])
    swap = {"faster": "slower", "slower": "faster", "same": "same"}
    for key, row in forward.iterrows():
        assert backward.loc[key, "verdict"] == swap[row.verdict]
        assert backward.loc[key, "ratio"] == pytest.approx(1 / row.ratio)


def test_cells_without_values_of_the_metric_are_named_not_tested():
    table = compare.compare(_side(A), _side(B), metric="time_to_target_s")  # mnist_mlp never met its target
    row = table[table.task == "mnist_mlp"].iloc[0]
    assert (row.verdict, row.note) == ("no values", "no time_to_target_s in A and B")
    gated = compare.regressions(table, 1.0)  # "no values" is reported, not gated
    assert list(zip(gated.task, gated["mode"])) == [("linear_regression", "eager")]


def test_another_metric_can_be_compared():
    table = compare.compare(_side(A), _side(B), metric="train_s")
    row = table[(table.task == "linear_regression") & (table["mode"] == "eager")].iloc[0]
    a = [json.loads(l)["train_s"] for l in (A / results.RECORDS).read_text().splitlines()
         if '"mode": "eager"' in l and '"task": "linear_regression"' in l]
    assert row.median_a == pytest.approx(statistics.median(a))
    with pytest.raises(ValueError, match="unknown metric"):
        compare.compare(_side(A), _side(B), metric="samples_per_s")


def test_two_backends_within_a_run_pair_by_everything_but_the_backend():
    df = results.load([SMALL])
    table = compare.compare(compare.Side("fake", df[df.backend == "fake"]), compare.Side(EVIL, df[df.backend == EVIL]),
                            ignore_backend=True)
    rows = {(r.task, r.mode, r.device): r for r in table.itertuples()}
    same = rows[("linear_regression", "eager", "cpu")]
    assert same.verdict == "same" and same.ratio == 1.0
    assert "too few repeats to test (3 vs 3: the smallest possible p is 0.1)" in same.note
    failed = rows[("mnist_mlp", "eager", "cpu")]
    assert failed.verdict == "failed in B" and "synthetic <img" in failed.note
    assert rows[("mnist_mlp", "compiled", "cpu")].verdict == "only in A"
    assert set(table.backend) == {f"fake → {EVIL}"}
    assert list(compare.regressions(table, 1.1).verdict) == ["failed in B"]


# -- the command ---------------------------------------------------------------------------

@pytest.fixture
def root(tmp_path) -> Path:
    for run in (A, B, SMALL):
        shutil.copytree(run, tmp_path / "results" / run.name)
    return tmp_path / "results"


def _compare(root: Path, *args: str) -> int:
    return main(["compare", *args, "--out", str(root)])


def test_cli_exit_codes_gate_on_significant_regressions(root, capsys):
    assert _compare(root, "compare-a", "compare-b") == 0
    out = capsys.readouterr().out
    assert "1 faster, 1 slower, 1 same" in out
    assert _compare(root, "compare-a", "compare-b", "--fail-above", "1.10") == 1
    assert "--fail-above 1.1: 1 regression(s)" in capsys.readouterr().err
    assert _compare(root, "compare-a", "compare-b", "--fail-above", "5") == 0  # slower, but by less than 5×
    assert _compare(root, "compare-b", "compare-a", "--fail-above", "1.10") == 1  # mnist_mlp is slower this way
    assert _compare(root, "compare-b", "compare-a", "--fail-above", "2") == 0
    assert _compare(root, "compare-a", "compare-a", "--fail-above", "1.0") == 0  # a run against itself: all same


def test_cli_gate_fails_on_a_cell_that_newly_fails(root):
    records = root / "compare-b" / results.RECORDS
    lines = [json.loads(l) for l in records.read_text().splitlines()]
    for r in lines:
        if r["task"] == "mnist_mlp":
            r.update(status="error", message="RuntimeError: boom", steady_epoch_s=None)
    records.write_bytes(b"".join(results.record_line(r) for r in lines))
    assert _compare(root, "compare-a", "compare-b") == 0
    assert _compare(root, "compare-a", "compare-b", "--fail-above", "10") == 1


def test_cli_compares_backends_within_a_run_and_writes_json(root, tmp_path):
    out = tmp_path / "cmp.json"
    assert _compare(root, "fake", EVIL, "--run", "report-small", "--format", "json", "--output", str(out)) == 0
    data = json.loads(out.read_text())
    verdicts = {(c["task"], c["mode"], c["device"]): c["verdict"] for c in data["cells"]}
    assert verdicts[("linear_regression", "eager", "cpu")] == "same"
    assert verdicts[("mnist_mlp", "eager", "cpu")] == "failed in B"
    assert _compare(root, "fake", EVIL, "--run", "report-small", "--fail-above", "1.1") == 1


def test_cli_markdown_output(root, capsys):
    assert _compare(root, "compare-a", "compare-b", "--format", "md") == 0
    text = capsys.readouterr().out
    assert text.startswith("### run compare-b (B) against run compare-a (A)")
    rows = [l for l in text.splitlines() if l.startswith("| linear_regression | fake | eager")]
    assert len(rows) == 1 and "| slower |" in rows[0]


@pytest.mark.parametrize("args, message", [
    (["compare-a", "no-such-run"], "no run 'no-such-run'"),
    (["compare-a", "compare-b", "--fail-above", "abc"], "--fail-above must be a number >= 1"),
    (["compare-a", "compare-b", "--fail-above", "0.9"], "--fail-above must be a number >= 1"),
    (["compare-a", "compare-b", "--fail-above", "nan"], "--fail-above must be a number >= 1"),
    (["compare-a", "compare-b", "--metric", "accuracy"], "unknown metric 'accuracy'"),
    (["compare-a", "compare-b", "--alpha", "1.5"], "--alpha must be a number between 0 and 1"),
    (["compare-a", "compare-b", "--format", "html"], "unknown format 'html'"),
    (["fake", "torch", "--run", "report-small"], "unknown backend in run report-small 'torch'"),
    (["fake", "faulty", "--run", "report-small"], "no cell configuration in common"),
])
def test_cli_bad_input_exits_2(root, capsys, args, message):
    assert _compare(root, *args) == 2
    assert message in capsys.readouterr().err


def test_cli_unreadable_or_empty_results_exit_2(root, tmp_path, capsys):
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_bytes(b"\xff\xfenot json\n")
    assert _compare(root, "compare-a", str(garbage)) == 2
    err = capsys.readouterr().err
    assert f"bench: warning: {garbage}:1: not a bench record (not a JSON object), skipped" in err
    assert "has no records" in err
    folder = tmp_path / "broken-run"
    folder.mkdir()
    (folder / results.RUN_FILE).write_text("{}")
    (folder / results.RECORDS).mkdir()  # a records "file" that cannot be read
    assert _compare(root, "compare-a", str(folder)) == 2
    assert "cannot read results file" in capsys.readouterr().err
