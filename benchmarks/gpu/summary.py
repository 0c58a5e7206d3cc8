"""The one-screen summary's tables, from the runs' records: what ran, the steady epochs, the sync cross-check."""

from __future__ import annotations

import statistics
from collections import Counter

from advance import Run


def _seconds(s: float | None) -> str:
    if s is None:
        return "-"
    return f"{s * 1e3:.3g} ms" if s < 1 else f"{s:.3g} s"


def run_lines(runs: list[Run]) -> list[str]:
    """Per run: its folder, cells recorded of planned, by status, and how each bench process ended."""
    lines = []
    for run in runs:
        if run.folder is None:
            lines.append(f"{run.name}: not started")
            continue
        records, planned = run.records(), run.planned()
        statuses = Counter(r.get("status") for r in records)
        by_repeat = Counter(r.get("repeat") for r in records)
        lines.append(f"{run.name} (run {run.folder.name}): {len(records)} of {len(planned)} cells recorded ("
                     + ", ".join(f"{n} {s}" for s, n in sorted(statuses.items())) + "; by repeat "
                     + ", ".join(f"r{k + 1}: {n}" for k, n in sorted(by_repeat.items())) + "); bench: "
                     + ", ".join(run.exits))
    return lines


def table(runs: list[Run], tasks: list[str]) -> list[str]:
    """backend x mode rows, task columns: the median steady epoch over repeats with the target's mark, or
    the status of a cell that did not finish ok."""
    rows: dict[tuple[str, str], dict[str, list[dict]]] = {}
    for run in runs:
        for r in run.records():
            rows.setdefault((r["backend"], r["mode"]), {}).setdefault(r["task"], []).append(r)
    if not rows:
        return []
    width = max(len(f"{b} {m}") for b, m in rows) + 2
    lines = ["".ljust(width) + "".join(t.ljust(18) for t in tasks) + "(steady epoch, median of ok repeats)"]
    for (backend, mode), cells in rows.items():
        text = []
        for task in tasks:
            records = cells.get(task, [])
            ok = [r["steady_epoch_s"] for r in records if r.get("status") == "ok" and r.get("steady_epoch_s")]
            if ok:
                mark = "✓" if all(r.get("target_met") for r in records if r.get("status") == "ok") else "✗"
                text.append(f"{_seconds(statistics.median(ok))} {mark} x{len(ok)}")
            else:
                text.append(",".join(sorted({r.get('status', '?') for r in records})) or "-")
        lines.append(f"{backend} {mode}".ljust(width) + "".join(t.ljust(18) for t in text))
    return lines


def sync_lines(runs: list[Run]) -> list[str]:
    """Torch cells on cuda: the CUDA-event time of the steady epoch beside the harness's synced wall clock."""
    lines = []
    for run in runs:
        for r in run.records():
            details = r.get("details") or {}
            epoch, events = details.get("cuda_event_epoch"), details.get("cuda_event_epoch_s")
            if epoch and events is not None and len(r.get("epoch_s") or []) >= epoch:
                wall = r["epoch_s"][epoch - 1]
                lines.append(f"{r['backend']} {r['mode']} {r['task']} r{r['repeat'] + 1}: epoch {epoch}: "
                             f"CUDA events {_seconds(events)}, synced wall clock {_seconds(wall)} "
                             f"(ratio {events / wall:.3f}{'' if events <= wall * 1.02 + 1e-4 else ': SYNC SUSPECT'})")
    return lines
