#!/usr/bin/env bash
# The GPU measurements, run through the device tool in as many calls as its time allows: the checks that
# only a GPU can make (the gpu-marked tests, the conformance suite on cuda), then every GPU backend x task,
# compiled and eager, three repeats. Each call resumes the committed, unfinished runs, stops them cleanly
# (SIGINT) before its budget, and hands back one archive to commit under results/.
#
#   here, first:   bash benchmarks/gpu/fetch-wheels.sh     (Keras for the GPU image, into the ignored .whl/)
#   device run:    bash benchmarks/gpu/run.sh              (carry .whl, timeout_s 590; BENCH_GPU_BUDGET_S, default 540)
#   back here:     tar -xzf <files_at>/gpu-runs.tgz -C results/ && git add results/reference-gpu-*
#
# Runs from the checkout without installing bench: the device image has torch, jax, optax, numpy, pandas,
# pluggy, rich, scipy and pytest, no TensorFlow and no internet. Every step is capped by what is left of the
# budget, and so is every cell (--timeout, what was left when the run started): a cell longer than a whole
# call is interrupted at most once, then runs first in the next call and is recorded as a timeout there,
# instead of holding every later call hostage.
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-/tmp/bench-gpu-out}
mkdir -p "$out"
log=$out/gpu-log.txt
scratch=$(mktemp -d)
budget=${BENCH_GPU_BUDGET_S:-540}
deadline=$(( $(date +%s) + budget ))
export PYTHONUNBUFFERED=1 BENCH_DISABLE_PLUGIN_AUTOLOAD=1
python=${PYTHON:-python3}

say() { echo "run.sh: $*" | tee -a "$log"; }
left() { echo $(( deadline - $(date +%s) )); }

# Stop at once, with one line, when what the run needs is not there.
for module in pytest numpy pandas pluggy rich scipy; do
    "$python" -c "import $module" 2>/dev/null || { say "stopping: $python cannot import $module"; exit 2; }
done

# Keras is pure Python but not on the image: it travels as wheels in .whl/ and is installed offline.
if compgen -G ".whl/keras-*.whl" > /dev/null; then
    if "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target "$scratch/site" .whl/*.whl >> "$log" 2>&1; then
        export PYTHONPATH=$scratch/site${PYTHONPATH:+:$PYTHONPATH}
    else
        say "the wheels in .whl/ did not install: the Keras backends are skipped"
    fi
else
    say "no .whl/keras-*.whl (run benchmarks/gpu/fetch-wheels.sh here and carry .whl): the Keras backends are skipped"
fi

# The GPU as each framework sees it (nvidia-smi alone can be missing or disagree): backends follow from that.
nvidia-smi -L > "$out/gpu-env.txt" 2>&1
backends=${BENCH_GPU_BACKENDS:-}  # set, with BENCH_GPU_DEVICE=cpu, only to rehearse this script on a CPU
device=${BENCH_GPU_DEVICE:-cuda}
[[ -n $backends ]] || backends=$("$python" - 2>> "$out/gpu-env.txt" <<'EOF'
import importlib.util, sys

seen = []
print(sys.version.split()[0], file=sys.stderr)
try:
    import torch
    print("torch", torch.__version__, "cuda:", torch.cuda.is_available(),
          torch.cuda.get_device_name(0) if torch.cuda.is_available() else "", file=sys.stderr)
    if torch.cuda.is_available():
        seen.append("torch")
except Exception as exc:
    print("torch:", exc, file=sys.stderr)
try:
    import jax
    gpus = [d for d in jax.devices() if d.platform == "gpu"]
    print("jax", jax.__version__, "gpus:", gpus, file=sys.stderr)
    if gpus:
        seen.append("jax")
except Exception as exc:
    print("jax:", exc, file=sys.stderr)
if importlib.util.find_spec("keras") is not None:
    seen += [f"keras-{name}" for name in list(seen)]
print(",".join(seen))
EOF
)
cat "$out/gpu-env.txt" >> "$log"
if [[ -z $backends ]]; then
    say "stopping: neither torch nor jax sees a GPU here (see gpu-env.txt)"
    exit 2
fi
say "backends on the GPU: $backends"

# The checks only a GPU can make, capped to a third of the budget in all: the gpu-marked tests, then the
# conformance suite on cuda for each backend (its sync check is only meaningful where work is asynchronous).
checks_end=$(( $(date +%s) + budget / 3 ))
checks_left() { local l=$(( checks_end - $(date +%s) )); echo $(( l > 0 ? l : 0 )); }
timeout "$(checks_left)" "$python" -m pytest -q -m gpu -p no:cacheprovider tests/test_backend_torch.py \
    tests/test_backend_jax.py > "$out/gpu-tests.txt" 2>&1
say "gpu tests: exit $?"
conformance=""  # the sync check first: it is the one a CPU cannot exercise
for module in sync contract weights training optimizers steady_state determinism; do
    conformance+=" harness.conformance.test_$module"
done
remaining=$(tr ',' '\n' <<< "$backends" | wc -l)
for backend in ${backends//,/ }; do
    n=$(( $(checks_left) / remaining ))  # a fair share of what the checks have left
    remaining=$(( remaining - 1 ))
    if (( n < 10 )); then say "conformance $backend: no time left"; continue; fi
    timeout "$n" "$python" -m pytest -q -p no:cacheprovider -p harness.conformance.plugin --pyargs $conformance \
        --bench-backend "$backend" --bench-device "$device" > "$out/conformance-$backend.txt" 2>&1
    say "conformance $backend on $device: exit $? (124: stopped at its $n s cap)"
done

run() {  # name, then bench run options: resume results/<name> if it was committed, else start it
    local name=$1; shift
    local l code
    l=$(left)
    if (( l < 30 )); then say "$name: no time left"; return; fi
    if [[ -f results/$name/run.json ]]; then
        cp -r "results/$name" "$scratch/$name"
        timeout -s INT "$l" "$python" -m harness run --resume "$scratch/$name" --timeout $(( l - 15 )) >> "$log" 2>&1
        code=$?
    else
        timeout -s INT "$l" "$python" -m harness run --backend "$backends" --device "$device" --timeout $(( l - 15 )) \
            "$@" --out "$scratch/new-$name" >> "$log" 2>&1
        code=$?
        if compgen -G "$scratch/new-$name/*/run.json" > /dev/null; then mv "$scratch/new-$name"/*/ "$scratch/$name"; fi
    fi
    say "$name: exit $code after $(( l - $(left) )) s"
}

run reference-gpu-compiled --mode compiled --repeat 3
run reference-gpu-eager --mode eager --repeat 3

names=$(cd "$scratch" && ls -d reference-gpu-* 2>/dev/null)
if [[ -n $names ]]; then
    tar -czf "$out/gpu-runs.tgz" -C "$scratch" $names
    for name in $names; do
        "$python" -m harness report "$scratch/$name" --format md --output "$out/$name.md" 2>> "$log"
    done
fi
