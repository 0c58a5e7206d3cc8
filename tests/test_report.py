"""Reports from the committed fixture run: each format puts the right numbers in the right cells,
shows why cells failed, and escapes what comes from results."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import statistics
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from harness import results
from harness.cli.main import main
from harness.report.format import fmt_mb, fmt_rate, fmt_seconds, md_escape
from harness.report.html import CSP
from harness.report.plots import Line, Scale, bar_chart, line_chart
from harness.report.render import render
from harness.report.summary import summary, varying_keys
from harness.report.tables import Section

RUNS = Path(__file__).parent / "fixtures" / "runs"
SMALL = RUNS / "report-small"
REFERENCE_RUN = sorted((Path(__file__).resolve().parents[1] / "results").glob("reference-cpu-*"))[-1]
EVIL = "<script>alert(1)</script>"
EVIL_MESSAGE = 'RuntimeError: synthetic <img src=x onerror=alert(2)> & "quoted"'


@pytest.fixture(scope="module")
def df() -> pd.DataFrame:
    return results.load([SMALL])


@pytest.fixture(scope="module")
def raw() -> list[dict]:
    """The fixture's records as plain JSON, to compute expectations without the code under test."""
    return [json.loads(line) for line in (SMALL / results.RECORDS).read_text().splitlines()]


def _cell(raw, backend, task, mode, device="cpu"):
    return [r for r in raw if (r["backend"], r["task"], r["mode"], r["device"]) == (backend, task, mode, device)]


def _expected(raw, backend, task, mode, device="cpu") -> dict:
    records = [r for r in _cell(raw, backend, task, mode, device) if r["status"] == "ok"]
    return {
        "train_s": statistics.median(r["train_s"] for r in records),
        "steady_epoch_s": statistics.median(r["steady_epoch_s"] for r in records),
        "samples_per_s": statistics.median(r["samples_per_s"] for r in records),
        "cold_start_s": statistics.median(r["cold_start_s"] for r in records),
        "first_epoch_excess_s": statistics.median(r["first_epoch_excess_s"] for r in records),
        "data_mb": statistics.median(r["data_mb"] for r in records),
        "metric_value": statistics.median(r["metric_value"] for r in records),
        "peak_host_mb": max(r["peak_host_mb"] for r in records),
        "n": len(records),
    }


# -- summary -------------------------------------------------------------------------------

def test_summary_has_one_row_per_configuration_with_medians_over_ok_repeats(df, raw):
    s = summary(df)
    assert len(s) == 12
    row = s[(s.backend == "fake") & (s.task == "mnist_mlp") & (s["mode"] == "eager") & (s.device == "cpu")].iloc[0]
    want = _expected(raw, "fake", "mnist_mlp", "eager")
    for key in ("train_s", "steady_epoch_s", "samples_per_s", "cold_start_s", "first_epoch_excess_s", "data_mb",
                "metric_value", "peak_host_mb"):
        assert row[key] == pytest.approx(want[key]), key
    assert pd.isna(row.compile_s)  # the fake backend cannot tell its compile time: no direct figure
    assert (row.repeats, row.ok, row.status, row.message) == (3, 3, "ok", "")
    assert row.target_met == 0 and row.target_reached == 0 and pd.isna(row.time_to_target_s)
    times = sorted(r["train_s"] for r in _cell(raw, "fake", "mnist_mlp", "eager"))
    assert (row.train_s_min, row.train_s_max) == (times[0], times[-1])
    assert row.train_s_ci_low <= row.train_s <= row.train_s_ci_high


def test_linear_regression_meets_its_target_and_records_time_to_target(df, raw):
    s = summary(df)
    row = s[(s.backend == "fake") & (s.task == "linear_regression") & (s["mode"] == "compiled")].iloc[0]
    ok = _cell(raw, "fake", "linear_regression", "compiled")
    assert row.target_met == 3 and row.target_reached == 3
    assert row.time_to_target_s == pytest.approx(statistics.median(r["time_to_target_s"] for r in ok))
    assert row.target == "mse <= 0.012 and w_error <= 0.02 and b_error <= 0.02"


def test_failed_and_skipped_cells_keep_their_status_and_reason(df):
    s = summary(df).set_index(["backend", "task", "mode"])
    raised = s.loc[("faulty", "linear_regression", "raise")]
    assert (raised.status, raised.ok, raised.repeats) == ("error", 0, 2)
    assert raised.message == "RuntimeError: second line of the message (×2)"
    assert pd.isna(raised.train_s)
    hung = s.loc[("faulty", "linear_regression", "hang")]
    assert (hung.status, hung.message) == ("timeout", "no result within the 3 s timeout (×2)")
    skipped = s.loc[("fake", "mnist_cnn", "eager")]
    assert (skipped.status, skipped.message) == ("skipped", "layer kinds not implemented: Conv2D, MaxPool2D")


def test_mixed_outcomes_are_counted_per_status(df):
    mixed = df[(df.backend == "fake") & (df.task == "linear_regression") & (df["mode"] == "eager")].copy()
    mixed.loc[mixed.index[0], ["status", "message"]] = ["oom", "worker killed by SIGKILL"]
    row = summary(mixed).iloc[0]
    assert row.status == "ok 2/3, oom 1/3"
    assert row.message == "worker killed by SIGKILL"
    assert row.ok == 2


def test_same_configuration_in_two_runs_stays_two_rows_with_a_run_column(df, monkeypatch):
    other = df.assign(run_id="other-run")
    other.loc[other.task == "mnist_mlp", "train_s"] *= 2
    both = pd.concat([df, other], ignore_index=True)
    s = summary(both)
    assert len(s) == 24
    mlp = s[(s.backend == "fake") & (s.task == "mnist_mlp") & (s["mode"] == "eager") & (s.device == "cpu")]
    assert list(mlp.run) == ["other-run", "report-small"] and list(mlp.repeats) == [3, 3]
    assert mlp.iloc[0].train_s == pytest.approx(2 * mlp.iloc[1].train_s)
    assert "run" in varying_keys(s) and "run" not in varying_keys(summary(df))
    header, _ = _md_table(render(both, "md"))
    assert "run" in header


def test_empty_runs_say_so_in_every_format():
    empty = results.load([], root="nowhere")
    assert "no records" in render(empty, "table")
    assert "No records" in render(empty, "md")
    assert "No records" in render(empty, "html")
    assert json.loads(render(empty, "json"))["cells"] == []


# -- terminal table ------------------------------------------------------------------------

def rich_tables(text: str) -> list[tuple[str, list[str], list[list[str]]]]:
    """Each rich table as (title, header, rows); continuation lines of wrapped cells are left out."""
    tables, previous = [], ""
    for line in text.splitlines():
        if line.startswith("┏"):
            tables.append((previous.strip(), [], []))
        elif line.startswith("┃") and not tables[-1][1]:
            tables[-1][1].extend(c.strip() for c in line.split("┃")[1:-1])
        elif line.startswith("│"):
            cells = [c.strip() for c in line.split("│")[1:-1]]
            if cells[0]:
                tables[-1][2].append(cells)
        previous = line
    return tables


def test_terminal_overview_and_details(df, raw):
    text = render(df, "table", width=260, full=True)
    tables = rich_tables(text)
    (_, m_header, m_rows), (_, c_header, c_rows) = tables[:2]
    assert m_header == c_header == ["backend", "mode", "device", "linear_regression", "mnist_cnn", "mnist_mlp"]
    overview = {tuple(r[:3]): r[3:] for r in m_rows}
    want = _expected(raw, "fake", "mnist_mlp", "eager", "cuda")
    assert overview[("fake", "eager", "cuda")] == ["-", "-", fmt_seconds(want["train_s"])]
    assert overview[("faulty", "hang", "cpu")] == ["timeout", "-", "-"]
    cold = {tuple(r[:3]): r[3:] for r in c_rows}
    assert cold[("fake", "eager", "cuda")][2] == fmt_seconds(want["cold_start_s"])
    mlp = next((header, rows) for title, header, rows in tables if title.startswith("mnist_mlp;"))
    rows = {tuple(r[:3]): dict(zip(mlp[0], r)) for r in mlp[1]}
    want = _expected(raw, "fake", "mnist_mlp", "eager")
    row = rows[("fake", "eager", "cpu")]
    assert row["train"] == fmt_seconds(want["train_s"])
    assert row["cold"] == fmt_seconds(want["cold_start_s"])
    assert row["epoch"] == fmt_seconds(want["steady_epoch_s"])
    assert row["samples/s"] == fmt_rate(want["samples_per_s"])
    assert row["excess"] == fmt_seconds(want["first_epoch_excess_s"])
    assert row["data"] == fmt_mb(want["data_mb"]) == "7.6 MB"
    assert row["metric"] == "0.854 missed 0/3"
    assert row["status"] == "ok"
    assert "compile" not in mlp[0]  # no backend here reports a direct compile time
    assert rows[("fake", "eager", "cuda")]["device mem"] == "64 MB"
    assert "timeout\n      no result within the 3 s timeout (×2)" in text
    assert "skipped\n      layer kinds not implemented" in text
    assert "target accuracy >= 0.975 (metric: accuracy)" in text
    assert "hidden to fit" not in text


# -- Markdown ------------------------------------------------------------------------------

def _md_tables(text: str) -> list[tuple[list[str], list[list[str]]]]:
    """Each GitHub table in the text as (header, rows of cells)."""
    split = lambda line: [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]  # noqa: E731
    tables, current = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append((split(current[0]), [split(l) for l in current[2:]]))
            current = []
    return tables


def _md_table(text: str) -> tuple[list[str], list[list[str]]]:
    """The detailed results table (the one with a status column after the overviews)."""
    return next(t for t in _md_tables(text) if "train" in t[0])


def test_markdown_overview_is_backend_by_task(df, raw):
    header, rows = _md_tables(render(df, "md"))[0]
    assert header == ["backend", "mode", "device", "linear_regression", "mnist_cnn", "mnist_mlp"]
    cells = {tuple(r[:3]): dict(zip(header[3:], r[3:])) for r in rows}
    want = _expected(raw, "fake", "mnist_mlp", "eager")
    assert cells[("fake", "eager", "cpu")] == {"linear_regression": fmt_seconds(
        _expected(raw, "fake", "linear_regression", "eager")["train_s"]) + " ✓", "mnist_cnn": "skipped",
        "mnist_mlp": fmt_seconds(want["train_s"])}
    assert cells[("faulty", "raise", "cpu")] == {"linear_regression": "error", "mnist_cnn": "-", "mnist_mlp": "-"}
    assert cells[("&lt;script&gt;alert(1)&lt;/script&gt;", "eager", "cpu")]["mnist_mlp"] == "error"


def test_markdown_is_a_github_table_with_the_right_numbers(df, raw):
    text = render(df, "md")
    header, rows = _md_table(text)
    assert all(len(r) == len(header) for r in rows)
    by_key = {tuple(r[:4]): dict(zip(header, r)) for r in rows}
    want = _expected(raw, "fake", "linear_regression", "compiled")
    row = by_key[("linear_regression", "fake", "compiled", "cpu")]
    assert row["train"] == fmt_seconds(want["train_s"])
    assert row["final metric"] == f"mse {want['metric_value']:.4g} (met 3/3)"
    raised = by_key[("linear_regression", "faulty", "raise", "cpu")]
    assert raised["status"] == "error" and raised["train"] == "-"
    f_header, f_rows = next(t for t in _md_tables(text) if "why" in t[0])
    failures = {tuple(r[:4]): dict(zip(f_header, r)) for r in f_rows}
    assert failures[("linear_regression", "faulty", "raise", "cpu")]["why"] == \
        "RuntimeError: second line of the message (×2)"
    assert "|---|" in text and "---:|" in text  # numbers right-aligned


def test_markdown_escapes_html_and_table_syntax(df):
    text = render(df, "md")
    assert "<" not in text and ">" not in text.replace("&gt;", "")
    assert "| &lt;script&gt;alert(1)&lt;/script&gt; |" in text
    assert "synthetic &lt;img src=x onerror=alert(2)&gt; &amp; \"quoted\"" in text
    hostile = df.copy()
    hostile.loc[hostile.status == "error", "message"] = "a | b\nsecond | line"
    for header, rows in _md_tables(render(hostile, "md")):
        assert all(len(r) == len(header) for r in rows)
    assert "a \\| b second \\| line" in render(hostile, "md")


def test_markdown_names_the_run_and_its_environment(df):
    text = render(df, "md")
    env = df.iloc[0]
    assert f"run report-small ({len(df)} records" in text
    assert md_escape(str(env.env_cpu_model)) in text
    assert f"numpy {env.version_numpy}" in text


# -- CSV and JSON --------------------------------------------------------------------------

def test_csv_round_trips_the_summary(df, raw):
    rows = list(csv.DictReader(io.StringIO(render(df, "csv"))))
    assert len(rows) == 12
    row = next(r for r in rows if (r["backend"], r["task"], r["mode"], r["device"]) == ("fake", "mnist_mlp", "eager",
                                                                                           "cuda"))
    assert float(row["train_s"]) == pytest.approx(_expected(raw, "fake", "mnist_mlp", "eager", "cuda")["train_s"])
    evil = [r for r in rows if r["backend"] == EVIL]
    assert {r["status"] for r in evil} == {"ok", "error"}
    assert next(r for r in evil if r["status"] == "error")["message"] == EVIL_MESSAGE


def test_json_has_runs_and_cells_with_nulls_for_missing_values(df, raw):
    data = json.loads(render(df, "json"))
    assert [r["run_id"] for r in data["runs"]] == ["report-small"]
    assert data["runs"][0]["cpu_model"] == raw[0]["env"]["cpu_model"]
    assert data["runs"][0]["versions"]["numpy"] == raw[0]["env"]["versions"]["numpy"]
    cells = {(c["backend"], c["task"], c["mode"], c["device"]): c for c in data["cells"]}
    hung = cells[("faulty", "linear_regression", "hang", "cpu")]
    assert hung["status"] == "timeout" and hung["train_s"] is None and hung["ok"] == 0
    ok = cells[("fake", "linear_regression", "eager", "cpu")]
    assert ok["steady_epoch_s"] == pytest.approx(_expected(raw, "fake", "linear_regression", "eager")["steady_epoch_s"])
    assert cells[(EVIL, "mnist_mlp", "eager", "cpu")]["message"] == EVIL_MESSAGE


# -- HTML ----------------------------------------------------------------------------------

class _Page(HTMLParser):
    """Every tag with its attributes, and the text as a browser would show it."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


@pytest.fixture(scope="module")
def page(df) -> tuple[str, _Page]:
    text = render(df, "html")
    parsed = _Page()
    parsed.feed(text)
    return text, parsed


def test_html_forbids_remote_loads_and_references_none(page):
    text, parsed = page
    csp = [a["content"] for t, a in parsed.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert csp == [CSP] == ["default-src 'none'; style-src 'unsafe-inline'; img-src data:"]
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", text, re.I)
    assert not re.search(r"""url\(\s*["']?\s*(?:https?:)?//""", text, re.I)
    assert not re.search(r"@import|<link|<iframe|<object|<embed", text, re.I)
    assert all(t not in ("script", "img", "link") for t, _ in parsed.tags)


def test_html_escapes_names_and_messages_from_results(page):
    text, parsed = page
    shown = "".join(parsed.text)
    assert EVIL in shown and EVIL_MESSAGE in shown  # shown as text...
    assert "<script" not in text and "<img" not in text  # ...never as markup
    assert not any(k.startswith("on") for _, attrs in parsed.tags for k in attrs)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_html_has_the_charts_each_task_can_have(page):
    text, parsed = page
    titles = [t.strip() for t in re.findall(r'<svg[^>]*aria-label="([^"]*)"', text)]
    assert len([t for t, _ in parsed.tags if t == "svg"]) == len(titles) == 9
    assert titles == [
        "linear_regression: training time (median; whiskers: min to max over repeats)",
        "linear_regression: mse against training time (median over repeats, per epoch)",
        "linear_regression: compile (direct and estimated) versus steady-state epoch time",
        "linear_regression: speedup over eager (steady epoch, eager time / mode time)",
        "mnist_mlp: training time (median; whiskers: min to max over repeats)",
        "mnist_mlp: accuracy against training time (median over repeats, per epoch)",
        "mnist_mlp: compile (direct and estimated) versus steady-state epoch time",
        "mnist_mlp: speedup over eager (steady epoch, eager time / mode time)",
        "mnist_mlp: CPU versus GPU training time",
    ]
    assert "No charts: no cell of this task finished ok" in text  # mnist_cnn: every cell skipped


def test_html_chart_values_are_the_medians(df, raw, page):
    text, _ = page
    want = _expected(raw, "fake", "mnist_mlp", "eager")
    gpu = _expected(raw, "fake", "mnist_mlp", "eager", "cuda")
    text = text.replace("\u00a0", " ")  # bar values use no-break spaces
    # bar tooltips: "<category> / <series>: <value>"
    assert f"<title>fake cpu / eager: {fmt_seconds(want['train_s'])}</title>" in text
    assert f"<title>fake eager / cuda: {fmt_seconds(gpu['train_s'])}</title>" in text
    s = summary(df)
    cpu = s[(s.backend == "fake") & (s.task == "mnist_mlp") & (s.device == "cpu")].set_index("mode")
    speedup = cpu.loc["eager", "steady_epoch_s"] / cpu.loc["compiled", "steady_epoch_s"]
    assert f"fake cpu / compiled: {speedup:.2f}×" in text
    assert "target accuracy &gt;= 0.975" in text  # the target line of the accuracy curve


def test_html_overview_is_backend_by_task(page, raw):
    text, _ = page
    table = re.search(r'<h2>Training time, backend × task</h2><div class="wide"><table class="overview">'
                      r'(.*?)</table>', text, re.S).group(1)
    rows = [re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row) for row in re.findall(r"<tr>(.*?)</tr>", table, re.S)]
    assert rows[0] == ["backend", "mode", "device", "linear_regression", "mnist_cnn", "mnist_mlp"]
    by_key = {tuple(r[:3]): r[3:] for r in rows[1:]}
    mlp = fmt_seconds(_expected(raw, "fake", "mnist_mlp", "compiled")["train_s"])
    assert by_key[("fake", "compiled", "cpu")] == [
        fmt_seconds(_expected(raw, "fake", "linear_regression", "compiled")["train_s"]) + " ✓", "-", mlp]
    assert by_key[("&lt;script&gt;alert(1)&lt;/script&gt;", "eager", "cpu")][2] == "error"


def test_html_lists_failures_with_reasons_and_the_environment(page, raw):
    text, parsed = page
    shown = "".join(parsed.text)
    assert "Failed and skipped cells" in shown
    assert "no result within the 3 s timeout (×2)" in shown
    assert "layer kinds not implemented: Conv2D, MaxPool2D" in shown
    env = raw[0]["env"]
    for value in (env["cpu_model"], env["os"], env["python"], env["versions"]["numpy"], env["git_commit"]):
        assert str(value) in shown


# -- SVG plots -----------------------------------------------------------------------------

def test_scales_pick_nice_ticks_and_log_for_wide_ranges():
    linear = Scale.fit([0.3, 7.2], 100, 0)
    assert linear.ticks == [0, 2, 4, 6, 8] and not linear.log
    assert linear(0) == 100 and linear(8) == 0
    wide = Scale.fit([0.0003, 2.0], 100, 0)
    assert wide.log and wide.ticks == [1e-4, 1e-3, 1e-2, 1e-1, 1, 10]


def test_every_svg_text_is_escaped():
    svg = bar_chart("t<b>", ["<c>"], ["s&"], {("<c>", "s&"): 1.0}, "y\"", notes={("<c>", "x"): "<n>"})
    svg += line_chart("l<", [Line("<line>", [1, 2], [3, 4])], "x<", "y>", hline=(3.5, "<h>"))
    assert "<b>" not in svg and "<c>" not in svg and "<line>" not in svg and "<h>" not in svg
    assert "&lt;c&gt;" in svg and "s&amp;" in svg and "&lt;line&gt;" in svg


# -- the command ---------------------------------------------------------------------------

@pytest.fixture
def root(tmp_path) -> Path:
    shutil.copytree(SMALL, tmp_path / "results" / "report-small")
    return tmp_path / "results"


def test_cli_report_defaults_to_the_latest_run_and_writes_each_format(root, tmp_path, capsys):
    assert main(["report", "--out", str(root)]) == 0
    assert "bench report: run report-small (29 records" in capsys.readouterr().out
    for fmt in ("md", "csv", "json", "html"):
        out = tmp_path / f"report.{fmt}"
        assert main(["report", "report-small", "--out", str(root), "--format", fmt, "--output", str(out)]) == 0
        assert out.read_text(encoding="utf-8") == render(results.load([root / "report-small"]), fmt)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["results", "report.md", "report.csv",
                                                                 "report.json", "report.html"])


def test_cli_report_bad_input_exits_2_and_writes_nothing(root, tmp_path, capsys):
    out = tmp_path / "r.html"
    assert main(["report", "--out", str(root), "--format", "pdf", "--output", str(out)]) == 2
    assert "unknown format 'pdf'" in capsys.readouterr().err
    assert main(["report", "no-such-run", "--out", str(root), "--output", str(out)]) == 2
    assert "no run 'no-such-run'" in capsys.readouterr().err
    assert main(["report", "--out", str(tmp_path / "empty"), "--output", str(out)]) == 2
    assert not out.exists()
    missing_dir = tmp_path / "no" / "such" / "dir" / "r.md"
    assert main(["report", "--out", str(root), "--format", "md", "--output", str(missing_dir)]) == 2
    assert "cannot write" in capsys.readouterr().err
    assert not (tmp_path / "no").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]


# -- sections other modules add ------------------------------------------------------------

def test_an_extra_section_is_laid_out_by_every_format(df, monkeypatch):
    def cost(records: pd.DataFrame, s: pd.DataFrame) -> Section:
        ok = s[s["ok"] > 0]
        return Section("Keras cost", ["task", "backend", "ok cells"],
                              [[t, b, str(n)] for (t, b), n in ok.groupby(["task", "backend"]).size().items()],
                              note="cells per backend", names=frozenset({0, 1}), numeric=frozenset({2}))

    monkeypatch.setattr("harness.report.tables.EXTRA_SECTIONS", [cost, lambda records, s: None])
    text = render(df, "table", width=100, full=True)
    title, header, rows = next(t for t in rich_tables(text) if t[0].startswith("Keras cost"))
    assert header == ["task", "backend", "ok cells"] and ["mnist_mlp", "fake", "4"] in rows
    md = render(df, "md")
    assert "#### Keras cost" in md and "| mnist_mlp | fake | 4 |" in md and "cells per backend" in md
    page = render(df, "html")
    assert "<h2>Keras cost</h2>" in page and '<td class="num">4</td>' in page


def _compile_chart(html: str, task: str) -> str:
    start = html.index(f"{task}: compile (direct and estimated)")
    return html[html.rindex("<svg", 0, start):html.index("</svg>", start)]


def test_a_negative_first_epoch_excess_is_noted_not_drawn_below_zero(tmp_path):
    """-0.6 s of excess is noise: it must not stretch the compile axis below zero (it once reached -50),
    and it is said where its bar would be."""
    from harness.report.html import render_html
    from harness.report.tables import build

    df = results.load([REFERENCE_RUN])
    cnn = (df.task == "mnist_cnn") & (df.backend == "tensorflow") & (df["mode"] == "compiled")
    df.loc[cnn, "first_epoch_excess_s"] = -0.6
    chart = _compile_chart(render_html(build(df, summary(df))), "mnist_cnn").replace("\xa0", " ")
    ticks = [float(t) for t in re.findall(r'text-anchor="end"[^>]*>(-?[\d.]+)</text>', chart)]
    assert ticks and min(ticks) == 0, ticks
    assert "-600 ms (noise)" in chart and "not reported" in chart  # whole, not cut to "not …"
    assert "not …" not in chart
