"""`bench compare`: two runs, or two backends of one run, cell by cell, with intervals and a gate."""

from __future__ import annotations

import argparse
import sys

from harness.cli.loading import machine_noise, run_records
from harness.cli.output import emit
from harness.cli.values import number
from harness.exits import (
    EXIT_FAILED,
    EXIT_INCONCLUSIVE,
    EXIT_OK,
    RESULTS_ENV,
    UsageError,
    choose,
    results_root,
)


def register(sub: argparse._SubParsersAction) -> None:
    compare = sub.add_parser("compare", help="compare two runs (or two backends of one run) cell by cell",
                             description="Per cell: ratio B/A of the geometric means over repeats, its confidence "
                                         "interval from Welch's t test on log values, and a verdict: faster, slower, "
                                         "same (within --tolerance) or inconclusive.")
    compare.add_argument("a", metavar="A", help="baseline run (id, folder, records file or 'latest'); "
                                                "with --run: a backend, or a --python environment's label")
    compare.add_argument("b", metavar="B", help="run to compare with A; with --run: a backend or environment label")
    compare.add_argument("--run", metavar="RUN", help="compare backends (or Python environments) A and B within this "
                                                      "run")
    compare.add_argument("--metric", default="steady_epoch_s",
                         help="time metric to compare (default steady_epoch_s; e.g. train_s, cold_start_s)")
    compare.add_argument("--alpha", type=number("--alpha", 0, False), default=0.05,
                         help="1 - the confidence level of the intervals (default 0.05: 95%%)")
    compare.add_argument("--tolerance", type=number("--tolerance", 0, True), default=0.05,
                         help="an interval within 1 ± this is 'same' (default 0.05)")
    compare.add_argument("--fail-above", type=number("--fail-above", 1, True), metavar="RATIO",
                         help="exit 1 if a cell's whole interval of B/A lies above RATIO (e.g. 1.10) or a cell fails "
                              "in B only; exit 3 if an interval reaches above RATIO without deciding, or a cell has "
                              "too few repeats to test")
    compare.add_argument("--accept-inconclusive", action="store_true",
                         help="with --fail-above: exit 0 instead of 3 when some cells cannot be decided")
    compare.add_argument("--all-processes", action="store_true",
                         help="test every repeat; by default a side's repeats slower than 1.3x its median are set "
                              "aside as the machine's slow mode (counted in the note; docs/repeats-and-compare.md)")
    compare.add_argument("--format", default="table", help="table (default), md, csv or json")
    compare.add_argument("--output", metavar="FILE", help="write to this file instead of the terminal")
    compare.add_argument("--out", help=f"results folder (default: ${RESULTS_ENV} or ./results)")
    compare.set_defaults(handler=compare_command)


def compare_command(args: argparse.Namespace, argv: list[str]) -> int:
    from harness import results
    from harness.compare import paired as compare

    root = results_root(args.out)
    choose("format", [args.format], compare.FORMATS)
    choose("metric", [args.metric], compare.METRICS)
    if args.alpha >= 1:
        raise UsageError(f"--alpha must be a number between 0 and 1, not {args.alpha:g}")
    axis = None
    if args.run:
        run = results.resolve(args.run, root)
        df = run_records(run, root)
        sides = []
        pythons = sorted(df["python"].dropna().unique()) if "python" in df else []
        axis = "python" if {args.a, args.b} <= set(pythons) else "backend"
        for name in (args.a, args.b):
            choose(f"{axis} in run {run.name}", [name], sorted(df[axis].dropna().unique()))
            sides.append(compare.Side(name, df[df[axis] == name]))
        title = f"{args.b} (B) against {args.a} (A) in run {run.name}: {args.metric}, B/A"
    else:
        runs = [results.resolve(ref, root) for ref in (args.a, args.b)]
        sides = [compare.Side(run.name, run_records(run, root)) for run in runs]
        title = f"run {runs[1].name} (B) against run {runs[0].name} (A): {args.metric}, B/A"
    if args.accept_inconclusive and args.fail_above is None:
        raise UsageError("--accept-inconclusive goes with --fail-above")
    from harness.report.busy import busy_line
    from harness.report.concurrency import concurrency_warning

    warnings = [concurrency_warning(sides[0].label, sides[0].records, sides[1].label, sides[1].records)]
    busy = [busy_line(side.records) for side in sides]
    if bool(busy[0]) != bool(busy[1]):  # one side quiet, the other not: a difference that is not the code's
        side, line = next((s, b) for s, b in zip(sides, busy) if b)
        warnings.append(f"{side.label} was measured on a busy machine and the other side was not: {line}")
    for warning in filter(None, warnings):
        print(f"bench: warning: {warning}", file=sys.stderr)
    noise = machine_noise(sides[1].records, root)
    slow_mode = None if args.all_processes else compare.SLOW_MODE
    table = compare.compare(*sides, metric=args.metric, alpha=args.alpha, tolerance=args.tolerance,
                            ignore_backend=bool(args.run) and axis == "backend",
                            ignore_python=bool(args.run) and axis == "python",
                            noise=noise["between_cv"] if noise else None,
                            slow_mode=slow_mode)
    if noise:
        print(f"bench: {noise_line(noise, args.fail_above, compare.tested_in_lockstep(table))}", file=sys.stderr)
    if table["verdict"].isin(["only in A", "only in B"]).all():
        raise UsageError(f"{sides[0].label} and {sides[1].label} have no cell configuration in common")
    code, gate_line = EXIT_OK, ""
    if args.fail_above is not None:
        failing, undecided = compare.gate(table, args.fail_above)
        table.loc[undecided.index, "note"] = compare.gate_notes(undecided, args.fail_above)["note"]
        gate_line = f"--fail-above {args.fail_above:g}: {len(failing)} regression(s), {len(undecided)} undecided"
        if len(failing):
            code = EXIT_FAILED
        elif len(undecided) and not args.accept_inconclusive:
            code = EXIT_INCONCLUSIVE
            gate_line += " (exit 3; --accept-inconclusive to pass them)"
    text = compare.render(table, args.format, title + f" ({1 - args.alpha:.0%} intervals)", gate_line, args.metric,
                          args.alpha, args.tolerance, slow_mode)
    emit(text, args.output)
    if code != EXIT_OK:
        print(f"bench: {gate_line}", file=sys.stderr)
    return code


def noise_line(noise: dict, fail_above: float | None, in_lockstep: bool = False) -> str:
    """What this machine's calibration says of a comparison on it (`in_lockstep`: of cells that took turns, tested
    pair by pair, where the calibration measured such pairs)."""
    from harness.compare.power import MAX_REPEATS, repeats_needed, slowdown_for

    line = (f"this machine ({noise.get('host')}): processes of one cell differ by {noise['between_cv']:.1%} "
            f"(bench calibrate, {noise.get('measured')}), taken as the least spread of each side")
    pairs, lone, lockstep = noise.get("lockstep_pairs"), noise.get("lockstep_lone"), noise.get("lockstep_cv")
    in_lockstep = in_lockstep and isinstance(lockstep, (int, float)) and isinstance(pairs, int) and pairs > 0
    if in_lockstep:
        line += f"; cells in lockstep by {lockstep:.1%}"
    if fail_above is not None and fail_above > 1:
        slowdown = slowdown_for(fail_above)
        slow, processes = (lone, pairs) if in_lockstep else (noise.get("slow_processes"), noise.get("processes"))
        share = slow / processes if isinstance(slow, int) and isinstance(processes, int) and processes > 0 else 0.0
        n = repeats_needed(lockstep if in_lockstep else noise["between_cv"], slowdown, slow_share=min(share, 0.9),
                           paired=in_lockstep)
        line += (f"; to catch a {slowdown:.0%} slowdown at --fail-above {fail_above:g} it needs "
                 + (f"about --repeat {n} a side" if n else f"more than {MAX_REPEATS} repeats a side"))
    return line
