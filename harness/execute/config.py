"""Which executor a run uses and its settings: `--executor`, its flags, and `--executor-config FILE`.

The file is TOML with engine-prefixed keys, e.g.

    executor = "slurm"
    slurm_partition = "gpu"
    slurm_sbatch = ["--qos=high", "--account=lab"]
    ray_address = "10.0.0.5:6379"

Flags given on the command line win over the file. A file may hold settings for several executors;
only the chosen one's are used, and a flag for another executor than the chosen one is an error.
"""

from __future__ import annotations

import argparse
from typing import Any, Iterable

from harness.executor import Executor, Option
from harness.exits import UsageError, choose

DEFAULT = "local"


def builtin_flags() -> list[tuple[type[Executor], Option]]:
    """The built-in executors' options that have a command-line flag (the CLI adds them to `bench run`)."""
    from harness.execute.builtin import BUILTIN

    return [(cls, option) for cls in BUILTIN for option in cls.options if option.flag]


def dest(option: Option) -> str:
    return option.flag.lstrip("-").replace("-", "_")


def read_file(path: str) -> dict[str, Any]:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise UsageError(f"cannot read --executor-config {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"--executor-config {path} is not valid TOML: {exc}") from None


def _parse(option: Option, value: Any, where: str) -> Any:
    try:
        return option.parse(value)
    except ValueError as exc:
        raise UsageError(f"{where} must be {exc}, not {value!r}") from None


def choose_executor(args: argparse.Namespace, executors: dict[str, type[Executor]]) -> Executor:
    """The executor the command line and config file ask for, with its settings parsed; UsageError on
    an unknown executor, an unknown key, a bad value, or a flag meant for another executor."""
    config = read_file(args.executor_config) if getattr(args, "executor_config", None) else {}
    where = f"--executor-config {getattr(args, 'executor_config', '')}"
    known = {"executor"} | {f"{name}_{o.name}" for name, cls in executors.items() for o in cls.options}
    for key in config:
        if key not in known:
            raise UsageError(f"unknown key {key!r} in {where} (keys: {', '.join(sorted(known))})")
    name = getattr(args, "executor", None) or config.get("executor") or DEFAULT
    if not isinstance(name, str):
        raise UsageError(f"executor in {where} must be a name, not {name!r}")
    choose("executor", [name], list(executors))
    cls = executors[name]
    for other, option in builtin_flags():
        if other is not cls and getattr(args, dest(option), None) is not None:
            raise UsageError(f"{option.flag} is an option of --executor {other.name}, not of {name}")
    settings = {}
    for option in cls.options:
        key = f"{name}_{option.name}"
        if key in config:
            settings[option.name] = _parse(option, config[key], f"{key} in {where}")
        if option.flag and getattr(args, dest(option), None) is not None:
            settings[option.name] = _parse(option, getattr(args, dest(option)), option.flag)
    return cls(settings)


def resume_flags(args: argparse.Namespace) -> list[str]:
    """The executor flags of this command line, for the `--resume` hint."""
    flags = []
    for name in ("executor", "executor_config"):
        if getattr(args, name, None):
            flags += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    for _, option in builtin_flags():
        value = getattr(args, dest(option), None)
        if value is not None:
            flags += [option.flag, str(value)]
    return flags


def quote(words: Iterable[str]) -> str:
    import shlex

    return " ".join(shlex.quote(w) for w in words)
