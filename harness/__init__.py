"""bench: train the same workloads in several frameworks and compare them fairly."""

import pluggy

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("bench")
"""Decorate plugin functions with this to implement a `bench_*` hook."""
