"""Machine noise measured by `bench calibrate`, carried into the store, so that `bench history` and the site
weigh each machine's points by it where its runs have too few repeats to measure their own spread.

`bench calibrate` keeps its figures per host under the results folder (harness.store.calibration). When
`bench publish` adds records of a machine, the calibration the results folder holds for that machine's host
is copied into STORE/calibration/<machine id>.json, if it was measured on the same CPU model (a host name
reused on other hardware must not lend its noise). History reads them back as the per-process SD of log
values; `--noise` overrides them.
"""

from __future__ import annotations

from pathlib import Path

from harness.history.machine import Machine
from harness.measure.noise import sd_log_of
from harness.store import calibration

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
        calibration.write(folder / f"{machine_id}.json", found)
        carried.append(machine_id)
    return carried


def load(store: Path) -> dict[str, float]:
    """Per machine id, its calibrated per-process noise as the SD of log values."""
    out = {}
    for path in sorted((Path(store) / FOLDER).glob("*.json")):
        found = calibration.read(path)
        if found and found["between_cv"] > 0:  # a calibration that measured no spread weighs nothing
            out[path.stem] = sd_log_of(found["between_cv"])
    return out
