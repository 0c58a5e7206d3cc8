"""The worker's energy accounting: the cell's meter opened after the framework's import, read around the
synced epochs (harness.cell.worker_phases.train) and the inference windows (harness.cell.worker_inference),
and folded into the record's energy columns at the end (docs/inference-and-energy.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.measure.energy import Tally, open_meter

if TYPE_CHECKING:
    from harness.cell.worker_phases import Measurement

UNAVAILABLE = "unavailable"


def open_energy(m: Measurement) -> None:
    """The cell's meter, or the reason it has none (a meter that fails is never the cell's failure)."""
    try:
        meter = open_meter(m.cell.device)
        if isinstance(meter, str):
            m.energy_note = meter
        else:
            m.energy = Tally(meter)
    except Exception as exc:  # noqa: BLE001 - e.g. a driver's odd error: the cell is measured without energy
        m.energy, m.energy_note = None, f"the energy counter failed: {type(exc).__name__}: {exc}"


def energy_values(m: Measurement, steady_samples: int | None) -> dict[str, Any]:
    """The record's energy columns. `steady_samples`: the samples trained in the epochs after the first (None
    for an inference cell or a one-epoch cell); samples per joule is over those epochs."""
    if m.energy is None:
        return {"energy_source": UNAVAILABLE, "energy_note": m.energy_note or "no energy counter was opened",
                "energy_j": None, "epoch_j": None, "samples_per_j": None}
    m.energy.read()  # the end of the cell's window
    notes = []
    if m.energy.short:
        notes.append(f"{m.energy.short} window(s) shorter than the counter's {m.energy.meter.update_s * 1e3:g} ms "
                     "update period: their joules may read 0 or one update too many (flagged, not corrected)")
    steady_j = m.epoch_j[1:]
    samples_per_j = None
    if steady_samples and steady_j and all(j is not None for j in steady_j) and sum(steady_j) > 0:
        samples_per_j = steady_samples / sum(steady_j)
    if m.energy.joules is None or None in m.epoch_j:
        notes.append("a counter went backwards (driver reloaded?): what spans it is unknown")
    epoch_j = m.epoch_j if m.epoch_j and None not in m.epoch_j else None
    return {"energy_source": m.energy.meter.source, "energy_note": "; ".join(notes), "energy_j": m.energy.joules,
            "epoch_j": epoch_j, "samples_per_j": samples_per_j}
