#!/usr/bin/env bash
# Keras and the two packages it needs that the GPU image lacks (namex, optree), as wheels for that image's
# Python (3.12, x86-64), into the ignored folder .whl/. Run here, where PyPI is reachable; the GPU machine
# has no internet, and benchmarks/gpu/run.sh installs these offline (pip --target) in its preflight.
# Keras's other needs are on the image already: absl-py, h5py, ml-dtypes, numpy, packaging, rich (and
# optree's typing-extensions).
set -euo pipefail
cd "$(dirname "$0")/../.."
python=${PYTHON:-$( [[ -x .venv/bin/python ]] && echo .venv/bin/python || echo python3 )}
# The Keras this checkout is tested with, so the GPU measures the same one.
keras=$("$python" -c 'import importlib.metadata as m; print(m.version("keras"))' 2>/dev/null || echo 3.15.1)
rm -rf .whl && mkdir .whl
"$python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl "keras==$keras" namex optree
for name in keras namex optree; do
    compgen -G ".whl/$name-*.whl" > /dev/null || { echo "fetch-wheels: no $name wheel for Python 3.12 in .whl/" >&2; exit 1; }
done
ls -l .whl
echo "fetch-wheels: $(du -sh .whl | cut -f1) in .whl/ (git-ignored); in the device call name it: carry [\".whl\"]"
