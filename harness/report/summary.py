"""Records folded into one row per run and cell configuration, with whole-column pandas operations
(groupby().agg, never a pandas call per row), so a sweep of 10,000 configurations summarises in well
under a second; plus the environments the records came from and where they differ."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

KEYS = ["task", "backend", "mode", "device", "precision", "optimizer", "batch_size", "lr", "weight_decay", "l1",
        "epochs", "python"]
SHOWN_KEYS = ("task", "backend", "mode", "device")  # always shown; the other keys only where they vary
NOISY_CV = 0.07  # repeats spread more than this (coefficient of variation) get flagged
ENV_FIELDS = [
    ("cpu_model", "CPU"), ("usable_cores", "usable cores"), ("cpu_count", "CPUs"), ("ram_gb", "RAM (GB)"),
    ("gpu", "GPU"), ("gpu_count", "GPUs"), ("gpu_driver", "GPU driver"), ("gpu_memory", "GPU memory"),
    ("cuda", "CUDA"), ("os", "OS"), ("python", "Python"), ("hostname", "host"),
    ("harness_version", "bench"), ("git_commit", "git commit"),
]
MEDIANS = ("steady_epoch_s", "first_epoch_s", "cold_start_s", "samples_per_s", "step_ms_p50", "eval_s",
           "time_to_target_s", "epochs_to_target", "metric_value", "data_mb")
PEAKS = ("peak_host_mb", "peak_device_mb")
# Inference cells' figures and the energy figures, medians over ok repeats like the timings above.
INFERENCE_MEDIANS = ("infer_first_ms", "infer_ms_p50", "infer_ms_p90", "infer_ms_p99", "infer_queries",
                     *(f"infer_samples_per_{unit}_b{b}" for unit in ("s", "j") for b in (1, 32, 256, 1024)),
                     "energy_j", "samples_per_j")
LABELS = ("phase", "energy_source")  # per configuration, the first non-null (columns older records lack)
FIRSTS = ("device_name", "framework_version", "train_size", "threads", "metric", "target")
BOOTSTRAP_RESAMPLES = 2000  # as harness.measure.clock.bootstrap_ci
BOOTSTRAP_CHUNK = 20_000_000  # resampled values held at once


def config_of(cell_id: str) -> str:
    """The cell's configuration: its id without the repeat index (every other setting is in the id)."""
    return _configs(pd.Series([str(cell_id)])).iloc[0]


def _configs(cell_ids: pd.Series) -> pd.Series:
    return cell_ids.astype(str).str.replace(r"-r\d+$", "", regex=True)


def _numeric(df: pd.DataFrame, column: str) -> pd.Series:
    return pd.to_numeric(df[column], errors="coerce").astype(float) if column in df else pd.Series(np.nan, df.index)


def _joined(codes: np.ndarray, texts: list[str], sep: str) -> dict[int, str]:
    """Texts of each group code joined in order (one pass over plain values)."""
    out: dict[int, list[str]] = {}
    for code, text in zip(codes.tolist(), texts):
        out.setdefault(code, []).append(text)
    return {code: sep.join(parts) for code, parts in out.items()}


def status_summaries(status: pd.Series, message: pd.Series, codes: np.ndarray) -> pd.DataFrame:
    """Per group code: ('ok', '') when every repeat is ok; otherwise counts per status ('ok 2/3, oom 1/3')
    and the distinct reasons in order of first appearance, each with its count when above one."""
    frame = pd.DataFrame({"code": codes, "status": status.astype(str).to_numpy()})
    counts = frame.groupby(["code", "status"], sort=False).size().rename("count").reset_index()
    counts["n"] = counts.groupby("code")["count"].transform("sum")
    counts["kinds"] = counts.groupby("code")["status"].transform("size")
    single = counts[counts["kinds"] == 1].set_index("code")["status"]
    mixed = counts[counts["kinds"] > 1].assign(not_ok=lambda d: d["status"] != "ok")
    mixed = mixed.sort_values(["code", "not_ok", "status"])
    texts = (mixed["status"] + " " + mixed["count"].astype(str) + "/" + mixed["n"].astype(str)).tolist()
    statuses = {**single.to_dict(), **_joined(mixed["code"].to_numpy(), texts, ", ")}

    text = message.where(message.map(lambda m: isinstance(m, str)), "").astype(str)
    text = text.str.split().str.join(" ")
    failed = frame["status"].ne("ok").to_numpy() & text.ne("").to_numpy()
    reasons = pd.DataFrame({"code": codes[failed], "text": text.to_numpy()[failed]})
    reasons = reasons.groupby(["code", "text"], sort=False).size().rename("count").reset_index()
    counted = np.where(reasons["count"] > 1, " (×" + reasons["count"].astype(str) + ")", "")
    labels = (reasons["text"] + counted).tolist()
    messages = _joined(reasons["code"].to_numpy(), labels, "; ")
    index = pd.Index(sorted(statuses), name="code")
    return pd.DataFrame({"status": [statuses[c] for c in index], "message": [messages.get(c, "") for c in index]},
                        index=index)


def status_summary(group: pd.DataFrame) -> tuple[str, str]:
    """The status text and reasons of one group of records (see status_summaries)."""
    row = status_summaries(group["status"], group["message"], np.zeros(len(group), dtype=int)).iloc[0]
    return row["status"], row["message"]


def bootstrap_ci_rows(values: np.ndarray, level: float = 0.95, seed: int = 0) -> np.ndarray:
    """Percentile bootstrap CI of the median of each row of `values` (groups, n), as
    harness.measure.clock.bootstrap_ci computes it for one group (same seed, so the same resamples): (groups, 2)."""
    groups, n = values.shape
    idx = np.random.default_rng(seed).integers(0, n, size=(BOOTSTRAP_RESAMPLES, n))
    alpha = (1 - level) / 2
    out = np.empty((groups, 2))
    step = max(1, BOOTSTRAP_CHUNK // (BOOTSTRAP_RESAMPLES * n))
    for start in range(0, groups, step):
        medians = np.median(values[start:start + step][:, idx], axis=2)
        out[start:start + step] = np.quantile(medians, [alpha, 1 - alpha], axis=1).T
    return out


def _train_cis(train: pd.Series, codes: pd.Series) -> pd.DataFrame:
    """Bootstrap CIs of the median training time per group with two or more values, batched by group size."""
    frame = pd.DataFrame({"code": codes, "v": train}).dropna()
    frame["i"] = frame.groupby("code").cumcount()
    frame["n"] = frame.groupby("code")["v"].transform("size")
    parts = []
    for n, part in frame[frame["n"] > 1].groupby("n"):
        wide = part.pivot(index="code", columns="i", values="v")
        ci = bootstrap_ci_rows(wide.to_numpy(dtype=float))
        parts.append(pd.DataFrame(ci, index=wide.index, columns=["train_s_ci_low", "train_s_ci_high"]))
    return pd.concat(parts) if parts else pd.DataFrame(columns=["train_s_ci_low", "train_s_ci_high"], dtype=float)


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """One row per run and cell configuration, sorted by task, backend, mode, device.

    Timings are medians over the repeats that finished ok; train_s also gets its IQR, min, max,
    coefficient of variation and a bootstrap CI of the median; peaks are maxima. compile_s is the
    framework's own figure (only where compile_source says how it was measured); the first-epoch
    excess, an estimate, is its own column.
    """
    columns = ["run", *KEYS, "config", "repeats", "ok", "status", "message"]
    if df.empty:
        return pd.DataFrame(columns=columns)
    # A configuration measured in two runs stays two rows: repeats are pooled within a run only,
    # never across machines or code versions (bench compare is for those).
    run, config = df["run_id"].astype(str), _configs(df["cell_id"])
    codes = pd.Series(pd.MultiIndex.from_arrays([run, config]).factorize()[0], index=df.index)
    ok = df["status"].eq("ok")
    numbers = pd.DataFrame({c: _numeric(df, c) for c in (*MEDIANS, *INFERENCE_MEDIANS, *PEAKS, "train_s",
                                                          "compile_s", "first_epoch_excess_s")})
    source = df["compile_source"].where(df["compile_source"].map(lambda v: isinstance(v, str) and bool(v)))
    # Records written before compile_source existed stored the first-epoch excess as compile_s: an
    # estimate, so it is shown as one. A throughput without a steady epoch is not steady-state.
    numbers["first_epoch_excess_s"] = numbers["first_epoch_excess_s"].fillna(numbers["compile_s"].where(source.isna()))
    numbers["compile_s"] = numbers["compile_s"].where(source.notna())
    numbers["samples_per_s"] = numbers["samples_per_s"].where(numbers["steady_epoch_s"].notna())
    numbers["target_met"] = df["target_met"].eq(True).astype(int)
    numbers["reached"] = numbers["time_to_target_s"].notna().astype(int)
    numbers["compile_source"] = source
    numbers["code"] = codes

    good = numbers[ok.to_numpy()].groupby("code")
    train = good["train_s"]
    out = pd.DataFrame(index=pd.Index(range(int(codes.max()) + 1), name="code"))
    out = out.join(good[[*MEDIANS, *INFERENCE_MEDIANS]].median()).join(good[list(PEAKS)].max())
    stats = pd.DataFrame({
        "train_s": train.median(), "train_s_iqr": train.quantile(0.75) - train.quantile(0.25),
        "train_s_min": train.min(), "train_s_max": train.max(), "_n": train.count(), "_std": train.std(ddof=1),
        "_mean": train.mean(),
        "steady_epoch_s_iqr": good["steady_epoch_s"].quantile(0.75) - good["steady_epoch_s"].quantile(0.25),
        "compile_s": good["compile_s"].median(),
        "first_epoch_excess_s": good["first_epoch_excess_s"].median(),
        "compile_source": good["compile_source"].first(), "target_met": good["target_met"].sum(),
        "target_reached": good["reached"].sum()})
    out = out.join(stats).join(_train_cis(numbers.loc[ok, "train_s"], codes[ok]))
    cv = (out["_std"] / out["_mean"]).where((out["_n"] > 1) & (out["_mean"] != 0))
    out["train_s_cv"] = cv
    out["noisy"] = cv.gt(NOISY_CV)

    keys = df[[*KEYS, *FIRSTS]].assign(code=codes.to_numpy())
    firsts = keys[ok.to_numpy()].groupby("code").first().combine_first(keys.groupby("code").first())
    out = out.join(firsts)
    out["repeats"] = codes.value_counts().sort_index()
    out["ok"] = ok.groupby(codes).sum()
    out = out.join(status_summaries(df["status"], df["message"], codes.to_numpy()))
    names = pd.DataFrame({"run": run.to_numpy(), "config": config.to_numpy(), "code": codes.to_numpy()})
    out = out.join(names.drop_duplicates("code").set_index("code"))
    for column in ("target_met", "target_reached", "repeats", "ok"):
        out[column] = out[column].fillna(0).astype(int)
    out = out.drop(columns=["_n", "_std", "_mean"])
    out["ran_on"] = _ran_on(df, codes, out.index)
    labels = df[[c for c in LABELS if c in df]].assign(code=codes.to_numpy()).groupby("code").first()
    out = out.join(labels.reindex(columns=list(LABELS)))
    order = out[["task", "backend", "mode", "device", "config", "run"]].astype(str)
    out = out.loc[order.sort_values(list(order.columns)).index].reset_index(drop=True)
    front = [c for c in columns if c in out]
    return out[front + [c for c in out.columns if c not in front]]


def _ran_on(df: pd.DataFrame, codes: pd.Series, index: pd.Index) -> pd.Series:
    """Where each configuration's repeats ran, once that is more than "alone, on this machine": the executor,
    the hosts, and how many cells shared a machine at once (harness.report.concurrency). None for runs that stayed
    local and alone, which is all of them before executors, so the common case costs one check."""
    from harness.report.concurrency import describe, sharing

    none = pd.Series(None, index=index, dtype=object)
    if "host" not in df:
        return none
    executors = df["executor"].dropna().astype(str) if "executor" in df else pd.Series(dtype=str)
    shared = pd.to_numeric(df.get("node_cells"), errors="coerce").gt(1).any() if "node_cells" in df else False
    if not shared and set(executors) <= {"local"} and df["host"].dropna().nunique() <= 1:
        return none

    def where(group: pd.DataFrame) -> str | None:
        def distinct(column: str) -> list[str]:
            return sorted(set(group[column].dropna().astype(str))) if column in group else []

        kinds, hosts, counts = distinct("executor"), distinct("host"), sharing(group)
        if not hosts or (kinds in ([], ["local"]) and len(hosts) == 1 and counts in ([], [1])):
            return None
        text = f"{', '.join(kinds) or '?'}: {', '.join(hosts[:3])}" + (f" +{len(hosts) - 3}" if len(hosts) > 3 else "")
        return text + (f" ({describe(counts)})" if counts not in ([], [1]) else "")

    found = {code: where(group) for code, group in df.groupby(codes.to_numpy())}
    return pd.Series([found.get(code) for code in index], index=index, dtype=object)


def varying_keys(s: pd.DataFrame) -> list[str]:
    """The key columns worth showing: the always-shown ones plus any that differ between rows."""
    extra = [k for k in KEYS if k not in SHOWN_KEYS and s[k].astype(str).nunique() > 1]
    if "run" in s and s["run"].nunique() > 1:
        extra.append("run")
    for k in ("train_size", "threads"):  # unknown (None) for cells that failed early: not a difference
        if k in s and s[k].dropna().astype(str).nunique() > 1:
            extra.append(k)
    return [*SHOWN_KEYS, *extra]


# -- environments --------------------------------------------------------------------------

def _env_columns(df: pd.DataFrame) -> list[tuple[str, str]]:
    """(column, label) of every environment field the records carry: machine fields, then versions."""
    fields = [(f"env_{field}", label) for field, label in ENV_FIELDS if f"env_{field}" in df]
    versions = sorted(c for c in df.columns if c.startswith("version_"))
    return fields + [(c, c[len("version_"):]) for c in versions]


def _distinct(values: pd.Series) -> list[str]:
    return sorted({str(v) for v in values.dropna().unique()})


def environments(df: pd.DataFrame) -> list[dict[str, Any]]:
    """The machine and software of each run, from its records. Each record carries the environment of
    the process that ran it, so a field that differs within a run shows every value (' / ')."""
    if df.empty:
        return []
    columns = _env_columns(df)
    envs = []
    for run_id, group in df.groupby("run_id", sort=True, dropna=False):
        values = {c: " / ".join(_distinct(group[c])) or None for c, _ in columns}
        env = {field: values.get(f"env_{field}") for field, _ in ENV_FIELDS}
        versions = {c[len("version_"):]: v for c, v in values.items() if c.startswith("version_") and v}
        stamps = group["timestamp"].dropna().astype(str)
        envs.append({"run_id": str(run_id), "first": stamps.min() if len(stamps) else None,
                     "last": stamps.max() if len(stamps) else None, "records": len(group), **env,
                     "versions": versions})
    return envs


def environment_differences(df: pd.DataFrame) -> dict[str, list[str]]:
    """Each environment field (host, CPU, GPU, OS, versions, git commit...) whose records disagree,
    with its distinct values: empty when every record came from one environment."""
    if df.empty:
        return {}
    # usable cores follow a cell's thread pinning (its `threads` setting), not the machine
    columns = [(c, label) for c, label in _env_columns(df) if c != "env_usable_cores"]
    counts = df[[c for c, _ in columns]].astype("string").nunique(dropna=True)
    return {label: _distinct(df[c]) for c, label in columns if counts[c] > 1}
