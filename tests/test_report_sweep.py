"""Reports of a sweep: the whole-column summary gives what a plain per-group computation gives, and
above ROW_LIMIT configurations every format shows a digest (and says so) instead of a row and a line
per configuration. How fast this is lives in benchmarks/report_speed.py, not here."""

from __future__ import annotations

import io
import json
import re
import statistics

import numpy as np
import pandas as pd
import pytest

from benchmarks.report_speed import synthetic_records
from harness import results
from harness.measure import stats
from harness.report.html import MAX_LINES
from harness.report.render import render
from harness.report.summary import bootstrap_ci_rows, summary
from harness.report.tables import ROW_LIMIT
from tests.test_report import rich_tables


def _frame(records: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([results.flatten(r) for r in records])


@pytest.fixture(scope="module")
def sweep() -> pd.DataFrame:
    """1,000 configurations, one record each, some failed."""
    return _frame(synthetic_records(1000, "sweep"))


@pytest.fixture(scope="module")
def repeated() -> pd.DataFrame:
    """40 configurations with 1 to 4 repeats each and mixed outcomes (ok, oom, error)."""
    rng = np.random.default_rng(1)
    records = []
    for i, base in enumerate(synthetic_records(40, "rep")):
        for repeat in range(1 + i % 4):
            r = dict(base, repeat=repeat, cell_id=base["cell_id"][:-1] + str(repeat))
            if base["status"] == "ok":
                r.update(train_s=base["train_s"] * float(rng.uniform(0.8, 1.2)),
                         cold_start_s=float(rng.uniform(2, 5)))
                if i % 5 == 1 and repeat == 1:
                    r.update(status="oom", message="worker killed by SIGKILL", train_s=None)
            records.append(r)
    return _frame(records)


def _plain(df: pd.DataFrame) -> dict[str, dict]:
    """The summary figures computed the slow, obvious way: one configuration at a time."""
    out = {}
    for config in df["cell_id"].str.replace(r"-r\d+$", "", regex=True).unique():
        group = [r for r in df.to_dict("records") if re.sub(r"-r\d+$", "", r["cell_id"]) == config]
        ok = [r for r in group if r["status"] == "ok"]
        train = [r["train_s"] for r in ok]
        statuses = sorted({r["status"] for r in group}, key=lambda s: (s != "ok", s))
        out[config] = {
            "repeats": len(group), "ok": len(ok),
            "status": statuses[0] if len(statuses) == 1 else ", ".join(
                f"{s} {sum(r['status'] == s for r in group)}/{len(group)}" for s in statuses),
            "train_s": statistics.median(train) if train else None,
            "train_s_cv": stats.cv(train), "train_s_iqr": stats.iqr(train) if train else None,
            "ci": stats.bootstrap_ci(train),
            "cold_start_s": statistics.median(r["cold_start_s"] for r in ok) if ok else None,
            "peak_host_mb": max(r["peak_host_mb"] for r in ok) if ok else None,
            "target_met": sum(r["target_met"] is True for r in ok),
        }
    return out


def test_summary_matches_a_per_configuration_computation(repeated):
    s = summary(repeated).set_index("config")
    expected = _plain(repeated)
    assert sorted(s.index) == sorted(expected)
    for config, want in expected.items():
        row = s.loc[config]
        assert (row.repeats, row.ok, row.status) == (want["repeats"], want["ok"], want["status"]), config
        assert row.target_met == want["target_met"]
        for key in ("train_s", "train_s_cv", "train_s_iqr", "cold_start_s", "peak_host_mb"):
            if want[key] is None:
                assert pd.isna(row[key]), (config, key)
            else:
                assert row[key] == pytest.approx(want[key]), (config, key)
        got_ci = None if pd.isna(row.train_s_ci_low) else (row.train_s_ci_low, row.train_s_ci_high)
        assert got_ci == (pytest.approx(want["ci"]) if want["ci"] else None), config
    assert (s["message"][s["status"].str.contains("oom")] == "worker killed by SIGKILL").all()


def test_batched_bootstrap_is_the_single_group_bootstrap(monkeypatch):
    monkeypatch.setattr("harness.report.summary.BOOTSTRAP_CHUNK", 2 * 2000 * 5)  # two groups at a time
    values = np.random.default_rng(3).lognormal(size=(7, 5))
    batched = bootstrap_ci_rows(values)
    for row, ci in zip(values, batched):
        assert tuple(ci) == pytest.approx(stats.bootstrap_ci(list(row)))


def test_a_sweep_shows_a_digest_in_every_format_and_says_so(sweep):
    s = summary(sweep)
    assert len(s) == 1000 > ROW_LIMIT
    md = render(sweep, "md")
    assert "1,000 configurations: more than 60, so tables and charts show a digest" in md
    table_rows = [line for line in md.splitlines() if line.startswith("| ")]
    assert len(table_rows) < 3 * ROW_LIMIT
    assert "#### Per backend: every configuration summarised" in md
    shown = re.search(r"#### Fastest and slowest configurations of each task \((\d+) of 1,000\)", md)
    assert shown and int(shown.group(1)) <= ROW_LIMIT

    text = render(sweep, "table", width=120, full=True)
    assert "1,000 configurations: more than 60" in " ".join(text.split())
    assert len(text.splitlines()) < 400
    overview = rich_tables(text)[0]
    assert overview[1][:3] == ["backend", "mode", "device"] and len(overview[2]) == 6  # 3 backends × 2 modes

    page = render(sweep, "html")
    assert "1,000 configurations: more than 60" in page
    assert len(page) < 400_000
    assert page.count("<tr") < 4 * ROW_LIMIT
    for chart in re.findall(r"<svg.*?</svg>", page, re.S):  # each backend setting's fastest: 6 per task
        assert chart.count("<polyline") <= MAX_LINES and chart.count("</rect>") <= 6 * 3

    cells = json.loads(render(sweep, "json"))["cells"]
    assert len(cells) == len(pd.read_csv(io.StringIO(render(sweep, "csv")))) == 1000


def test_the_digest_keeps_the_fastest_and_slowest_and_every_failure(sweep):
    s = summary(sweep)
    md = render(sweep, "md")
    for task, group in s[s["ok"] > 0].groupby("task"):
        fastest = group.sort_values("train_s").iloc[0]
        slowest = group.sort_values("train_s").iloc[-1]
        for row in (fastest, slowest):
            assert f"| {task} | {row.backend} | {row['mode']} | cpu | {row.batch_size} | {row.lr:.4g} |" in md
    failed = int((s["ok"] == 0).sum())
    counts = [int(m) for m in re.findall(r"\| error \| (\d+) \|", md)]
    assert failed and sum(counts) == failed


def test_a_small_run_lists_every_configuration():
    df = _frame(synthetic_records(ROW_LIMIT, "small"))
    md = render(df, "md")
    assert "digest" not in md and "#### Results" in md
    results_table = md.split("#### Results")[1].split("####")[0]
    assert len([line for line in results_table.splitlines() if line.startswith("| ")]) == ROW_LIMIT + 1
