"""What the commands load: the plugins (as the global options ask), the environment a run records, and the
records of runs, with unreadable ones named on stderr as one line each."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.exits import UsageError
from harness.plugins.manager import Plugins, call_each, make_plugin_manager
from harness.plugins.registry import Registry, build_registry
from harness.store.safe_text import one_line

if TYPE_CHECKING:
    import pandas as pd


def registry(args: argparse.Namespace) -> tuple[Registry, Plugins]:
    plugins = make_plugin_manager(autoload=False if args.no_autoload else None, blocked=args.block)
    return build_registry(plugins)


def environment(plugins: Plugins) -> dict[str, Any]:
    """The machine and software, with what plugins add through `bench_environment`."""
    from harness.measure import envinfo

    env = envinfo.collect(tuple(i.distribution for i in plugins.infos.values() if i.distribution))
    for plugin, extra, exc in call_each(plugins, "bench_environment"):
        if exc is None and isinstance(extra, dict):
            env.update(extra)
        elif exc is not None:
            print(one_line(f"bench: warning: plugin {plugin}: bench_environment failed: {exc}"), file=sys.stderr)
    return env


def records(paths: list[Path], root: Path) -> "pd.DataFrame":
    """harness.results.load, with unreadable records named on stderr rather than as Python warnings."""
    import warnings

    from harness import results

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df = results.load(paths, root=root)
    for problem in df.attrs.get("problems", []):
        print(f"bench: warning: {problem}", file=sys.stderr)
    return df


def run_records(run: Path, root: Path) -> "pd.DataFrame":
    """The records of one run; UsageError when it has none."""
    df = records([run], root)
    if df.empty:
        raise UsageError(f"run {run} has no records")
    return df


def machine_noise(df: "pd.DataFrame", root: Path) -> dict[str, Any] | None:
    """The calibration (bench calibrate) of the machine these records were made on, where there is one: the host
    most of them name."""
    from harness.store import calibration

    for column in ("env_hostname", "host"):
        if column in df.columns and df[column].notna().any():
            return calibration.load(root, str(df[column].dropna().astype(str).mode().iloc[0]))
    return None
