#!/usr/bin/env bash
# The GPU measurements (torch and jax, every task, both modes, three repeats), run through the device
# tool in as many calls as its time allows: each call resumes the committed, unfinished runs, stops
# them cleanly (SIGINT) before its budget, and hands back one archive to commit under results/.
#
#   device run:   bash benchmarks/gpu/run.sh                      (BENCH_GPU_BUDGET_S, default 420)
#   back here:    tar -xzf <files_at>/gpu-runs.tgz -C results/ && git add results/reference-gpu-*
#
# The compiled run (the speed targets) goes first; the eager run gets what time is left.
# Runs from the checkout without installing anything: the device image has torch, jax, optax,
# numpy, pandas, pluggy and rich, and no internet.
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-/tmp/bench-gpu-out}
mkdir -p "$out"
scratch=$(mktemp -d)
budget=${BENCH_GPU_BUDGET_S:-420}
deadline=$(( $(date +%s) + budget ))
export PYTHONUNBUFFERED=1 BENCH_DISABLE_PLUGIN_AUTOLOAD=1
python=${PYTHON:-python3}

{
    nvidia-smi -L
    "$python" -c 'import sys, torch, jax; print(sys.version.split()[0], "torch", torch.__version__, "jax", jax.__version__, jax.devices())'
} > "$out/gpu-env.txt" 2>&1

# The GPU-marked tests first: a broken GPU path shows here, in two minutes, not as a run of errors.
timeout 150 "$python" -m pytest -q -m gpu -p no:cacheprovider tests/test_backend_torch.py tests/test_backend_jax.py \
    > "$out/gpu-tests.txt" 2>&1
echo "gpu tests: exit $?" >> "$out/gpu-tests.txt"

run() {  # name, then bench run options: resume results/<name> if it was committed, else start it
    local name=$1; shift
    local left=$(( deadline - $(date +%s) )) code
    if (( left < 30 )); then echo "$name: no time left" >> "$out/gpu-log.txt"; return; fi
    if [[ -f results/$name/run.json ]]; then
        cp -r "results/$name" "$scratch/$name"
        timeout -s INT "$left" "$python" -m harness run --resume "$scratch/$name" >> "$out/gpu-log.txt" 2>&1
        code=$?
    else
        timeout -s INT "$left" "$python" -m harness run --backend torch,jax --device cuda "$@" \
            --out "$scratch/new-$name" >> "$out/gpu-log.txt" 2>&1
        code=$?
        mv "$scratch/new-$name"/*/ "$scratch/$name"
    fi
    echo "$name: exit $code after $(( $(date +%s) - deadline + left )) s" >> "$out/gpu-log.txt"
}

run reference-gpu-compiled --mode compiled --repeat 3
run reference-gpu-eager --mode eager --repeat 3

names=$(cd "$scratch" && ls -d reference-gpu-* 2>/dev/null)
if [[ -n $names ]]; then
    tar -czf "$out/gpu-runs.tgz" -C "$scratch" $names
    for name in $names; do
        "$python" -m harness report "$scratch/$name" --format md --output "$out/$name.md" 2>> "$out/gpu-log.txt"
    done
fi
