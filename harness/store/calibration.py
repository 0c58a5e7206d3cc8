"""A machine's measured noise (bench calibrate), kept per machine under the results folder, where bench compare
and the reports find it for records made on that machine."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from harness.measure.noise import agreeing_pairs, cv_of_logs, sd_log_of
from harness.store import durable
from harness.store.record import finite_number

FOLDER = "calibration"
SESSIONS_KEPT = 10  # calibrations pooled per machine: bursts of noise show in some minutes and not others


def path_for(root: Path, host: str) -> Path:
    return Path(root) / FOLDER / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', host) or 'unknown'}.json"


def save(root: Path, host: str, values: dict[str, Any]) -> Path:
    path = path_for(root, host)
    path.parent.mkdir(parents=True, exist_ok=True)
    write(path, values)
    return path


def write(path: Path, values: dict[str, Any]) -> None:
    durable.replace(path, (json.dumps(values, indent=1, sort_keys=True) + "\n").encode("utf-8"))


def load(root: Path, host: str | None) -> dict[str, Any] | None:
    """The calibration of `host` under `root`, or None when there is none (or it cannot be read)."""
    return read(path_for(root, host)) if host else None


def read(path: Path) -> dict[str, Any] | None:
    """The calibration in the file at `path`, or None when it cannot be read or its spread is not a number."""
    try:
        found = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    between = found.get("between_cv") if isinstance(found, dict) else None
    if isinstance(between, bool) or not isinstance(between, (int, float)) or not 0 <= between < 10:
        return None
    return found


def sessions(found: dict[str, Any] | None, cell: str) -> list[dict[str, Any]]:
    """The kept calibrations of `cell` in a machine's file (none when it calibrated another cell, or never)."""
    if not found or found.get("cell") != cell or not isinstance(found.get("sessions"), list):
        return []
    return [s for s in found["sessions"] if isinstance(s, dict) and _counts(s)]


def _counts(session: dict[str, Any]) -> bool:
    p, slow, cv = session.get("processes"), session.get("slow_processes"), session.get("between_cv")
    return (isinstance(p, int) and p > 0 and isinstance(slow, int) and 0 <= slow <= p
            and isinstance(cv, (int, float)) and not isinstance(cv, bool) and 0 <= cv < 10)


def pooled(kept: list[dict[str, Any]]) -> dict[str, Any]:
    """Processes and slow-mode processes summed over calibrations; the spread between processes pooled as the
    mean of the sessions' log-variances (each session against its own level, so that a machine faster on one
    day than another adds no spread); the spread within a process as the sessions' median."""
    variances = [sd_log_of(s["between_cv"]) ** 2 for s in kept]
    within = sorted(s["within_cv"] for s in kept if isinstance(s.get("within_cv"), (int, float)))
    return {"processes": sum(s["processes"] for s in kept), "slow_processes": sum(s["slow_processes"] for s in kept),
            "between_cv": math.sqrt(math.expm1(sum(variances) / len(variances))),
            "within_cv": within[len(within) // 2] if within else None, "calibrations": len(kept),
            **pooled_pairs(kept)}


def pooled_pairs(kept: list[dict[str, Any]]) -> dict[str, Any]:
    """The lockstep pairs of the calibrations that ran them (the same cell against itself, so every ratio centres
    on 1): their count, how many had one process alone in the slow mode (set aside as compare sets them aside),
    and the spread of the others' ratios; {} when no calibration has two such pairs."""
    ratios = [float(r) for s in kept if isinstance(s.get("pair_ratios"), list) for r in s["pair_ratios"]
              if (finite_number(r) or 0) > 0]
    ones = [1.0] * len(ratios)
    _, agreeing, lone = agreeing_pairs(ones, ratios)
    cv = cv_of_logs(agreeing)
    return {} if cv is None else {"lockstep_pairs": len(ratios), "lockstep_lone": lone, "lockstep_cv": cv}
