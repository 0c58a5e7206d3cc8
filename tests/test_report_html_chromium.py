"""The HTML report in a real headless Chromium: it renders with its plots, and loads nothing remote.

Needs Debian's `chromium` package (apt-get install -y chromium). Skipped without it, unless
BENCH_REQUIRE_CHROMIUM=1 (CI), which turns a missing browser into a failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest

from harness import results
from harness.report.html import CSP
from harness.report.plots import PALETTE
from harness.report.render import render

SMALL = Path(__file__).parent / "fixtures" / "runs" / "report-small"
WINDOW = (1400, 3000)


@pytest.fixture(scope="module")
def chromium() -> str:
    found = os.environ.get("BENCH_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        if os.environ.get("BENCH_REQUIRE_CHROMIUM") == "1":
            pytest.fail("BENCH_REQUIRE_CHROMIUM=1 but no chromium on PATH (apt-get install -y chromium)")
        pytest.skip("chromium not installed (apt-get install -y chromium; BENCH_REQUIRE_CHROMIUM=1 to require it)")
    return found


def screenshot(chromium: str, page: Path, out: Path, netlog: Path) -> None:
    """Render `page` headless into the PNG `out`, logging every network request to `netlog`."""
    profile = out.parent / f"{out.stem}-profile"
    args = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}", f"--log-net-log={netlog}", f"--screenshot={out}",
            f"--window-size={WINDOW[0]},{WINDOW[1]}", page.resolve().as_uri()]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert out.is_file(), f"chromium wrote no screenshot (exit {done.returncode}): {done.stderr[-2000:]}"


# -- reading the PNG with the standard library and numpy -----------------------------------

def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def decode_png(data: bytes) -> np.ndarray:
    """An 8-bit RGB or RGBA, non-interlaced PNG (what Chromium writes) as a (height, width, 3) array."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat += chunk
    width, height, depth, color_type, _, _, interlace = header
    assert depth == 8 and color_type in (2, 6) and interlace == 0, header
    bpp = 3 if color_type == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    out = np.zeros((height, stride), dtype=np.uint8)
    prev = np.zeros(stride, dtype=np.int64)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = np.frombuffer(raw, dtype=np.uint8, count=stride, offset=y * (stride + 1) + 1).astype(np.int64)
        if kind == 0:
            cur = line
        elif kind == 1:  # Sub: a running sum along each channel
            cur = np.cumsum(line.reshape(width, bpp), axis=0).reshape(-1) % 256
        elif kind == 2:  # Up
            cur = (line + prev) % 256
        else:  # Average, Paeth: each byte depends on the decoded one to its left
            above, row = prev.tolist(), line.tolist()
            cur_list: list[int] = []
            for i, value in enumerate(row):
                a = cur_list[i - bpp] if i >= bpp else 0
                b = above[i]
                if kind == 3:
                    cur_list.append((value + (a + b) // 2) & 0xFF)
                else:
                    c = above[i - bpp] if i >= bpp else 0
                    cur_list.append((value + _paeth(a, b, c)) & 0xFF)
            cur = np.array(cur_list, dtype=np.int64)
        out[y] = cur
        prev = cur
    return out.reshape(height, width, bpp)[:, :, :3]


def _palette_pixels(image: np.ndarray) -> dict[str, np.ndarray]:
    """For each chart colour, a mask of the pixels painted exactly in it (the tables use none of them)."""
    masks = {}
    for colour in PALETTE:
        rgb = [int(colour[i:i + 2], 16) for i in (1, 3, 5)]
        masks[colour] = (image == rgb).all(axis=2)
    return masks


def plots_visible(image: np.ndarray) -> tuple[bool, str]:
    """Charts drawn: several palette colours in bulk, spread down the page over several chart rows."""
    masks = _palette_pixels(image)
    counts = {c: int(m.sum()) for c, m in masks.items()}
    bulky = [c for c, n in counts.items() if n >= 300]
    painted_rows = np.flatnonzero(np.any(np.stack(list(masks.values())), axis=(0, 2)))
    bands = len({int(r) // 300 for r in painted_rows})
    ok = len(bulky) >= 3 and bands >= 4
    return ok, f"palette pixels {counts}, 300-px bands with chart colours: {bands}"


def remote_requests(netlog: Path) -> list[str]:
    """URLs the page itself asked for over the network (Chromium's own background requests excluded:
    only requests whose network isolation key is the file:// page count)."""
    log = json.loads(netlog.read_text())
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    urls = []
    for event in log["events"]:
        params = event.get("params") or {}
        if event["type"] == start_job and "file://" in str(params.get("network_isolation_key", "")):
            if not re.match(r"(file|data|about|chrome):", params.get("url", "")):
                urls.append(params["url"])
    return urls


# -- tests ---------------------------------------------------------------------------------

def test_html_report_renders_with_plots_and_loads_nothing_remote(chromium, tmp_path):
    page = tmp_path / "report.html"
    page.write_text(render(results.load([SMALL]), "html"), encoding="utf-8")
    png, netlog = tmp_path / "report.png", tmp_path / "net.json"
    screenshot(chromium, page, png, netlog)
    image = decode_png(png.read_bytes())
    assert image.shape == (WINDOW[1], WINDOW[0], 3)
    assert (image < 250).any(axis=2).mean() > 0.03, "the page is (nearly) blank"
    ok, detail = plots_visible(image)
    assert ok, detail
    assert remote_requests(netlog) == []


def test_the_checks_can_fail_a_page_without_plots_or_with_remote_loads(chromium, tmp_path):
    """The same report with its charts removed and a remote image added must fail both checks."""
    text = render(results.load([SMALL]), "html")
    text = re.sub(r"<svg.*?</svg>", "", text, flags=re.S)
    text = text.replace(f'<meta http-equiv="Content-Security-Policy" content="{CSP}">', "")
    text = text.replace("<h1>", '<img src="http://example.invalid/pixel.png" alt=""><h1>', 1)
    page = tmp_path / "broken.html"
    page.write_text(text, encoding="utf-8")
    png, netlog = tmp_path / "broken.png", tmp_path / "broken-net.json"
    screenshot(chromium, page, png, netlog)
    ok, detail = plots_visible(decode_png(png.read_bytes()))
    assert not ok, detail
    assert remote_requests(netlog) == ["http://example.invalid/pixel.png"]


REFERENCE = sorted((Path(__file__).resolve().parents[1] / "results").glob("reference-cpu-*"))[-1]


def page_width(chromium: str, html: str, tmp_path: Path) -> int:
    """How wide the laid-out page is in a 1400 px window (its scrollWidth, as Chromium computes it): a copy of
    the page whose CSP lets one inline script write the figure into the DOM that --dump-dom prints."""
    probe = html.replace(f'<meta http-equiv="Content-Security-Policy" content="{CSP}">', "").replace(
        "</body>", "<script>document.body.setAttribute('data-width', document.documentElement.scrollWidth)"
                   "</script></body>")
    page = tmp_path / "probe.html"
    page.write_text(probe, encoding="utf-8")
    done = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           "--disable-background-networking", "--disable-component-update", "--disable-sync",
                           f"--user-data-dir={tmp_path / 'width-profile'}", f"--window-size={WINDOW[0]},{WINDOW[1]}",
                           "--dump-dom", page.resolve().as_uri()], capture_output=True, text=True, timeout=60)
    found = re.search(r'data-width="(\d+)"', done.stdout)
    assert found, f"no width in the DOM (exit {done.returncode}): {done.stderr[-1000:]}"
    return int(found.group(1))


def test_the_reference_report_fits_a_1400_px_window(chromium, tmp_path):
    assert page_width(chromium, render(results.load([REFERENCE]), "html"), tmp_path) <= WINDOW[0]


def test_the_width_check_finds_a_page_too_wide(chromium, tmp_path):
    wide = render(results.load([SMALL]), "html").replace("</body>", '<div style="width:2000px">x</div></body>')
    assert page_width(chromium, wide, tmp_path) > WINDOW[0]


def test_png_decoder_reads_every_filter_type():
    """A 3x2 RGB image written with each PNG filter decodes to the same pixels."""
    pixels = np.array([[[10, 20, 30], [200, 100, 50], [0, 255, 7]],
                       [[9, 9, 9], [250, 1, 128], [77, 66, 55]]], dtype=np.int64)
    rows = pixels.reshape(2, -1)
    for kind in range(5):
        raw = b""
        prev = np.zeros(9, dtype=np.int64)
        for row in rows:
            left = np.r_[[0, 0, 0], row[:-3]]
            up_left = np.r_[[0, 0, 0], prev[:-3]]
            predictor = [np.zeros(9, dtype=np.int64), left, prev, (left + prev) // 2,
                         np.array([_paeth(a, b, c) for a, b, c in zip(left, prev, up_left)])][kind]
            raw += bytes([kind]) + bytes(((row - predictor) % 256).astype(np.uint8))
            prev = row
        chunk = lambda kind_, body: struct.pack(">I", len(body)) + kind_ + body + struct.pack(  # noqa: E731
            ">I", zlib.crc32(kind_ + body))
        png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 3, 2, 8, 2, 0, 0, 0))
               + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
        assert (decode_png(png) == pixels).all(), f"filter {kind}"
