"""Parsers of option values: each returns the value or raises UsageError naming the option and what it takes.

Numbers are read in the forms the docs write them: `60000`, `60_000`, `6e4` and `1e7` are whole numbers.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from harness.exits import UsageError


def whole_number(option: str, minimum: int = 1) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = float(text.replace("_", "")) if text.strip() else math.nan
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value.is_integer() and value >= minimum):
            kind = "a positive whole number" if minimum == 1 else f"a whole number >= {minimum}"
            raise UsageError(f"{option} must be {kind}, not {text!r}")
        return int(value)
    return parse


def number(option: str, minimum: float, inclusive: bool) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        ok = math.isfinite(value) and (value >= minimum if inclusive else value > minimum)
        if not ok:
            bound = f">= {minimum:g}" if inclusive else f"> {minimum:g}"
            raise UsageError(f"{option} must be a number {bound}, not {text!r}")
        return value
    return parse


def once_each(option: str, values: list) -> list:
    """A grid lists each value once: a repeat would plan the same cell twice (merge it yourself)."""
    seen: list = []
    for value in values:
        if value in seen:
            raise UsageError(f"{option} lists {value!r} twice")
        seen.append(value)
    return values


def listed(parse: Callable[[str], Any], option: str) -> Callable[[str], list]:
    def parse_list(text: str) -> list:
        items = [item.strip() for item in text.split(",")]
        if not all(items):
            raise UsageError(f"{option} takes a comma-separated list without empty items, not {text!r}")
        return once_each(option, [parse(item) for item in items])
    return parse_list


def names(option: str) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        items = [item.strip() for item in text.split(",")]
        if not all(items):
            raise UsageError(f"empty name in {text!r}")
        return once_each(option, items)
    return parse


def interpreters(text: str) -> list[tuple[str, str]]:
    """--python: (label, path) for each comma-separated PATH or LABEL=PATH. A path's label is its environment's
    folder (.venv-a/bin/python: venv-a), so that it reads in cell ids and reports."""
    from pathlib import PurePath

    from harness.api import name_problem

    found = []
    for item in (i.strip() for i in text.split(",")):
        if not item:
            raise UsageError(f"--python takes a comma-separated list without empty items, not {text!r}")
        label, _, path = item.rpartition("=") if "=" in item else ("", "", item)
        if not label:
            parts = PurePath(path).parts
            label = (parts[-3] if len(parts) >= 3 and parts[-2] == "bin" else PurePath(path).name).lstrip(".")
        problem = name_problem(label)
        if problem:
            raise UsageError(f"--python: the label {label!r} of {path} {problem}; name it: LABEL={path}")
        found.append((label, path))
    once_each("--python labels", [label for label, _ in found])
    return found
