"""`bench calibrate`: how noisy this machine is, measured in about a minute, and kept for compare and reports.

It runs short processes of one small cell (a real run, saved like any other) as lockstep pairs: two processes of
the same cell taking turns epoch by epoch (harness.measure.lockstep), as bench run --python runs two environments.
It reports the spread between processes and between the epochs within each, the spread of a pair's ratio, and
how many repeats a side `bench compare` needs here to decide a 25% and a 10% slowdown, for runs made apart and
for cells in lockstep (harness.compare.power). The figures are saved per machine (harness.store.calibration);
`bench compare` then takes the machine's spread as the least a side can have, and says how many repeats a
comparison would need.
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
PAIR = ("a", "b")


def register(sub: argparse._SubParsersAction) -> None:
    cal = sub.add_parser("calibrate", help="measure how much this machine's timings move (about a minute)",
                         description="Runs a few short processes of one small cell and reports the spread "
                                     "between processes and within one, and the repeats bench compare needs here.")
    cal.add_argument("--backend", type=names("--backend"), help="the backend to time (default: jax, else torch, "
                                                                "else tensorflow, else any available)")
    cal.add_argument("--task", default="mnist_mlp", help="the task to time (default mnist_mlp)")
    cal.add_argument("--mode", help="the mode (default: the backend's best)")
    cal.add_argument("--processes", type=whole_number("--processes"), default=12,
                     help="processes to run, two at a time in lockstep pairs (default 12; at least 4)")
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

    if args.processes < 4:
        raise UsageError("--processes must be at least 4: they run as lockstep pairs, and a spread needs two pairs")
    if args.epochs < 3:
        raise UsageError("--epochs must be at least 3: the first compiles, the others are the steady ones")
    root = results_root(args.out)
    reg, plugins = registry(args)
    choose("task", [args.task], list(reg.tasks))
    backend = _backend(args, reg)
    if args.mode:
        choose("mode", [args.mode], list(reg.backends[backend].modes))
    reg.tasks[args.task]().prepare()
    # The same interpreter under two labels: two processes of one cell a repeat, in lockstep.
    sel = Selection(backends=[backend], tasks=[args.task], modes=[args.mode] if args.mode else None, devices=["cpu"],
                    repeat=(args.processes + 1) // 2, epochs=args.epochs, train_sizes=[args.train_size],
                    test_size=1000, latency_steps=0, timeout_s=600.0,
                    pythons=[(label, sys.executable) for label in PAIR], lockstep=["python"])
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
    print(f"bench calibrate: {len(planned)} processes of {backend} {args.task} {cell.mode} "
          f"({args.train_size:,} samples, {args.epochs} epochs), two at a time taking turns; run {state.run_id}",
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
            "between_cv": found.between, "within_cv": found.within, "medians_s": list(found.medians),
            "pair_ratios": pair_ratios(ok)}
    sessions = calibration.sessions(calibration.load(root, host), f"{backend} {args.task} {cell.mode}") + [this]
    pooled = calibration.pooled(sessions[-calibration.SESSIONS_KEPT:])
    needed = {f"{s:.0%}": repeats_needed(pooled["between_cv"], s,
                                         slow_share=pooled["slow_processes"] / pooled["processes"])
              for s in SLOWDOWNS}
    in_lockstep = ({f"{s:.0%}": repeats_needed(pooled["lockstep_cv"], s, paired=True,
                                               slow_share=pooled["lockstep_lone"] / pooled["lockstep_pairs"])
                    for s in SLOWDOWNS} if pooled.get("lockstep_cv") is not None else {})
    saved = calibration.save(root, host, {
        "host": host, "cpu_model": env.get("cpu_model"), "measured": now, "run_id": state.run_id,
        "cell": f"{backend} {args.task} {cell.mode}", "slow_mode": SLOW_MODE, **pooled,
        "sessions": sessions[-calibration.SESSIONS_KEPT:], "repeats_needed": needed,
        "repeats_needed_lockstep": in_lockstep})
    print(describe(calibration.load(root, host) or {}))
    print(f"saved in {saved}: bench compare and bench report read it for records made on {host}")
    return EXIT_OK


def pair_ratios(ok) -> list[float]:
    """b/a of each lockstep pair that finished ok on both sides, turn by turn, as bench compare takes it."""
    from harness.compare.paired import turn_ratio

    ratios = []
    for _, group in ok.groupby("lockstep"):
        records = {r["python"]: r for r in group.to_dict("records")}
        if all(label in records for label in PAIR):
            ratio = turn_ratio(*(records[label] for label in PAIR))
            if ratio is not None and ratio > 0:
                ratios.append(ratio)
    return ratios


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
    lockstep, pairs, lone = found.get("lockstep_cv"), found.get("lockstep_pairs"), found.get("lockstep_lone")
    if isinstance(lockstep, (int, float)):
        lines.append(f"two processes taking turns epoch by epoch (lockstep, as bench run --python runs two "
                     f"environments) differ by {lockstep:.1%} (coefficient of variation of the pair's ratio, "
                     f"{pairs} pairs" + (f", {lone} set aside with one process alone in the slow mode" if lone else "")
                     + ")")
    needed = found.get("repeats_needed") if isinstance(found.get("repeats_needed"), dict) else {}
    paired = found.get("repeats_needed_lockstep") if isinstance(found.get("repeats_needed_lockstep"), dict) else {}

    def repeats(n: object) -> str:
        return f"--repeat {n} a side" if n else f"more than {MAX_REPEATS} repeats a side"

    for slowdown, n in sorted(needed.items(), key=lambda item: -float(item[0].rstrip("%"))):
        gate = fail_above_for(float(slowdown.rstrip("%")) / 100)
        lines.append(f"to catch a {slowdown} slowdown with bench compare --fail-above {gate:g}: "
                     + (f"{repeats(paired[slowdown])} in lockstep (one run, --python or --lockstep); " if slowdown
                        in paired else "") + f"at least {repeats(n)} for runs made apart")
    if needed:
        lines.append("runs made apart: that is the least they need, not what suffices. These processes ran within a "
                     "minute or so; over the half hour a comparison of runs made apart takes, the machine drifts "
                     "further"
                     + (f", and {found.get('slow_processes')} of {found.get('processes')} processes here ran in its "
                        "slow mode, which comes in stretches that one side can catch and the other miss: on this "
                        "machine such comparisons may not decide at any practical --repeat. Compare in one run, in "
                        "lockstep, where the two sides share every stretch" if isinstance(slow, int) and slow else "")
                     + " (docs/repeats-and-compare.md)")
    return "\n".join(lines)
