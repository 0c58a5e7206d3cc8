#!/usr/bin/env bash
# The GPU measurements in one device call of at most 9.5 minutes (docs/gpu.md): preflight, the honesty
# checks on the GPU, the headline table (compiled), then eager and repeats 2-3 with what is left, and
# always one archive in $OUT. The phases and their caps live in benchmarks/gpu/phases.py.
#
#   here, first:  bash benchmarks/gpu/fetch-wheels.sh    (Keras for the GPU image's Python 3.12, into .whl/)
#   device call:  command "bash benchmarks/gpu/run.sh", carry [".whl"], timeout_s 600
#   rehearsal:    BENCH_GPU_DEVICE=cpu BENCH_GPU_BACKENDS=jax BENCH_GPU_BUDGET_S=240 bash benchmarks/gpu/run.sh
#
# Runs bench from this checkout (the device image has no bench installed): PYTHONPATH is the repository.
set -uo pipefail
cd "$(dirname "$0")/../.."
python=${PYTHON:-python3}
exec "$python" -u benchmarks/gpu/phases.py
