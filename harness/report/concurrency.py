"""Whether two sets of records ran under the same concurrency: cells that shared their machine with other
cells (a `--jobs` run, a shared cluster node) were timed under contention that a lone cell was not, so
their times are not comparable as they stand. Reads only the `node_cells` column of the records."""

from __future__ import annotations

import pandas as pd


def sharing(records: pd.DataFrame) -> list[int]:
    """The distinct `node_cells` of the records that ran (finished ok); empty when not recorded (older runs)."""
    if "node_cells" not in records.columns or "status" not in records.columns:
        return []
    ran = pd.to_numeric(records.loc[records["status"] == "ok", "node_cells"], errors="coerce").dropna()
    return sorted({int(v) for v in ran})


def describe(counts: list[int]) -> str:
    if counts == [1]:
        return "each cell alone on its machine"
    low, high = counts[0], counts[-1]
    return f"{low} cells at once" if low == high else f"{low} to {high} cells at once on a machine"


def concurrency_warning(a_label: str, a: pd.DataFrame, b_label: str, b: pd.DataFrame) -> str | None:
    """One line when both sides say how many cells shared their machines and they differ; else None."""
    a_counts, b_counts = sharing(a), sharing(b)
    if not a_counts or not b_counts or a_counts == b_counts:
        return None
    return (f"{a_label} and {b_label} ran under different concurrency ({a_label}: {describe(a_counts)}; "
            f"{b_label}: {describe(b_counts)}): cells sharing a machine time each other, so their times may "
            f"differ for that reason alone")
