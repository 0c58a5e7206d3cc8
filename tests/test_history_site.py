"""`bench publish --site DIR`: a static site from files (no server, no script) with an index of machines, a
leaderboard per machine, a trend per cell with its change points and a page per run; two machines stay
two. In a real headless Chromium: the pages are not blank, the trend is drawn, nothing remote is loaded,
and every link resolves to a file of the site.
"""

from __future__ import annotations

import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import pytest

from benchmarks.history_speed import write_history
from harness.cli.main import main
from harness.history import site as site_module
from harness.report.plots import PALETTE, RED
from tests.test_history_store import other_host
from tests.test_report_html_chromium import chromium, decode_png, remote_requests, screenshot  # noqa: F401

STEPPED = "torch-linear_regression-compiled-cpu-fp32-adam-b32-e20-lr0.0001-s0"
RUNS = {"bench-a": 30, "bench-b": 12}


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.sources: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name == "href" and value is not None:
                self.hrefs.append(value)
            if name == "src" and value is not None:
                self.sources.append(value)


def links_of(text: str) -> Links:
    parser = Links()
    parser.feed(text)
    return parser


def unresolved(page: Path, hrefs: list[str]) -> list[str]:
    """The links of `page` that do not name a file beside it (every link must be relative: the site is
    opened from file://, with no server)."""
    bad = []
    for ref in hrefs:
        target = urlparse(urljoin(page.resolve().as_uri(), ref))
        if target.scheme != "file" or not Path(unquote(target.path)).is_file():
            bad.append(ref)
    return bad


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """Machine bench-a: 30 runs, one cell 15% slower from run 15 on. Machine bench-b: copies of bench-a's first
    12 runs with the recorded host changed (the issue's way to simulate a second machine)."""
    base = tmp_path_factory.mktemp("site")
    runs = write_history(base / "results" / "bench-a", runs=RUNS["bench-a"], cells=4, cv=0.03, host="bench-a",
                         steps={STEPPED: (0.5, 1.15)}, seed=2)
    for run in runs[:RUNS["bench-b"]]:
        other_host(run, base / "results" / "bench-b" / run.name, "bench-b")
    for host in RUNS:
        assert main(["publish", str(base / "results" / host), "--to", str(base / "store")]) == 0
    assert main(["publish", "--to", str(base / "store"), "--site", str(base / "site")]) == 0
    return base / "site"


def test_the_site_has_every_page_and_two_machines_stay_two(site):
    assert (site / "index.html").is_file() and (site / site_module.MARKER).is_file()
    machines = sorted(p.stem for p in (site / "machines").glob("*.html"))
    assert len(machines) == 2 and [m.split("-")[1] for m in machines] == ["a", "b"]
    index = (site / "index.html").read_text()
    for machine in machines:
        assert f"machines/{machine}.html" in index
        cells = sorted((site / "cells" / machine).glob("*.html"))
        runs = sorted((site / "runs" / machine).glob("*.html"))
        host = "bench-" + machine.split("-")[1]
        assert len(cells) == 4 and len(runs) == RUNS[host]
        for cell in cells:  # each trend has one linked point per run of its own machine, never the other's
            points = re.findall(r'<a href="([^"]+)"><circle', cell.read_text())
            assert len(points) == RUNS[host]
            assert all(f"runs/{machine}/" in p for p in points)
    # the copies carry the same figures: machine b's points are machine a's first 12, not a blend of both
    a, b = (next((site / "cells").glob(f"bench-{x}-*")) / f"{STEPPED}.html" for x in "ab")
    tips = [re.findall(r"<circle[^>]*><title>([^<]*)</title>", page.read_text()) for page in (a, b)]
    assert [t.split(": ", 1)[1] for t in tips[1]] == [t.split(": ", 1)[1] for t in tips[0][:12]]


def test_the_trend_marks_the_change_and_the_leaderboard_ranks_frameworks(site):
    machine = next(p.stem for p in (site / "machines").glob("bench-a-*.html"))
    cell = (site / "cells" / machine / f"{STEPPED}.html").read_text()
    assert "Verdict: <b>regression</b>" in cell
    assert re.search(r'stroke="#b00020" stroke-width="2" stroke-dasharray="6,4"', cell)
    assert re.search(r">\+1[3-7]%<", cell)
    board = (site / "machines" / f"{machine}.html").read_text()
    assert "Leaderboard" in board and 'class="best"' in board
    for backend in ("torch", "tensorflow"):
        assert f">{backend}</td>" in board
    assert "to target" in board and "mse" in board


def test_runs_at_changes_get_their_full_report_the_rest_a_light_page(site):
    machine = next(p.stem for p in (site / "machines").glob("bench-a-*.html"))
    pages = sorted((site / "runs" / machine).glob("*.html"))
    full = [p for p in pages if "<h1>bench report</h1>" in p.read_text()]
    light = [p for p in pages if "light page" in p.read_text()]
    assert len(full) + len(light) == len(pages) == 30
    names = [p.stem for p in pages]
    assert {p.stem for p in full} == {names[14], names[15], names[-1]}  # either side of the step, and the newest
    assert 'href="../../index.html"' in full[0].read_text()


def test_every_link_of_every_page_resolves_to_a_file(site):
    pages = sorted(site.rglob("*.html"))
    assert len(pages) > 40
    for page in pages:
        found = links_of(page.read_text())
        assert found.sources == [], page
        assert unresolved(page, found.hrefs) == [], page


def test_the_link_check_finds_a_broken_link(tmp_path):
    """Negative control of the check above."""
    page = tmp_path / "index.html"
    (tmp_path / "there.html").write_text("")
    page.write_text('<a href="there.html">a</a><a href="gone.html">b</a><a href="https://example.org/">c</a>')
    assert unresolved(page, links_of(page.read_text()).hrefs) == ["gone.html", "https://example.org/"]


def test_a_rebuild_reuses_full_reports_and_another_folder_is_left_alone(site, tmp_path, capsys):
    store = site.parent / "store"
    assert main(["publish", "--to", str(store), "--site", str(site)]) == 0
    out = capsys.readouterr().out
    assert "0 full reports rendered" in out and re.search(r"[1-9]\d* reused", out)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    assert main(["publish", "--to", str(store), "--site", str(mine)]) == 2
    assert "not a bench history site" in capsys.readouterr().err
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]


def _dom_links(chromium_path: str, page: Path) -> list[str]:
    """The hrefs of `page` as Chromium parsed it (--dump-dom)."""
    done = subprocess.run([chromium_path, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
                           page.resolve().as_uri()], capture_output=True, text=True, timeout=60)
    assert "<html" in done.stdout, done.stderr[-2000:]
    return links_of(done.stdout).hrefs


def test_pages_render_in_chromium_not_blank_trend_drawn_links_resolve(chromium, site, tmp_path):  # noqa: F811
    machine = next(p.stem for p in (site / "machines").glob("bench-a-*.html"))
    runs = sorted((site / "runs" / machine).glob("*.html"))
    pages = {"index": site / "index.html", "machine": site / "machines" / f"{machine}.html",
             "cell": site / "cells" / machine / f"{STEPPED}.html", "full report": runs[-1], "light run": runs[3]}
    for name, page in pages.items():
        png, netlog = tmp_path / f"{name}.png", tmp_path / f"{name}-net.json"
        screenshot(chromium, page, png, netlog)
        image = decode_png(png.read_bytes())
        ink = (image < 250).any(axis=2).mean()
        assert ink > 0.01, f"{name} page is (nearly) blank: {ink:.4f} of pixels drawn"
        assert remote_requests(netlog) == [], name
        hrefs = _dom_links(chromium, page)
        assert hrefs and unresolved(page, hrefs) == [], name
        if name == "cell":
            blue = [int(PALETTE[0][i:i + 2], 16) for i in (1, 3, 5)]
            red = [int(RED[i:i + 2], 16) for i in (1, 3, 5)]
            assert (image == blue).all(axis=2).sum() > 300, "the trend's points are not drawn"
            assert (image == red).all(axis=2).sum() > 50, "the change point is not drawn"


def test_names_from_the_records_are_escaped_and_their_files_named_safely(tmp_path):
    """The fixture has a backend named <script>alert(1)</script>: no page carries it as markup, its cell page
    has a safe file name, and every link still resolves."""
    fixture = Path(__file__).parent / "fixtures" / "runs" / "report-small"
    site = tmp_path / "site"
    assert main(["publish", str(fixture), "--to", str(tmp_path / "store"), "--site", str(site),
                 "--full-reports", "all"]) == 0
    pages = sorted(site.rglob("*.html"))
    assert pages and not any("<script" in page.read_text() for page in pages)
    assert any("&lt;script&gt;" in page.read_text() for page in pages)
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", page.name) for page in pages)
    for page in pages:
        assert unresolved(page, links_of(page.read_text()).hrefs) == [], page
