"""`bench compare`: its statistics on synthetic samples and fixture runs, and its gate on real runs of a backend
whose slowdown is known."""

from __future__ import annotations

import json
import math
import shutil
import statistics
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from benchmarks.repeats_needed import gate_outcome, simulate, spreads, synthetic_side
from harness import results
from harness.cli.main import main
from harness.compare import paired as compare
from tests.conftest import bench

RUNS = Path(__file__).parent / "fixtures" / "runs"
A, B, SMALL = RUNS / "compare-a", RUNS / "compare-b", RUNS / "report-small"
EVIL = "<script>alert(1)</script>"


# -- comparing the fixture runs ------------------------------------------------------------

def _side(path: Path) -> compare.Side:
    return compare.Side(path.name, results.load([path]))


def _steady(path: Path, task: str, mode: str) -> list[float]:
    lines = (path / results.RECORDS).read_text().splitlines()
    return [r["steady_epoch_s"] for r in map(json.loads, lines) if (r["task"], r["mode"]) == (task, mode)]


def _gmean(values) -> float:
    return math.exp(statistics.fmean(math.log(v) for v in values))


def test_fixture_runs_give_the_expected_verdicts():
    table = compare.compare(_side(A), _side(B), slow_mode=None)  # every process: the statistics checked by scipy
    verdicts = {(r.task, r.mode): r.verdict for r in table.itertuples()}
    assert verdicts == {("linear_regression", "eager"): "slower", ("linear_regression", "compiled"): "inconclusive",
                        ("mnist_mlp", "eager"): "faster"}
    for r in table.itertuples():
        a, b = _steady(A, r.task, r.mode), _steady(B, r.task, r.mode)
        assert (r.n_a, r.n_b) == (5, 5)
        assert r.ratio == pytest.approx(_gmean(b) / _gmean(a))
        welch = stats.ttest_ind(np.log(b), np.log(a), equal_var=False)
        assert r.p == pytest.approx(welch.pvalue)
        assert r.ci_low < r.ratio < r.ci_high
    undecided = table[table.verdict == "inconclusive"].iloc[0]
    assert undecided.ci_low < 1 < undecided.ci_high and "would decide it" in undecided.note


def test_swapping_the_runs_swaps_the_verdicts_and_inverts_the_ratios():
    forward = compare.compare(_side(A), _side(B)).set_index(["task", "mode"])
    backward = compare.compare(_side(B), _side(A)).set_index(["task", "mode"])
    swap = {"faster": "slower", "slower": "faster", "same": "same", "inconclusive": "inconclusive"}
    for key, row in forward.iterrows():
        assert backward.loc[key, "verdict"] == swap[row.verdict]
        assert backward.loc[key, "ratio"] == pytest.approx(1 / row.ratio)
        assert backward.loc[key, "ci_low"] == pytest.approx(1 / row.ci_high)


# -- the statistics on synthetic samples -----------------------------------------------------

def _run_like(rng: np.random.Generator, scale: float, repeats: int, between: float) -> list[float]:
    """steady_epoch_s of `repeats` processes: each process has its own speed (`between`: the spread between
    processes, as on a drifting VM), each epoch 3% noise; the value is the median of 4 steady epochs, as the
    worker records it."""
    out = []
    for _ in range(repeats):
        process = scale * math.exp(rng.normal(0, between))
        out.append(float(np.median(process * np.exp(rng.normal(0, 0.03, size=4)))))
    return out


def _outcomes(first_seed: int, scale: float, repeats: int, between: float) -> list[str]:
    rngs = (np.random.default_rng(first_seed + i) for i in range(20))
    return [gate_outcome(_run_like(rng, 1.0, repeats, between), _run_like(rng, scale, repeats, between), 1.10)
            for rng in rngs]


def test_no_change_raises_at_most_one_false_alarm_in_twenty_seeded_pairs():
    # 5% between processes is this VM on a bad day; at --repeat 3 that is often too noisy to decide, never a failure.
    assert _outcomes(0, 1.0, repeats=3, between=0.05).count("fail") <= 1


def test_the_gate_decides_no_change_and_a_25_percent_slowdown_on_a_quiet_machine():
    unchanged = _outcomes(0, 1.0, repeats=5, between=0.02)
    slower = _outcomes(100, 1.25, repeats=5, between=0.02)
    assert unchanged.count("pass") >= 19, unchanged  # a gate that never passes is no gate
    assert slower.count("fail") >= 19, slower


@pytest.mark.parametrize("a, b, verdict, note", [
    ([1.0, 1.01, 0.99], [1.0, 1.0, 1.01], "same", "within ±5%"),
    ([1.0, 1.2, 0.8], [1.0, 1.25, 0.85], "inconclusive", "the interval includes 1 and is wider than ±5%"),
    ([1.0], [1.3], "inconclusive", "1 vs 1 repeats: the spread between processes is unknown"),
    # Repeats that agree exactly have not measured the machine's noise: no zero-width interval, no p = 0.
    ([1.0, 1.0, 1.0], [1.0, 1.0, 1.0], "inconclusive", "every repeat of A and B gave the same value"),
    ([2.0, 2.0], [1.0, 1.0], "inconclusive", "every repeat of A and B gave the same value"),
    # Significant but within the tolerance is no verdict of faster or slower: a 1% shift with a tight interval.
    ([1.000, 1.001, 0.999, 1.0005, 0.9995], [1.010, 1.011, 1.009, 1.0105, 1.0095], "same", "within ±5%"),
    ([1.0, 1.001, 0.999], [1.035, 1.055, 1.045], "inconclusive", "a difference, but not shown beyond ±5%"),
])
def test_verdicts_on_small_samples(a, b, verdict, note):
    row = compare.compare(synthetic_side("a", a), synthetic_side("b", b)).iloc[0]
    assert row.verdict == verdict and row.note.startswith(note), (row.verdict, row.note)
    if verdict != "same":
        assert row.verdict not in ("faster", "slower")


@pytest.mark.parametrize("a, b, verdict", [([1.0, 1.0, 1.0], [1.0, 1.0, 1.0], "same"),
                                           ([2.0, 2.0], [1.0, 1.0], "faster")])
def test_identical_repeats_are_tested_against_the_machines_measured_noise(a, b, verdict):
    row = compare.compare(synthetic_side("a", a), synthetic_side("b", b), noise=0.02).iloc[0]
    assert row.verdict == verdict and row.ci_low < row.ci_high and 0 < row.p <= 1


def test_processes_in_the_machines_slow_mode_are_set_aside_and_counted():
    """Whole processes 1.9x slower (this VM's slow mode) hide a 25% slowdown and an unchanged cell alike when they
    are tested with the others; set aside, both are decided, and the note says how many were."""
    a = [1.0, 1.02, 0.98, 1.01, 1.9]
    same = compare.compare(synthetic_side("a", a), synthetic_side("b", [0.99, 1.01, 1.9, 1.0, 1.02])).iloc[0]
    assert same.verdict == "same" and same.n_a == 4 and same.n_b == 4, (same.verdict, same.note)
    assert "slow-mode processes set aside: A 1 of 5, B 1 of 5" in same.note
    slower = compare.compare(synthetic_side("a", a), synthetic_side("b", [1.25, 1.27, 1.24, 2.4, 1.26]))
    assert slower.iloc[0].verdict == "slower" and len(compare.gate(slower, 1.10)[0]) == 1
    # The negative control: every process tested, the same two comparisons decide nothing.
    for b in ([0.99, 1.01, 1.9, 1.0, 1.02], [1.25, 1.27, 1.24, 2.4, 1.26]):
        kept = compare.compare(synthetic_side("a", a), synthetic_side("b", b), slow_mode=None).iloc[0]
        assert kept.verdict == "inconclusive" and "set aside" not in kept.note


def test_a_cell_that_became_flaky_fails_the_gate_and_is_named():
    """B: 3 ok and 2 failed repeats, A: 5 ok, the ok ones alike: not `same`, but a regression the gate names."""
    a = synthetic_side("a", [1.0, 1.01, 0.99, 1.0, 1.02])
    b = synthetic_side("b", [1.0, 1.01, 0.99, None, None])
    b.records.loc[3:, "status"] = "error"
    b.records.loc[3:, "message"] = "RuntimeError: boom"
    table = compare.compare(a, b)
    row = table.iloc[0]
    assert row.verdict == "failed in B" and row.note.startswith("2 of 5 repeats failed in B, none of 5 in A"), row.note
    failing, undecided = compare.gate(table, 1.10)
    assert list(failing["config"]) == [row.config] and undecided.empty
    assert compare.compare(b, a).iloc[0].verdict == "failed in A"  # the other way round: informative, not gated
    assert compare.gate(compare.compare(b, a), 1.10)[0].empty


@pytest.mark.parametrize("metric", ["steady_epoch_s", "train_s"])
def test_every_legend_names_the_metric_compared(metric):
    table = compare.compare(synthetic_side("a", [1.0, 1.1], metric), synthetic_side("b", [1.0, 1.2], metric),
                            metric=metric)
    for fmt in ("table", "md", "json"):
        text = compare.render(table, fmt, "t", metric=metric)
        assert f"Compared: {metric}." in text
        other = "train_s" if metric == "steady_epoch_s" else "steady_epoch_s"
        assert f"Compared: {other}" not in text and ("median steady epoch" in text) == (metric == "steady_epoch_s")


def test_one_epoch_cells_are_inconclusive_and_say_what_would_decide():
    one_epoch = [None, None, None]
    row = compare.compare(synthetic_side("a", one_epoch), synthetic_side("b", one_epoch)).iloc[0]
    assert row.verdict == "inconclusive" and "--epochs 3 --repeat 3" in row.note
    failing, undecided = compare.gate(
        compare.compare(synthetic_side("a", one_epoch), synthetic_side("b", one_epoch)), 1.1)
    assert (len(failing), len(undecided)) == (0, 1)


def test_milliseconds_metrics_are_shown_as_milliseconds():
    table = compare.compare(synthetic_side("a", [12.0, 12.5], "step_ms_p50"),
                            synthetic_side("b", [12.1, 12.2], "step_ms_p50"), metric="step_ms_p50")
    header, rows = compare.display(table, "step_ms_p50")
    assert rows[0][header.index("A")] == "12.2 ms"


def test_cells_without_values_of_the_metric_are_named_not_tested():
    table = compare.compare(_side(A), _side(B), metric="time_to_target_s")  # mnist_mlp never met its target
    row = table[table.task == "mnist_mlp"].iloc[0]
    assert (row.verdict, row.note) == ("no values", "no time_to_target_s in A and B")
    failing, undecided = compare.gate(table, 1.0)  # "no values" is reported, not gated
    assert "mnist_mlp" not in set(failing.task) | set(undecided.task)


def test_another_metric_can_be_compared():
    table = compare.compare(_side(A), _side(B), metric="train_s")
    row = table[(table.task == "linear_regression") & (table["mode"] == "eager")].iloc[0]
    a = [json.loads(l)["train_s"] for l in (A / results.RECORDS).read_text().splitlines()
         if '"mode": "eager"' in l and '"task": "linear_regression"' in l]
    assert row.mean_a == pytest.approx(_gmean(a))
    with pytest.raises(ValueError, match="unknown metric"):
        compare.compare(_side(A), _side(B), metric="samples_per_s")


def test_two_backends_within_a_run_pair_by_everything_but_the_backend():
    df = results.load([SMALL])
    table = compare.compare(compare.Side("fake", df[df.backend == "fake"]), compare.Side(EVIL, df[df.backend == EVIL]),
                            ignore_backend=True, slow_mode=None)
    rows = {(r.task, r.mode, r.device): r for r in table.itertuples()}
    same = rows[("linear_regression", "eager", "cpu")]  # the same three values on both sides, 20% apart
    assert same.verdict == "inconclusive" and same.ratio == pytest.approx(1.0) and same.ci_low < 1 < same.ci_high
    failed = rows[("mnist_mlp", "eager", "cpu")]
    assert failed.verdict == "failed in B" and "synthetic <img" in failed.note
    assert rows[("mnist_mlp", "compiled", "cpu")].verdict == "only in A"
    assert set(table.backend) == {f"fake → {EVIL}"}
    failing, undecided = compare.gate(table, 1.1)
    assert list(failing.verdict) == ["failed in B"] and list(undecided.verdict) == ["inconclusive"]


# -- the command ---------------------------------------------------------------------------

@pytest.fixture
def root(tmp_path) -> Path:
    for run in (A, B, SMALL):
        shutil.copytree(run, tmp_path / "results" / run.name)
    return tmp_path / "results"


def _compare(root: Path, *args: str) -> int:
    return main(["compare", *args, "--out", str(root)])


def test_cli_exit_codes_gate_on_significant_regressions(root, capsys):
    every = "--all-processes"  # the fixture's figures below are Welch's on all five processes a side
    assert _compare(root, "compare-a", "compare-b", every) == 0
    out = capsys.readouterr().out
    assert "1 faster, 1 slower, 1 inconclusive" in out and "slow mode" not in out
    assert _compare(root, "compare-a", "compare-b", "--fail-above", "1.10", every) == 1
    assert "--fail-above 1.1: 1 regression(s), 1 undecided" in capsys.readouterr().err
    assert _compare(root, "compare-a", "compare-b", "--fail-above", "7", every) == 0  # every interval lies below 7×
    # linear_regression eager is 3.7× slower, its interval 2.06–6.68 spans 5: the gate cannot decide.
    assert _compare(root, "compare-a", "compare-b", "--fail-above", "5", every) == 3
    captured = capsys.readouterr()
    assert "0 regression(s), 1 undecided (exit 3; --accept-inconclusive to pass them)" in captured.err
    assert "spans 5; about --repeat" in captured.out
    assert _compare(root, "compare-a", "compare-b", "--fail-above", "5", "--accept-inconclusive", every) == 0
    assert _compare(root, "compare-b", "compare-a", "--fail-above", "1.10", every) == 1  # mnist_mlp: slower this way
    # By default the processes beyond 1.3x their side's median are set aside, and the table says so.
    assert _compare(root, "compare-a", "compare-b", "--fail-above", "1.10", "--format", "md") == 1
    out = capsys.readouterr().out
    assert "slow-mode processes set aside" in out and "less those slower than 1.3x" in out
    assert _compare(root, "compare-b", "compare-a", "--fail-above", "2") == 0
    # A run against itself: every ratio is 1, but noise keeps the intervals from proving "not above 1.0".
    assert _compare(root, "compare-a", "compare-a", "--fail-above", "1.0") == 3
    assert _compare(root, "compare-a", "compare-a", "--fail-above", "3") == 0


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
    assert verdicts[("linear_regression", "eager", "cpu")] == "inconclusive"
    assert verdicts[("mnist_mlp", "eager", "cpu")] == "failed in B"
    assert "Welch" in data["method"]
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
    (["compare-a", "compare-b", "--accept-inconclusive"], "--accept-inconclusive goes with --fail-above"),
    (["compare-a", "compare-b", "--tolerance", "-1"], "--tolerance must be a number >= 0"),
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


# -- the gate on real runs of a backend whose slowdown is known -------------------------------

def _paced_run(plugin_site, out: Path, slowdown: float, repeat: int, epochs: int) -> Path:
    before = set(results.run_dirs(out))
    run = bench("run", "--backend", "paced", "--task", "linear_regression", "--repeat", str(repeat), "--epochs",
                str(epochs), "--out", str(out), env=plugin_site.env(BENCH_TEST_SLOWDOWN=str(slowdown)))
    assert run.returncode == 0, run.stderr
    (new,) = set(results.run_dirs(out)) - before
    return new


def test_gate_on_real_runs_fails_a_25_percent_slowdown_and_passes_no_change(plugin_site, tmp_path):
    plugin_site.install("bench-paced", "bench_paced", "from tests.paced import PacedBackend, bench_backends\n",
                        {"paced": "bench_paced"})
    out = tmp_path / "results"
    base = _paced_run(plugin_site, out, 1.0, repeat=3, epochs=5)
    slower = _paced_run(plugin_site, out, 1.25, repeat=3, epochs=5)
    again = _paced_run(plugin_site, out, 1.0, repeat=3, epochs=5)
    env = plugin_site.env()

    gated = bench("compare", base.name, slower.name, "--fail-above", "1.10", "--format", "json", "--out", str(out),
                  env=env)
    assert gated.returncode == 1, gated.stderr
    (cell,) = json.loads(gated.stdout)["cells"]
    assert cell["verdict"] == "slower" and 1.10 < cell["ci_low"] < cell["ratio"] < cell["ci_high"], cell
    assert cell["ratio"] == pytest.approx(1.25, rel=0.05)

    unchanged = bench("compare", base.name, again.name, "--fail-above", "1.10", "--out", str(out), env=env)
    assert unchanged.returncode == 0, unchanged.stdout + unchanged.stderr

    short_a = _paced_run(plugin_site, out, 1.0, repeat=1, epochs=1)
    short_b = _paced_run(plugin_site, out, 1.25, repeat=1, epochs=1)
    short = bench("compare", short_a.name, short_b.name, "--fail-above", "1.10", "--format", "json", "--out", str(out),
                  env=env)
    assert short.returncode == 3, short.stderr
    assert json.loads(short.stdout)["cells"][0]["verdict"] == "inconclusive"


def test_repeats_needed_reads_the_spread_between_processes_and_simulates_the_gate():
    table = spreads(results.load([A]), "steady_epoch_s")
    eager = table[table.index.str.startswith("fake-mnist_mlp-eager")].iloc[0]
    logs = np.log(_steady(A, "mnist_mlp", "eager"))
    assert eager.repeats == len(logs) and eager.sd_log == pytest.approx(np.std(logs, ddof=1))
    quiet_same, quiet_slow = (simulate(0.01, 5, scale, 1.10, trials=40, seed=1) for scale in (1.0, 1.25))
    assert quiet_same["pass"] >= 0.9 and quiet_slow["fail"] >= 0.9
    noisy_slow = simulate(0.5, 3, 1.25, 1.10, trials=40, seed=1)  # far noisier than the slowdown: never decided
    assert noisy_slow["fail"] <= 0.1 and noisy_slow["undecided"] >= 0.9
