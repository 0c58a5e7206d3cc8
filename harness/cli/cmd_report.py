"""`bench report`: earlier runs as a table, Markdown, CSV, JSON or one HTML page (result files only)."""

from __future__ import annotations

import argparse

from harness.cli.loading import machine_noise, records
from harness.cli.output import emit
from harness.exits import EXIT_OK, RESULTS_ENV, UsageError, choose, results_root


def register(sub: argparse._SubParsersAction) -> None:
    report = sub.add_parser("report", help="show results of earlier runs (reads result files only)")
    report.add_argument("runs", nargs="*", metavar="RUN",
                        help="run ids, run folders, records files or 'latest' (default: 'latest', the newest run by "
                             "start time that is not a committed results/reference-* run)")
    report.add_argument("--format", default="table",
                        help="table (default), md (GitHub Markdown), csv, json, or html (one self-contained page "
                             "with plots)")
    report.add_argument("--full", action="store_true",
                        help="the terminal table with every section (default: the headline, on one screen)")
    report.add_argument("--output", metavar="FILE", help="write to this file instead of the terminal")
    report.add_argument("--out", help=f"results folder (default: ${RESULTS_ENV} or ./results)")
    report.set_defaults(handler=report_command)


def report_command(args: argparse.Namespace, argv: list[str]) -> int:
    from harness import results
    from harness.report.render import FORMATS, render

    root = results_root(args.out)
    choose("format", [args.format], FORMATS)
    paths = [results.resolve(r, root) for r in (args.runs or ["latest"])]
    df = records(paths, root)
    if df.empty:
        from harness.run.folders import why_empty

        raise UsageError("; ".join(why_empty(path if path.is_dir() else path.parent) for path in paths))
    noise = machine_noise(df, root)
    # everything is rendered before anything is written
    text = render(df, args.format, full=args.full, machine=noise_summary(noise) if noise else "")
    emit(text, args.output)
    return EXIT_OK


def noise_summary(noise: dict) -> str:
    needed = noise.get("repeats_needed") if isinstance(noise.get("repeats_needed"), dict) else {}
    paired = noise.get("repeats_needed_lockstep") if isinstance(noise.get("repeats_needed_lockstep"), dict) else {}
    n, m = needed.get("25%"), paired.get("25%")
    return (f"This machine ({noise.get('host')}): processes of one cell differ by {noise['between_cv']:.1%} "
            f"(bench calibrate, {noise.get('measured')}); deciding a 25% slowdown with bench compare takes "
            + (f"--repeat {m} a side in lockstep (one run, --python or --lockstep), at least " if m else "")
            + (f"--repeat {n} a side{' for runs made apart' if m else ''}." if n else
               "more repeats than is practical for runs made apart: differences under 25% between these figures "
               "may be the machine's, not the frameworks'."))
