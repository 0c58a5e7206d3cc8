"""MNIST from a local copy: checksummed, parsed from IDX, cached as arrays. Never downloads.

The four IDX files (gzip-compressed or not) are looked for in $BENCH_DATA_DIR, else
in the copy shipped with this package (tasks/data/mnist). The uncompressed bytes
are checked against the canonical sha256 sums, so any mirror's copy works and a
corrupt or substituted file is refused.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path

import numpy as np

from harness.api import DataError

DATA_ENV = "BENCH_DATA_DIR"
CACHE_ENV = "BENCH_CACHE_DIR"
PACKAGED_DIR = Path(__file__).parent / "data" / "mnist"

FILES = {
    "train_images": ("train-images-idx3-ubyte", "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
    "train_labels": ("train-labels-idx1-ubyte", "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
    "test_images": ("t10k-images-idx3-ubyte", "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
    "test_labels": ("t10k-labels-idx1-ubyte", "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
}
TRAIN_SAMPLES, TEST_SAMPLES = 60000, 10000
MEAN, STD = 0.1307, 0.3081  # of the training pixels scaled to [0, 1]
HOW_TO_FIX = (
    f"put the four MNIST IDX files ({', '.join(f + '[.gz]' for f, _ in FILES.values())}) "
    f"in a folder and set {DATA_ENV} to it"
)


def data_dir() -> Path:
    return Path(os.environ[DATA_ENV]) if os.environ.get(DATA_ENV) else PACKAGED_DIR


def cache_dir() -> Path:
    root = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "bench")
    return root / "mnist-v1"


def _read_verified(folder: Path, stem: str, sha256: str) -> bytes:
    for path in (folder / f"{stem}.gz", folder / stem):
        if not path.is_file():
            continue
        try:
            raw = path.read_bytes()
            data = gzip.decompress(raw) if path.suffix == ".gz" else raw
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise DataError(f"MNIST file {path} is unreadable ({exc}); {HOW_TO_FIX}") from None
        if hashlib.sha256(data).hexdigest() != sha256:
            raise DataError(f"MNIST file {path} fails its checksum (corrupt or not MNIST); {HOW_TO_FIX}")
        return data
    raise DataError(f"MNIST file {stem}[.gz] not found in {folder}; {HOW_TO_FIX}")


def _parse_idx(data: bytes) -> np.ndarray:
    ndim = data[3]
    dims = np.frombuffer(data, dtype=">u4", count=ndim, offset=4)
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(tuple(int(d) for d in dims))


def prepare() -> dict[str, np.ndarray]:
    """Verify the source files and (re)write the array cache; returns the raw uint8 arrays."""
    folder = data_dir()
    arrays = {key: _parse_idx(_read_verified(folder, stem, sha)) for key, (stem, sha) in FILES.items()}
    cache = cache_dir()
    try:
        cache.mkdir(parents=True, exist_ok=True)
        for key, array in arrays.items():
            tmp = cache / f".{key}.{os.getpid()}.npy"
            np.save(tmp, array, allow_pickle=False)
            os.replace(tmp, cache / f"{key}.npy")
    except OSError:
        pass  # an unwritable cache only costs speed
    return arrays


def _cached() -> dict[str, np.ndarray] | None:
    cache = cache_dir()
    try:
        arrays = {key: np.load(cache / f"{key}.npy", allow_pickle=False) for key in FILES}
    except (OSError, ValueError):
        return None
    shapes = {"train_images": (TRAIN_SAMPLES, 28, 28), "train_labels": (TRAIN_SAMPLES,),
              "test_images": (TEST_SAMPLES, 28, 28), "test_labels": (TEST_SAMPLES,)}
    ok = all(arrays[k].shape == shape and arrays[k].dtype == np.uint8 for k, shape in shapes.items())
    return arrays if ok else None


def load_mnist(train_size: int | None = None, test_size: int | None = None) -> tuple[np.ndarray, ...]:
    """(x_train, y_train, x_test, y_test): images (N, 28, 28, 1) float32 standardised, labels int32.

    Sizes take the first N samples of each split, in the original order.
    """
    arrays = _cached() or prepare()

    # One table lookup per pixel: several times faster than scaling 47M floats step by step.
    table = ((np.arange(256, dtype=np.float32) / np.float32(255.0) - np.float32(MEAN)) / np.float32(STD))

    def images(a: np.ndarray, n: int | None) -> np.ndarray:
        return table[a[:n]][..., None]

    return (
        images(arrays["train_images"], train_size),
        arrays["train_labels"][:train_size].astype(np.int32),
        images(arrays["test_images"], test_size),
        arrays["test_labels"][:test_size].astype(np.int32),
    )
