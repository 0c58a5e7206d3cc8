"""The `bench` command: a thin shell that parses, calls the harness, and sets the exit code.

Exit codes: 0 every cell ok (or skipped), 1 some cell failed (compare: a regression), 2 bad input,
3 compare --fail-above could not decide (too little data), 4 results could not be saved (e.g. a full
disk; the run stops and can be resumed), 130 interrupted.
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any, Callable, Sequence

from harness.exits import (EXIT_FAILED, EXIT_INCONCLUSIVE, EXIT_INTERRUPTED, EXIT_NOT_SAVED, EXIT_OK,  # noqa: F401
                           EXIT_USAGE, RESULTS_ENV, UsageError, choose, results_root)
from harness.safe_text import one_line


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse would print usage and exit; we want one line
        raise UsageError(message)


# -- value parsers: each returns the value or raises UsageError naming the option ----------

def _positive_int(option: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise UsageError(f"{option} must be a positive whole number, not {text!r}") from None
        if value < 1:
            raise UsageError(f"{option} must be a positive whole number, not {text!r}")
        return value
    return parse


def _number(option: str, minimum: float, inclusive: bool) -> Callable[[str], float]:
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


def _once_each(option: str, values: list) -> list:
    """A grid lists each value once: a repeat would plan the same cell twice (merge it yourself)."""
    seen: list = []
    for value in values:
        if value in seen:
            raise UsageError(f"{option} lists {value!r} twice")
        seen.append(value)
    return values


def _listed(parse: Callable[[str], Any], option: str) -> Callable[[str], list]:
    def parse_list(text: str) -> list:
        items = [item.strip() for item in text.split(",")]
        if not all(items):
            raise UsageError(f"{option} takes a comma-separated list without empty items, not {text!r}")
        return _once_each(option, [parse(item) for item in items])
    return parse_list


def _names(option: str) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        items = [item.strip() for item in text.split(",")]
        if not all(items):
            raise UsageError(f"empty name in {text!r}")
        return _once_each(option, items)
    return parse


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="bench", description="Train the same workloads in several frameworks; compare time and accuracy.")
    parser.add_argument("--block", action="append", default=[], metavar="PLUGIN",
                        help="do not load this plugin (repeatable); see also BENCH_BLOCK_PLUGINS")
    parser.add_argument("--no-autoload", action="store_true",
                        help="load only the built-in plugins (also: BENCH_DISABLE_PLUGIN_AUTOLOAD=1)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = sub.add_parser("run", help="run benchmark cells and print the table")
    run.add_argument("--backend", type=_names("--backend"),
                     help="backends, comma-separated (default: every available one)")
    run.add_argument("--task", type=_names("--task"), help="tasks, comma-separated (default: all)")
    run.add_argument("--mode", type=_names("--mode"),
                     help="modes, comma-separated, e.g. eager,compiled (default: each backend's best, the last it lists)")
    run.add_argument("--device", default="auto", help="cpu, cuda or auto (default: auto, the best device here)")
    run.add_argument("--precision", default="fp32", help="fp32 (default), tf32 or bf16")
    run.add_argument("--repeat", type=_positive_int("--repeat"), default=1, help="repeats, each its own process")
    run.add_argument("--epochs", type=_positive_int("--epochs"), help="epochs (default: the task's)")
    run.add_argument("--batch-size", type=_listed(_positive_int("--batch-size"), "--batch-size"),
                     help="batch sizes, comma-separated (default: the task's)")
    run.add_argument("--optimizer", type=_names("--optimizer"),
                     help="sgd, momentum, adam, rmsprop, adagrad (comma-separated)")
    run.add_argument("--lr", type=_listed(_number("--lr", 0, False), "--lr"), help="learning rates, comma-separated")
    run.add_argument("--weight-decay", type=_number("--weight-decay", 0, True), help="coupled L2 coefficient")
    run.add_argument("--threads", type=_listed(_positive_int("--threads"), "--threads"),
                     help="CPU threads per framework, comma-separated (default: all usable cores)")
    run.add_argument("--seed", type=_number("--seed", 0, True), default=0, help="seed of weights and batch order")
    run.add_argument("--train-size", type=_positive_int("--train-size"), help="training samples (MNIST: the first N)")
    run.add_argument("--test-size", type=_positive_int("--test-size"), help="test samples (MNIST: the first N)")
    run.add_argument("--timeout", type=_number("--timeout", 0, False),
                     help="seconds per cell before it is killed (default 1800); with --resume, caps the cells "
                          "still to run")
    run.add_argument("--quick", action="store_true",
                     help="a first table fast: 1 epoch on 8192 training and 2000 test samples")
    run.add_argument("--out", help=f"results folder (default: ${RESULTS_ENV} or ./results)")
    run.add_argument("--resume", metavar="RUN_ID", help="finish the unfinished cells of an earlier run")
    _executor_arguments(run)

    sub.add_parser("list", help="tasks and backends, with availability")
    sub.add_parser("plugins", help="plugins, versions, and broken ones with the reason")
    sub.add_parser("env", help="the machine and software a run would record")

    report = sub.add_parser("report", help="show results of earlier runs (reads result files only)")
    report.add_argument("runs", nargs="*", metavar="RUN",
                        help="run ids, run folders, records files or 'latest' (default: 'latest', the newest run by start "
                             "time that is not a committed results/reference-* run)")
    report.add_argument("--format", default="table",
                        help="table (default), md (GitHub Markdown), csv, json, or html (one self-contained page "
                             "with plots)")
    report.add_argument("--output", metavar="FILE", help="write to this file instead of the terminal")
    report.add_argument("--out", help=f"results folder (default: ${RESULTS_ENV} or ./results)")

    compare = sub.add_parser("compare", help="compare two runs (or two backends of one run) cell by cell",
                             description="Per cell: ratio B/A of the geometric means over repeats, its confidence "
                                         "interval from Welch's t test on log values, and a verdict: faster, slower, "
                                         "same (within --tolerance) or inconclusive.")
    compare.add_argument("a", metavar="A", help="baseline run (id, folder, records file or 'latest'); "
                                                "with --run: a backend name")
    compare.add_argument("b", metavar="B", help="run to compare with A; with --run: a backend name")
    compare.add_argument("--run", metavar="RUN", help="compare backends A and B within this run")
    compare.add_argument("--metric", default="steady_epoch_s",
                         help="time metric to compare (default steady_epoch_s; e.g. train_s, cold_start_s)")
    compare.add_argument("--alpha", type=_number("--alpha", 0, False), default=0.05,
                         help="1 - the confidence level of the intervals (default 0.05: 95%%)")
    compare.add_argument("--tolerance", type=_number("--tolerance", 0, True), default=0.05,
                         help="an interval within 1 ± this is 'same' (default 0.05)")
    compare.add_argument("--fail-above", type=_number("--fail-above", 1, True), metavar="RATIO",
                         help="exit 1 if a cell's whole interval of B/A lies above RATIO (e.g. 1.10) or a cell fails "
                              "in B only; exit 3 if an interval reaches above RATIO without deciding, or a cell has "
                              "too few repeats to test")
    compare.add_argument("--accept-inconclusive", action="store_true",
                         help="with --fail-above: exit 0 instead of 3 when some cells cannot be decided")
    compare.add_argument("--format", default="table", help="table (default), md, csv or json")
    compare.add_argument("--output", metavar="FILE", help="write to this file instead of the terminal")
    compare.add_argument("--out", help=f"results folder (default: ${RESULTS_ENV} or ./results)")
    return parser


def _executor_arguments(run: argparse.ArgumentParser) -> None:
    from harness.executor_config import builtin_flags, dest

    group = run.add_argument_group("where cells run", "see README, 'Running on a cluster'")
    group.add_argument("--executor", metavar="NAME",
                       help="local (default: this machine), slurm, ray, or a plugin's executor")
    group.add_argument("--executor-config", metavar="FILE",
                       help="TOML file of executor settings, keys prefixed by the executor (slurm_partition = ...); "
                            "flags win over it")
    for cls, option in builtin_flags():
        group.add_argument(option.flag, dest=dest(option), metavar="VALUE",
                           help=f"{option.help} ({cls.name})".replace("%", "%%"))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns (and exits with) the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        code = dispatch(argv)
    except UsageError as exc:
        print(f"bench: error: {one_line(str(exc))}", file=sys.stderr)
        code = EXIT_USAGE
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        code = EXIT_INTERRUPTED
    return code


def dispatch(argv: list[str]) -> int:
    from harness import commands, results
    from harness.api import DataError

    args = _build_parser().parse_args(argv)
    if args.command is None:
        _build_parser().print_help()
        return EXIT_OK
    try:
        return getattr(commands, f"cmd_{args.command}")(args, argv)
    except (DataError, results.ResultsError) as exc:
        raise UsageError(str(exc)) from None
