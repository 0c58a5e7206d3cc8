"""Reports from result files only: never re-runs anything."""

from __future__ import annotations

import io

import pandas as pd

FORMATS = ("table", "md", "csv", "json", "html")
KEYS = ["task", "backend", "mode", "device", "precision", "optimizer", "batch_size"]


def _median(series: pd.Series) -> float | None:
    values = pd.to_numeric(series, errors="coerce").dropna()
    return float(values.median()) if len(values) else None


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """One row per cell configuration, medians over repeats; failed repeats keep their reason."""
    rows = []
    if df.empty:
        return pd.DataFrame(columns=KEYS)
    for key, group in df.groupby(KEYS, dropna=False, sort=True):
        ok = group[group["status"] == "ok"]
        statuses = group["status"].value_counts()
        status = "ok" if len(ok) == len(group) else ", ".join(f"{s}×{n}" if n > 1 else s for s, n in statuses.items())
        messages = sorted({m for m in group["message"].dropna() if m})
        rows.append({
            **dict(zip(KEYS, key)),
            "repeats": len(group),
            "status": status,
            "message": "; ".join(messages),
            "steady_epoch_s": _median(ok["steady_epoch_s"]),
            "compile_s": _median(ok["compile_s"]),
            "train_s": _median(ok["train_s"]),
            "samples_per_s": _median(ok["samples_per_s"]),
            "time_to_target_s": _median(ok["time_to_target_s"]),
            "metric": group["metric"].dropna().iloc[0] if group["metric"].notna().any() else None,
            "metric_value": _median(ok["metric_value"]),
            "target": group["target"].dropna().iloc[0] if group["target"].notna().any() else None,
            "target_met": bool(ok["target_met"].all()) if len(ok) else None,
        })
    return pd.DataFrame(rows)


def _fmt(value: object, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def render(df: pd.DataFrame, fmt: str) -> str:
    s = summary(df)
    if fmt == "csv":
        return s.to_csv(index=False)
    if fmt == "json":
        return s.to_json(orient="records", indent=1)
    if fmt == "table":
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table

        table = Table(title="bench results (medians over repeats)")
        columns = ["task", "backend", "mode", "device", "status", "epoch s", "compile s", "train s", "metric",
                   "target"]
        for c in columns:
            table.add_column(c)
        for r in s.to_dict("records"):
            met = "met" if r["target_met"] else ("missed" if r["target_met"] is False else "-")
            status = r["status"] if r["status"] == "ok" else f"{r['status']}: {r['message']}"
            table.add_row(*(escape(str(x)) for x in (
                r["task"], r["backend"], r["mode"], r["device"], status, _fmt(r["steady_epoch_s"]),
                _fmt(r["compile_s"]), _fmt(r["train_s"]), f"{r['metric']} {_fmt(r['metric_value'], 4)}",
                f"{r['target']} ({met})")))
        buffer = io.StringIO()
        Console(file=buffer, width=160, force_terminal=False).print(table)
        return buffer.getvalue()
    raise ValueError(f"format {fmt!r} is not implemented yet")
