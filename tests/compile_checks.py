"""What every built-in backend's compile_s must look like in a one-epoch cell's record."""

from __future__ import annotations

from typing import Any


def assert_compile_measured(result: dict[str, Any]) -> None:
    """Measured, said how, and inside the phases that compile: setup and the (only) epoch."""
    compile_s, source = result["compile_s"], result["compile_source"]
    assert isinstance(source, str) and source.strip(), f"compile_source {source!r}"
    assert compile_s is not None and 0 < compile_s < result["setup_s"] + result["first_epoch_s"], (
        f"compile_s {compile_s} outside (0, setup_s {result['setup_s']:.3f} + first_epoch_s "
        f"{result['first_epoch_s']:.3f})")


def assert_nothing_compiled(result: dict[str, Any]) -> None:
    assert result["compile_s"] == 0.0 and result["compile_source"], (result["compile_s"], result["compile_source"])
