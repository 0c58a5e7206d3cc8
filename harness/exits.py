"""Exit codes and the one error every command raises for bad input: a leaf module, so the CLI and the
commands it dispatches to both import it and never each other."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INCONCLUSIVE, EXIT_NOT_SAVED, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130
RESULTS_ENV = "BENCH_RESULTS_DIR"


class UsageError(Exception):
    """Bad input: reported as one line, exit code 2."""


def choose(kind: str, given: list[str] | None, valid: Sequence[str]) -> None:
    """Raise UsageError naming the valid choices if any given name is not one of them."""
    for name in given or []:
        if name not in valid:
            raise UsageError(f"unknown {kind} {name!r} (choose from: {', '.join(sorted(valid)) or 'none registered'})")


def results_root(option: str | None) -> Path:
    return Path(option or os.environ.get(RESULTS_ENV) or "results")
