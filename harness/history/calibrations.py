"""Machine noise measured by `bench calibrate`, carried into the store, so that `bench history` and the site
weigh each machine's points by it where its runs have too few repeats to measure their own spread.

`bench calibrate` keeps its figures per host under the results folder (harness.store.calibration). When
`bench publish` adds records of a machine, the calibration the results folder holds for that machine's host
is copied into STORE/calibration/<machine id>.json, if it was measured on the same CPU model (a host name
reused on other hardware must not lend its noise). History reads them back as the per-process SD of log
values; `--noise` overrides them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from harness.history.machine import Machine
from harness.store import calibration, durable

FOLDER = "calibration"


def carry(store: Path, root: Path, machines: dict[str, Machine]) -> list[str]:
    """Copy the calibration of each machine's host from the results folder `root` into the store; the ids
    of the machines whose calibration was copied."""
    carried = []
    for machine_id, machine in sorted(machines.items()):
        found = calibration.load(root, machine.host)
        if not found or (found.get("cpu_model") and found.get("cpu_model") != machine.cpu):
            continue
        folder = Path(store) / FOLDER
        folder.mkdir(exist_ok=True)
        durable.replace(folder / f"{machine_id}.json", (json.dumps(found, indent=1, sort_keys=True) + "\n").encode())
        carried.append(machine_id)
    return carried


def load(store: Path) -> dict[str, float]:
    """Per machine id, its calibrated per-process noise as the SD of log values."""
    out = {}
    for path in sorted((Path(store) / FOLDER).glob("*.json")):
        try:
            found = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        cv = found.get("between_cv") if isinstance(found, dict) else None
        if isinstance(cv, (int, float)) and not isinstance(cv, bool) and 0 < cv < 10:
            out[path.stem] = math.sqrt(math.log1p(cv * cv))
    return out
