"""How long `bench report` takes on a records file of junk lines with a few good records among them.

  python -m benchmarks.junk_records                 # 1e6 junk lines and 10 good records
  python -m benchmarks.junk_records --lines 200000

Writes the file in a temporary folder (the good records from tests/fixtures/runs/report-small, spread
through the junk), runs the real command line on it, and prints the wall time, the cells the report
shows and the warning lines it printed. Reading must stay linear in the file's size and quiet: one
summary line per file, however many lines are bad.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GOOD = REPO / "tests" / "fixtures" / "runs" / "report-small" / "records.jsonl"


def junk_lines(count: int, good: list[bytes], rng: random.Random) -> list[bytes]:
    """Every kind of bad line: random bytes, records cut short, JSON that is not a record, wrong statuses."""
    kinds = [
        lambda: bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 40))).replace(b"\n", b" "),
        lambda: rng.choice(good)[: rng.randint(1, 200)],
        lambda: b"[1, 2, 3]",
        lambda: json.dumps({"cell_id": f"x{rng.random()}", "status": "fine"}).encode(),
        lambda: json.dumps({"no": "cell", "n": rng.random()}).encode(),
    ]
    samples = [kind() for kind in kinds for _ in range(200)]  # drawn once, repeated: writing stays fast
    return [samples[i % len(samples)] for i in range(count)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000, help="junk lines (default 1e6)")
    parser.add_argument("--good", type=int, default=10, help="good records spread through them (default 10)")
    args = parser.parse_args()
    rng = random.Random(0)
    good = GOOD.read_bytes().splitlines()[: args.good]
    lines = junk_lines(args.lines, good, rng)
    step = max(1, len(lines) // max(1, len(good)))
    for i, record in enumerate(good):
        lines.insert(i * step + i, record)
    with tempfile.TemporaryDirectory(prefix="bench-junk-") as tmp:
        path = Path(tmp) / "records.jsonl"
        path.write_bytes(b"\n".join(lines) + b"\n")
        size_mb = path.stat().st_size / 2**20
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "harness", "report", str(path), "--format", "json"],
                              capture_output=True, text=True, cwd=REPO)
        elapsed = time.perf_counter() - started
    if done.returncode != 0:
        print(done.stderr, file=sys.stderr)
        return 1
    cells = json.loads(done.stdout)["cells"]
    warnings = done.stderr.splitlines()
    print(f"bench report on {args.lines} junk lines and {len(good)} good records ({size_mb:.0f} MB): "
          f"{elapsed:.1f} s, {sum(c['repeats'] for c in cells)} records shown in {len(cells)} rows, "
          f"{len(warnings)} warning line(s)")
    for line in warnings:
        print(f"  {line[:300]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
