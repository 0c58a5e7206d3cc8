#!/usr/bin/env bash
# Keras and the two packages it needs that the GPU image lacks, as wheels for that image's Python (3.12,
# x86-64), into the ignored folder .whl/ that benchmarks/gpu/run.sh installs offline. Run here (PyPI is
# reachable here, not there), then name .whl in the device call's carry.
set -euo pipefail
cd "$(dirname "$0")/../.."
keras=$(python3 -c 'import importlib.metadata as m; print(m.version("keras"))' 2>/dev/null || echo 3.15.1)
rm -rf .whl && mkdir .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl "keras==$keras" namex optree
ls .whl
