"""bench-numpy: a pure-NumPy reference backend for bench, and the template for backend plugins.

This module is what the `bench.plugins` entry point names. It only registers the
Backend class; the numerical code is imported by the backend in the worker process.
"""

from bench_numpy.backend import NumpyBackend
from harness import hookimpl

__all__ = ["NumpyBackend", "bench_backends"]
__version__ = "0.1.0"


@hookimpl
def bench_backends() -> list[type]:
    return [NumpyBackend]
