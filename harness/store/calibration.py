"""A machine's measured noise (bench calibrate), kept per machine under the results folder, where bench compare
and the reports find it for records made on that machine."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from harness.store import durable

FOLDER = "calibration"


def path_for(root: Path, host: str) -> Path:
    return Path(root) / FOLDER / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', host) or 'unknown'}.json"


def save(root: Path, host: str, values: dict[str, Any]) -> Path:
    path = path_for(root, host)
    path.parent.mkdir(parents=True, exist_ok=True)
    durable.replace(path, (json.dumps(values, indent=1, sort_keys=True) + "\n").encode("utf-8"))
    return path


def load(root: Path, host: str | None) -> dict[str, Any] | None:
    """The calibration of `host` under `root`, or None when there is none (or it cannot be read)."""
    if not host:
        return None
    try:
        found = json.loads(path_for(root, host).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    between = found.get("between_cv") if isinstance(found, dict) else None
    if isinstance(between, bool) or not isinstance(between, (int, float)) or not 0 <= between < 10:
        return None
    return found
