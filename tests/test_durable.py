"""Checked writes: an append completes or leaves the file as it was; a cell's log keeps its head and tail."""

from __future__ import annotations

import subprocess
import sys

from harness.cell.parent_log import CappedLog
from tests.conftest import REPO

FILE_LIMIT = """
import resource, signal, sys
from harness.store import durable
path = sys.argv[1]
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (150, 150))
durable.append(path, b"x" * 99 + b"\\n")
try:
    durable.append(path, b"y" * 99 + b"\\n")  # 50 bytes fit: a short write, then an error
except durable.SaveError as exc:
    print(exc)
"""


def test_an_append_that_cannot_complete_leaves_the_file_as_it_was(tmp_path):
    path = tmp_path / "records.jsonl"
    done = subprocess.run([sys.executable, "-c", FILE_LIMIT, str(path)], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"cannot save results in {path}: File too large")
    assert path.read_bytes() == b"x" * 99 + b"\n"  # no torn second line


def test_a_log_keeps_its_head_and_tail_and_says_what_was_cut(tmp_path):
    path = tmp_path / "cell.log"
    log = CappedLog(path, head=1000, tail=500)
    data = bytes(i % 251 for i in range(100_000))
    for start in range(0, len(data), 3000):
        log.write(data[start:start + 3000])
    log.close()
    written = path.read_bytes()
    note = (b"\n[bench: 98500 bytes of this cell's output cut here; the first 1000 and the last 500 bytes are "
            b"kept]\n")
    assert written == data[:1000] + note + data[-500:]


def test_a_short_log_is_kept_whole(tmp_path):
    path = tmp_path / "cell.log"
    log = CappedLog(path, head=1000, tail=500)
    for piece in (b"a" * 900, b"b" * 300, b"c" * 200):
        log.write(piece)
    log.close()
    assert path.read_bytes() == b"a" * 900 + b"b" * 300 + b"c" * 200
