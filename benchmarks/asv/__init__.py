"""asv benchmarks for bench: every registered backend x task x mode, each cell run by bench's own runner.

Run from the repository root against the current environment (see README):

    asv run --python=same --set-commit-hash $(git rev-parse HEAD)

Environment variables narrow or size the run (the parameter grid itself stays the same,
so results from different runs line up): BENCH_ASV_BACKENDS, BENCH_ASV_TASKS and
BENCH_ASV_MODES (comma-separated; others are skipped), BENCH_ASV_PROFILE (quick: 1 epoch
on 8192/2000 samples, the default; full: each task's default epochs on all the data).
"""
