"""A pytest plugin for benchmarks/gpu: what was collected, then each test's outcome, one JSON line each,
written as it happens to the file named by BENCH_GPU_OUTCOMES. A check stopped at its time cap still says
what passed, failed or was skipped, and so what never ran: pytest's own summary dies with it.

Load with `-p pytest_outcomes` and benchmarks/gpu on PYTHONPATH.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

OUTCOMES_ENV = "BENCH_GPU_OUTCOMES"


def _write(entry: dict[str, Any]) -> None:
    path = os.environ.get(OUTCOMES_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")


def pytest_collection_finish(session: pytest.Session) -> None:
    _write({"collected": [item.nodeid for item in session.items]})


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when != "call" and report.passed:
        return  # setup and teardown that passed say nothing
    reason = ""
    if report.skipped and isinstance(report.longrepr, tuple):
        reason = str(report.longrepr[2])
    elif report.failed:
        lines = [line for line in report.longreprtext.splitlines() if line.strip()]
        reason = lines[-1].strip() if lines else ""
    _write({"test": report.nodeid, "when": report.when, "outcome": report.outcome,
            "seconds": round(report.duration, 3), "reason": reason[:300]})
