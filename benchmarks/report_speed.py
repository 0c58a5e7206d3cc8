"""How long `bench report` takes on a sweep: generated runs of 1,000 and 10,000 records, every record its
own configuration, rendered as a terminal table, Markdown and HTML by the real command in a fresh process.

    python -m benchmarks.report_speed                 # both sizes, 3 formats, best of --tries
    python -m benchmarks.report_speed --records 1000 --tries 1

The records are shaped like `bench run`'s (every schema field, per-epoch curves and times, each record's
environment, a few failed cells with long messages) and written with harness.results; their numbers are
drawn from a seeded generator, not measured. Each timing is the wall time of `python -m harness report`
(interpreter start and imports included), the best of --tries; the page size is printed for HTML.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from harness import results
from harness.measure import envinfo

REPO = Path(__file__).resolve().parents[1]
TASKS = {  # task: (metric, target text, bigger is better, epochs)
    "linear_regression": ("mse", "mse <= 0.012 and w_error <= 0.02 and b_error <= 0.02", False, 20),
    "mnist_mlp": ("accuracy", "accuracy >= 0.975", True, 5),
    "mnist_cnn": ("accuracy", "accuracy >= 0.985", True, 4),
    "mnist_lstm": ("accuracy", "accuracy >= 0.97", True, 3),
}
BACKENDS = ("torch", "tensorflow", "jax")
MODES = ("eager", "compiled")
FORMATS = ("table", "md", "html")
LONG_MESSAGE = ("RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.15 GiB total capacity; "
                "61.20 GiB already allocated; 1.38 GiB free; 62.50 GiB reserved in total by PyTorch) If reserved "
                "memory is >> allocated memory try setting max_split_size_mb to avoid fragmentation.")


def synthetic_records(n: int, run_id: str, seed: int = 0) -> list[dict[str, Any]]:
    """n records, each its own configuration (task × backend × mode × batch size × learning rate)."""
    rng = np.random.default_rng(seed)
    env = envinfo.collect()
    combos = [(t, b, m) for t in TASKS for b in BACKENDS for m in MODES]
    records = []
    for i in range(n):
        task, backend, mode = combos[i % len(combos)]
        sweep = i // len(combos)
        batch = (32, 64, 128, 256)[sweep % 4]
        lr = round(1e-4 * (1.01 ** (sweep // 4)), 8)
        metric, target, bigger, epochs = TASKS[task]
        steady = float(rng.lognormal(np.log(2.0), 0.6))
        first = steady * (1 + float(rng.gamma(2.0, 1.5 if mode == "compiled" else 0.1)))
        epoch_s = [first] + [steady * float(rng.normal(1, 0.03)) for _ in range(epochs - 1)]
        values = np.clip(np.sort(rng.uniform(0.90, 0.99, epochs)), 0, 1) if bigger else np.sort(
            rng.uniform(0.005, 0.05, epochs))[::-1]
        met = [(v >= 0.975) if bigger else (v <= 0.012) for v in values]
        cumulative = np.cumsum(epoch_s)
        cell_id = f"{backend}-{task}-{mode}-cpu-fp32-adam-b{batch}-e{epochs}-lr{lr:g}-s0-r0"
        record = {column: None for column in results.SCHEMA}
        record.update(
            schema_version=results.SCHEMA_VERSION, run_id=run_id, cell_id=cell_id, timestamp=results.utc_now(),
            backend=backend, framework_version="1.0", task=task, mode=mode, device="cpu",
            device_name=env["cpu_model"], precision="fp32", batch_size=batch, epochs=epochs, optimizer="adam", lr=lr,
            weight_decay=0.0, seed=0, repeat=0, train_size=60000, test_size=10000, threads=2, log=f"logs/{cell_id}.log",
            metric=metric, target=target, env=env, details={"compiled": mode == "compiled"})
        if i % 50 == 7:  # a failed cell now and then, with the kind of message a framework writes
            record.update(status="error", message=LONG_MESSAGE, wall_s=float(rng.uniform(5, 20)))
        else:
            compile_s = first - steady if mode == "compiled" else 0.0
            reached = next((e for e, ok in enumerate(met) if ok), None)
            cold = 3.0 + first
            record.update(
                status="ok", message="", import_s=1.5, load_s=0.4, setup_s=0.3, compile_s=compile_s,
                compile_source="generated (benchmarks/report_speed.py)", first_epoch_excess_s=first - steady,
                cold_start_s=cold, first_epoch_s=first, steady_epoch_s=float(np.median(epoch_s[1:])),
                train_s=float(cumulative[-1]), epoch_s=epoch_s, step_ms_p50=steady * 2, step_ms_p90=steady * 2.4,
                samples_per_s=60000 / steady, eval_s=0.2, eval_total_s=0.2 * epochs, latency_s=0.5,
                initial_loss_s=0.05, total_s=cold + float(cumulative[-1]), wall_s=cold + float(cumulative[-1]) + 1,
                metric_value=float(values[-1]), target_met=bool(met[-1]),
                metrics={"loss": float(rng.uniform(0.02, 0.3)), metric: float(values[-1])},
                curve=[{"epoch": e + 1, "train_s": float(cumulative[e]), "loss": 0.1, metric: float(values[e])}
                       for e in range(epochs)],
                time_to_target_s=None if reached is None else cold + float(cumulative[reached] - cumulative[0]),
                epochs_to_target=None if reached is None else reached + 1, peak_host_mb=float(rng.uniform(800, 3000)),
                data_mb=210.0, initial_loss=2.3, initial_loss_ref=2.3)
        records.append(record)
    return records


def write_run(root: Path, n: int) -> str:
    run_id = f"speed-{n}"
    run_dir = root / run_id
    run_dir.mkdir(parents=True)
    records = synthetic_records(n, run_id)
    results.write_json_atomic(run_dir / results.RUN_FILE, {
        "schema_version": results.SCHEMA_VERSION, "run_id": run_id, "created": results.utc_now(),
        "argv": ["bench", "run", "(generated by benchmarks/report_speed.py)"], "env": records[0]["env"],
        "plan": []})
    (run_dir / results.RECORDS).write_bytes(b"".join(results.record_line(r) for r in records))
    return run_id


def time_report(root: Path, run_id: str, fmt: str, out: Path) -> float:
    """Wall seconds of one `bench report` process; fails loudly if the command fails."""
    env = {**os.environ, "COLUMNS": "120", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "harness", "report", run_id, "--out", str(root), "--format", fmt,
           "--output", str(out)]
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"bench report --format {fmt} failed (exit {done.returncode}): {done.stderr[-2000:]}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--formats", nargs="+", default=list(FORMATS), choices=FORMATS)
    parser.add_argument("--tries", type=int, default=2, help="runs per timing; the best is shown (default 2)")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-report-speed-") as tmp:
        root = Path(tmp) / "results"
        for n in args.records:
            run_id = write_run(root, n)
            for fmt in args.formats:
                out = Path(tmp) / f"{run_id}.{fmt}"
                best = min(time_report(root, run_id, fmt, out) for _ in range(args.tries))
                rows.append((n, fmt, best, out.stat().st_size, len(out.read_text(encoding="utf-8").splitlines())))
                print(f"  {n} records, {fmt}: {best:.2f} s", file=sys.stderr)
    print(f"{'records':>8} {'format':>6} {'seconds':>8} {'output':>10} {'lines':>7}")
    for n, fmt, seconds, size, lines in rows:
        print(f"{n:>8} {fmt:>6} {seconds:>8.2f} {size / 1e6:>8.2f}MB {lines:>7}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
