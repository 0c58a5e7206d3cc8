"""The `bench` command: parse argv, call the subcommand, turn errors into one line and an exit code.

Each subcommand lives in its own module (cmd_*.py), which adds its parser (`register`) and does the work.
Exit codes: 0 every cell ok (or skipped), 1 some cell failed (compare: a regression), 2 bad input,
3 compare --fail-above could not decide (too little data), 4 results could not be saved (e.g. a full
disk; the run stops and can be resumed), 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from harness.cli import cmd_calibrate, cmd_compare, cmd_history, cmd_info, cmd_report, cmd_run
from harness.exits import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, UsageError
from harness.store.safe_text import one_line

COMMANDS = (cmd_run, cmd_report, cmd_compare, cmd_calibrate, cmd_history, cmd_info)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse would print usage and exit; we want one line
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="bench",
                     description="Train the same workloads in several frameworks; compare time and accuracy.")
    parser.add_argument("--block", action="append", default=[], metavar="PLUGIN",
                        help="do not load this plugin (repeatable); see also BENCH_BLOCK_PLUGINS")
    parser.add_argument("--no-autoload", action="store_true",
                        help="load only the built-in plugins (also: BENCH_DISABLE_PLUGIN_AUTOLOAD=1)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module in COMMANDS:
        module.register(sub)
    return parser


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
    from harness import results
    from harness.api import DataError

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_OK
    try:
        return args.handler(args, argv)
    except (DataError, results.ResultsError) as exc:
        raise UsageError(str(exc)) from None
