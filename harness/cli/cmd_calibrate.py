"""`bench calibrate`: how noisy this machine is, measured in about a minute, and kept for compare and reports.

It runs a few short processes of one small cell (a real run, saved like any other), and reports the spread
between those processes and between the epochs within each, and how many repeats a side `bench compare` needs
here to decide a 25% and a 10% slowdown (harness.compare.power). The figures are saved per machine
(harness.store.calibration); `bench compare` then takes the machine's spread as the least a side can have,
and says how many repeats a comparison would need.
"""

from __future__ import annotations

import argparse
import datetime
import sys

from harness.cli.loading import environment, records, registry
from harness.cli.values import names, whole_number
from harness.exits import EXIT_FAILED, EXIT_OK, RESULTS_ENV, UsageError, choose, results_root
from harness.measure.noise import SLOW_MODE

PREFERRED = ("jax", "torch", "tensorflow")  # fastest to start first: the processes are short
SLOWDOWNS = (0.25, 0.10)


def register(sub: argparse._SubParsersAction) -> None:
    cal = sub.add_parser("calibrate", help="measure how much this machine's timings move (about a minute)",
                         description="Runs a few short processes of one small cell and reports the spread "
                                     "between processes and within one, and the repeats bench compare needs here.")
    cal.add_argument("--backend", type=names("--backend"), help="the backend to time (default: jax, else torch, "
                                                                "else tensorflow, else any available)")
    cal.add_argument("--task", default="mnist_mlp", help="the task to time (default mnist_mlp)")
    cal.add_argument("--mode", help="the mode (default: the backend's best)")
    cal.add_argument("--processes", type=whole_number("--processes"), default=12,
                     help="processes to run, each a repeat of the cell (default 12; at least 3)")
    cal.add_argument("--epochs", type=whole_number("--epochs"), default=6, help="epochs per process (default 6)")
    cal.add_argument("--train-size", type=whole_number("--train-size"), default=16384,
                     help="training samples (default 16384)")
    cal.add_argument("--out", help=f"results folder (default: ${RESULTS_ENV} or ./results)")
    cal.set_defaults(handler=calibrate_command)


def _backend(args: argparse.Namespace, reg) -> str:
    available = [n for n, b in sorted(reg.backends.items()) if b.availability().ok]
    if args.backend:
        choose("backend", args.backend, list(reg.backends))
        if len(args.backend) != 1:
            raise UsageError("--backend: calibrate times one backend")
        if args.backend[0] not in available:
            raise UsageError(f"backend {args.backend[0]} is not available: "
                             f"{reg.backends[args.backend[0]].availability().reason}")
        return args.backend[0]
    found = [n for n in PREFERRED if n in available] or available
    if not found:
        raise UsageError("no backend is available: install a framework, e.g. pip install torch==2.13.0")
    return found[0]


def calibrate_command(args: argparse.Namespace, argv: list[str]) -> int:
    from harness.compare.power import repeats_needed
    from harness.execute.local import LocalExecutor
    from harness.measure.noise import spread
    from harness.run import folders
    from harness.run.plan import PlanError, Selection, plan
    from harness.run.progress import ConsoleProgress
    from harness.run.runner import Runner
    from harness.store import calibration

    if args.processes < 3:
        raise UsageError("--processes must be at least 3: a spread between processes needs them")
    if args.epochs < 3:
        raise UsageError("--epochs must be at least 3: the first compiles, the others are the steady ones")
    root = results_root(args.out)
    reg, plugins = registry(args)
    choose("task", [args.task], list(reg.tasks))
    backend = _backend(args, reg)
    if args.mode:
        choose("mode", [args.mode], list(reg.backends[backend].modes))
    reg.tasks[args.task]().prepare()
    sel = Selection(backends=[backend], tasks=[args.task], modes=[args.mode] if args.mode else None, devices=["cpu"],
                    repeat=args.processes, epochs=args.epochs, train_sizes=[args.train_size], test_size=1000,
                    latency_steps=0, timeout_s=600.0)
    try:
        planned = plan(reg, sel)
    except PlanError as exc:
        raise UsageError(str(exc)) from None
    if planned[0].skip_reason:
        raise UsageError(f"{backend} {args.task}: {planned[0].skip_reason}")
    env = environment(plugins)
    state = folders.create(root, planned, env, ["bench", *argv])
    held = folders.lock(state.run_dir)
    cell = planned[0].cell
    print(f"bench calibrate: {args.processes} processes of {backend} {args.task} {cell.mode} "
          f"({args.train_size:,} samples, {args.epochs} epochs), one after another; run {state.run_id}",
          file=sys.stderr)
    try:
        Runner(plugins, ConsoleProgress(), lambda name: reg.backends[name].version(), LocalExecutor()).run(state)
    finally:
        held.close()
    df = records([state.run_dir], root)
    ok = df[df["status"] == "ok"]
    found = spread([e for e in ok["epoch_s"] if isinstance(e, list)])
    if found.processes < 3 or found.between is None:
        why = (f"only {found.processes} processes finished ok" if found.processes < 3 else
               f"{found.slow} of {found.processes} processes ran in the machine's slow mode (more than {SLOW_MODE:g}x "
               "their median): too few left to measure a spread; run it again with more --processes")
        print(f"bench: calibrate: {why} (see bench report {state.run_id})", file=sys.stderr)
        return EXIT_FAILED
    host = env.get("hostname") or "unknown"
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    this = {"measured": now, "run_id": state.run_id, "processes": found.processes, "slow_processes": found.slow,
            "between_cv": found.between, "within_cv": found.within, "medians_s": list(found.medians)}
    sessions = calibration.sessions(calibration.load(root, host), f"{backend} {args.task} {cell.mode}") + [this]
    pooled = calibration.pooled(sessions[-calibration.SESSIONS_KEPT:])
    needed = {f"{s:.0%}": repeats_needed(pooled["between_cv"], s,
                                         slow_share=pooled["slow_processes"] / pooled["processes"])
              for s in SLOWDOWNS}
    saved = calibration.save(root, host, {
        "host": host, "cpu_model": env.get("cpu_model"), "measured": now, "run_id": state.run_id,
        "cell": f"{backend} {args.task} {cell.mode}", "slow_mode": SLOW_MODE, **pooled,
        "sessions": sessions[-calibration.SESSIONS_KEPT:], "repeats_needed": needed})
    print(describe(calibration.load(root, host) or {}))
    print(f"saved in {saved}: bench compare and bench report read it for records made on {host}")
    return EXIT_OK


def describe(found: dict) -> str:
    """The calibration of a machine in a few lines a user can act on."""
    from harness.compare.power import MAX_REPEATS, fail_above_for

    between, within = found.get("between_cv"), found.get("within_cv")
    lines = [f"this machine ({found.get('host')}, {found.get('cpu_model') or 'unknown CPU'}, measured "
             f"{found.get('measured')} with {found.get('cell')}): processes of one cell differ by {between:.1%} "
             f"(coefficient of variation of their median steady epochs, {found.get('processes')} processes, "
             "the slow mode's set aside)"
             + (f", epochs within a process by {within:.1%}" if isinstance(within, (int, float)) else "")]
    count = found.get("sessions")
    if isinstance(count, list) and len(count) > 1:
        lines.append(f"pooled over this machine's last {len(count)} calibrations of that cell: noise that comes in "
                     "bursts shows in some minutes and not others, so each calibration adds to what is kept")
    slow = found.get("slow_processes")
    if isinstance(slow, int) and slow:
        lines.append(f"{slow} of {found.get('processes')} processes ran in the machine's slow mode (more than "
                     f"{found.get('slow_mode', SLOW_MODE):g}x their median): bench compare sets such processes aside, "
                     "and the repeats below allow for as many (simulated with them, harness.compare.power)")
    needed = found.get("repeats_needed") if isinstance(found.get("repeats_needed"), dict) else {}
    for slowdown, n in sorted(needed.items(), key=lambda item: -float(item[0].rstrip("%"))):
        gate = fail_above_for(float(slowdown.rstrip("%")) / 100)
        lines.append(f"to catch a {slowdown} slowdown with bench compare --fail-above {gate:g}: "
                     + (f"--repeat {n} a side" if n else f"more than {MAX_REPEATS} repeats a side: this machine is "
                        "too noisy to decide it (run on a quieter machine, or compare larger differences)"))
    if any(needed.values()):
        lines.append("the least a comparison needs: these processes ran within a minute or so, and drift over the "
                     "longer stretch a comparison takes does not show in them (docs/repeats-and-compare.md)")
    return "\n".join(lines)
