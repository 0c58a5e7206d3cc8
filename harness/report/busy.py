"""Whether figures were taken on a busy machine, from what each cell saw while it trained (the record's
`interference`, per epoch, and `node_cells`): other bench cells running beside it, CPU time the hypervisor
stole, a load average above the cores. One line for the top of every report, and for `bench compare` when its
two sides were taken differently. Empty when the records say the machine was quiet, or say nothing."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from harness.store.record import finite_number

STEAL_SHARE = 0.02  # of the machine's CPU time during an epoch: a hypervisor taking more is a busy host
LOAD_ABOVE_CORES = 1.0  # a 1-minute load average this far above the cores: other work queued for them


@dataclass
class Busy:
    cells: int = 0  # records that ran beside other bench cells
    most_cells: int = 0  # the most bench cells seen at once, the cell included
    steal_share: float = 0.0  # the largest share of the machine's CPU time stolen during an epoch
    load: float = 0.0  # the highest load average seen at the end of an epoch
    cores: int | None = None
    loaded: int = 0  # records that saw the load above their cores
    stolen: int = 0  # records that saw steal above STEAL_SHARE
    measured: int = 0  # records with interference readings

    @property
    def busy(self) -> bool:
        return bool(self.cells or self.loaded or self.stolen)


def assess(records: pd.DataFrame) -> Busy:
    """What the records of cells that trained say about the machine while they ran."""
    found = Busy()
    if records is None or records.empty:
        return found
    columns = [c for c in ("interference", "node_cells", "epoch_s", "env_cpu_count", "env_usable_cores")
               if c in records.columns]
    for row in records[columns].to_dict("records"):
        epochs = row.get("interference") if isinstance(row.get("interference"), list) else []
        walls = row.get("epoch_s") if isinstance(row.get("epoch_s"), list) else []
        cpus = finite_number(row.get("env_cpu_count")) or finite_number(row.get("env_usable_cores"))
        cores = finite_number(row.get("env_usable_cores")) or cpus
        beside = max(0, int(finite_number(row.get("node_cells")) or 1) - 1)
        loaded = stolen = False
        for i, epoch in enumerate(e for e in epochs if isinstance(e, dict)):
            found.measured += i == 0
            beside = max(beside, int(finite_number(epoch.get("other_cells")) or 0))
            load = finite_number(epoch.get("load"))
            if load is not None:
                found.load = max(found.load, load)
                loaded |= cores is not None and load > cores + LOAD_ABOVE_CORES
            steal, wall = finite_number(epoch.get("steal_s")), finite_number(walls[i]) if i < len(walls) else None
            if steal is not None and wall and cpus:
                share = steal / (wall * cpus)
                found.steal_share = max(found.steal_share, share)
                stolen |= share > STEAL_SHARE
        if cores is not None:
            found.cores = int(cores)
        found.cells += beside > 0
        found.most_cells = max(found.most_cells, beside + 1)
        found.loaded += loaded
        found.stolen += stolen
    return found


def busy_line(records: pd.DataFrame) -> str:
    """'Busy machine: ...' when the records say their machine was busy while they trained; else ''."""
    total = len(records) if records is not None else 0
    found = assess(records)
    if not found.busy:
        return ""
    parts = []
    if found.cells:
        parts.append(f"{found.cells} of {total} cells ran beside other bench cells (up to {found.most_cells} at once)")
    if found.stolen:
        parts.append(f"the hypervisor took up to {found.steal_share:.0%} of the machine's CPU time during an epoch "
                     f"({found.stolen} cells)")
    if found.loaded:
        parts.append(f"load average up to {found.load:.1f} on {found.cores} cores ({found.loaded} cells)")
    return ("Busy machine: " + "; ".join(parts) + ". Times taken so include the other work: compare them only with "
            "runs taken alike, or run again on a quiet machine.")
