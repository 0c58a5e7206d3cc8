"""`bench publish` (runs into a history store; the store as a static site) and `bench history` (each cell's
series over runs, its change points, and a gate for CI)."""

from __future__ import annotations

import argparse
import sys

from harness.cli.output import emit, terminal_width
from harness.cli.values import number
from harness.exits import EXIT_FAILED, EXIT_INCONCLUSIVE, EXIT_OK, RESULTS_ENV, UsageError, choose, results_root
from harness.measure.noise import sd_log_of

RUNS_LISTED = 10  # runs named one per line by publish; beyond, counted
METRIC_HELP = "time metric whose series are analysed (default steady_epoch_s; lower is better)"


def register(sub: argparse._SubParsersAction) -> None:
    publish = sub.add_parser(
        "publish", help="add runs to a history store (Parquet); build its static site",
        description="Add runs (folders, records files, run ids, folders of runs, or .tgz archives made with "
                    "`tar czf run.tgz -C results RUN_ID` on another machine) to the history store STORE, a Parquet "
                    "dataset partitioned by machine that pandas and DuckDB read as it is. A record already in the "
                    "store is not added again. With --site DIR, build the store's static site into DIR.")
    publish.add_argument("runs", nargs="*", metavar="RUN", help="runs to add (none: only build the site)")
    publish.add_argument("--to", required=True, metavar="STORE", help="the history store (made when missing)")
    publish.add_argument("--site", metavar="DIR", help="build the store's static site into DIR (a new or empty folder, "
                                                       "or a site built before)")
    publish.add_argument("--full-reports", default="changes", metavar="WHICH",
                         help="runs whose page is their full bench report: changes (default: the newest run of each "
                              "machine and the runs either side of each change point), all, or none; the other runs "
                              "get a light page")
    _analysis_options(publish)
    publish.add_argument("--out", help="results folder run ids (and bench calibrate's figures) are looked up in "
                                       f"(default: ${RESULTS_ENV} or ./results)")
    publish.set_defaults(handler=publish_command)

    history = sub.add_parser(
        "history", help="each cell's series over published runs, its change points, a regression gate",
        description="Per machine and cell configuration (backend, task, mode, device, hyperparameters): one point "
                    "per run (the median of its repeats), the steps in that series and whether a slowdown is in "
                    "effect, with the run it started at, its commit and framework versions.")
    history.add_argument("store", metavar="STORE", help="the history store (bench publish RUN --to STORE)")
    _analysis_options(history)
    history.add_argument("--machine", metavar="TEXT", help="only machines whose id or host contains TEXT")
    history.add_argument("--cell", metavar="TEXT",
                         help="only cell configurations containing TEXT (e.g. torch-mnist_mlp)")
    history.add_argument("--points", action="store_true", help="also list every run of each cell shown")
    history.add_argument("--fail-on-regression", action="store_true",
                         help="exit 1 if a cell shows a slowdown of --threshold or more still in effect, naming the "
                              "cell, the change and the first run after it")
    history.add_argument("--fail-on-undecided", action="store_true",
                         help="exit 3 (when nothing regressed) if some cell's noise cannot decide a step of "
                              "--threshold")
    history.add_argument("--format", default="table", help="table (default), md, csv (one row per run of each cell) "
                                                          "or json (cells with their changes and points)")
    history.add_argument("--output", metavar="FILE", help="write to this file instead of the terminal")
    history.set_defaults(handler=history_command)


def _analysis_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--metric", default="steady_epoch_s", help=METRIC_HELP)
    parser.add_argument("--threshold", type=number("--threshold", 0, False), default=0.05,
                        help="the smallest slowdown that counts, as a fraction (default 0.05: 5%%)")
    parser.add_argument("--noise", type=number("--noise", 0, False), metavar="CV",
                        help="the machines' run-to-run noise of one process, as a coefficient of variation (e.g. "
                             "0.2), where runs have too few repeats to measure it (default: what bench calibrate "
                             "measured, carried into the store by publish; else from the history itself)")


def _calibrated(args: argparse.Namespace, store, machines: list[str]) -> dict[str, float]:
    """Per machine, its per-process noise (SD of log values): --noise for all, else what `bench calibrate`
    measured on it and publish carried into the store."""
    if args.noise is not None:
        return {m: sd_log_of(args.noise) for m in machines}
    from harness.history import calibrations

    return calibrations.load(store.path)


def _check(args: argparse.Namespace) -> None:
    from harness.history.series import TIME_METRICS

    choose("metric", [args.metric], TIME_METRICS)
    if args.threshold >= 1:
        raise UsageError(f"--threshold is a fraction (0.05 for 5%), not {args.threshold:g}")


def publish_command(args: argparse.Namespace, argv: list[str]) -> int:
    from harness.history import HistoryError
    from harness.history.site import FULL_CHOICES, build_site
    from harness.history.sources import read_runs
    from harness.history.store import Store

    _check(args)
    choose("--full-reports choice", [args.full_reports], FULL_CHOICES)
    if not args.runs and not args.site:
        raise UsageError("name runs to publish, or --site DIR to build the store's site")
    try:
        runs = read_runs(args.runs, results_root(args.out)) if args.runs else []
        store = Store.open(args.to, create=bool(runs))
        if runs:
            for run in runs:
                for problem in run.problems:
                    print(f"bench: warning: {problem}", file=sys.stderr)
            done = store.publish(runs)
            from harness.history import calibrations

            for machine_id in calibrations.carry(store.path, results_root(args.out), done.hardware):
                print(f"machine {machine_id}: its bench calibrate noise figure is in the store now")
            ids = list(dict.fromkeys(r.run_id for r in runs))
            for run_id in ids if len(ids) <= RUNS_LISTED else []:
                added, present = done.added.get(run_id, 0), done.present.get(run_id, 0)
                where = ", ".join(sorted(done.machines.get(run_id, ())))
                state = f"{added} records added (machine {where})" if added else "already in the store"
                print(f"run {run_id}: {state}" + (f"; {present} already there" if added and present else ""))
            if len(ids) > RUNS_LISTED:
                fresh = sum(1 for run_id in ids if done.added.get(run_id))
                machines = sorted({m for ms in done.machines.values() for m in ms})
                named = ", ".join(machines[:5]) + (" ..." if len(machines) > 5 else "")
                print(f"{len(ids)} runs: {fresh} with records added, {len(ids) - fresh} already in the store"
                      + (f" (machines {named})" if machines else ""))
            print(f"{sum(done.added.values())} records added to {args.to}, {sum(done.present.values())} "
                  "already there")
        if args.site:
            built = build_site(store, args.site, args.metric, args.threshold, args.full_reports,
                               _calibrated(args, store, store.machines()))
            print(f"site: {args.site}/index.html ({built.machines} machines, {built.cells} cells, {built.runs} run "
                  f"pages, {built.full_reports} full reports rendered, {built.reused} reused)")
    except HistoryError as exc:
        raise UsageError(str(exc)) from None
    return EXIT_OK


def history_command(args: argparse.Namespace, argv: list[str]) -> int:
    from harness.history import HistoryError
    from harness.history import render as answer
    from harness.history.series import NEEDED, build
    from harness.history.store import Store

    _check(args)
    choose("format", [args.format], answer.FORMATS)
    try:
        store = Store.open(args.store)
        df = store.read(columns=list(dict.fromkeys([*NEEDED, args.metric])))
    except HistoryError as exc:
        raise UsageError(str(exc)) from None
    if args.machine:
        df = df[df["machine"].astype(str).str.contains(args.machine, regex=False)
                | df["machine_host"].astype(str).str.contains(args.machine, regex=False)]
    if args.cell:
        df = df[df["config"].astype(str).str.contains(args.cell, regex=False)]
    if df.empty:
        narrowed = " match --machine/--cell" if args.machine or args.cell else ""
        raise UsageError(f"no records in {args.store}{narrowed}")
    machines = sorted(df["machine"].astype(str).unique())
    series = build(df, args.metric, args.threshold, _calibrated(args, store, machines))
    regressions = [s for s in series if s.verdict.state == "regression"]
    undecided = [s for s in series if s.verdict.state == "not decidable"]
    code, gate_line = EXIT_OK, ""
    if args.fail_on_regression or args.fail_on_undecided:
        gate_line = f"{len(regressions)} regression(s), {len(undecided)} cell(s) not decidable"
        if args.fail_on_regression and regressions:
            code = EXIT_FAILED
        elif args.fail_on_undecided and undecided:
            code = EXIT_INCONCLUSIVE
    title = f"{args.metric} over runs in {args.store} (threshold {args.threshold:.0%})"
    meta = {"metric": args.metric, "threshold": args.threshold, "store": str(args.store)}
    text = answer.render(series, args.format, title, gate_line, meta, terminal_width())
    if args.points and args.format in ("table", "md"):
        text += "\n" + "\n".join(answer.points_text(s) for s in answer.sorted_series(series))
    emit(text, args.output)
    if code == EXIT_FAILED:
        from harness.history.series import step_rows

        for s in regressions:
            for row in step_rows(s):
                if row["step"].ratio >= 1 + args.threshold:
                    print(f"bench: regression: {s.machine} {s.config}: {args.metric} "
                          f"{answer.change_text(row, str(s.cell.get('backend')))}", file=sys.stderr)
    if gate_line and code != EXIT_OK:
        print(f"bench: {gate_line}", file=sys.stderr)
    return code
