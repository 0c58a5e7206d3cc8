"""What each `bench` subcommand does, as functions of parsed arguments (the CLI stays thin)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

from harness import envinfo, results, runs
from harness.api import DEVICES, OPTIMIZERS, PRECISIONS
from harness.durable import SaveError
from harness.exits import (EXIT_FAILED, EXIT_INCONCLUSIVE, EXIT_INTERRUPTED, EXIT_NOT_SAVED, EXIT_OK, UsageError,
                           choose, results_root)
from harness.plan import PlanError, PlannedCell, Selection, plan
from harness.plugins import Plugins, call_each, make_plugin_manager
from harness.safe_text import one_line
from harness.registry import Registry, build_registry

DEFAULT_TIMEOUT_S = 1800.0
QUICK = {"epochs": 1, "train_size": 8192, "test_size": 2000, "latency_steps": 5}
RUN_OPTIONS = ("backend", "task", "mode", "epochs", "batch_size", "optimizer", "lr", "weight_decay", "threads",
               "train_size", "test_size")


def _registry(args: argparse.Namespace) -> tuple[Registry, Plugins]:
    plugins = make_plugin_manager(autoload=False if args.no_autoload else None, blocked=args.block)
    return build_registry(plugins)


def _writable_root(root: Path) -> None:
    """Fail before anything is written if results can't be saved there."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".bench-write-test-{uuid.uuid4().hex}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"cannot write results to {root}: {exc.strerror or exc}") from None


def environment(plugins: Plugins) -> dict[str, Any]:
    env = envinfo.collect(tuple(i.distribution for i in plugins.infos.values() if i.distribution))
    for plugin, extra, exc in call_each(plugins, "bench_environment"):
        if exc is None and isinstance(extra, dict):
            env.update(extra)
        elif exc is not None:
            print(one_line(f"bench: warning: plugin {plugin}: bench_environment failed: {exc}"), file=sys.stderr)
    return env


def _check_backend_settings(registry: Registry, names: list[str]) -> None:
    """Exit 2 on a bad value in an environment variable that one of these backends reads."""
    for name in names:
        backend = registry.backends.get(name)
        problem = backend.settings_problem() if backend else None
        if problem:
            raise UsageError(f"backend {name}: {problem}")


def _selection(args: argparse.Namespace, registry: Registry) -> Selection:
    available = [n for n, b in sorted(registry.backends.items()) if b.availability().ok]
    choose("backend", args.backend, list(registry.backends))
    choose("task", args.task, list(registry.tasks))
    backends = args.backend or available
    if not backends:
        raise UsageError("no backend is available: install a framework, e.g. pip install torch==2.13.0")
    _check_backend_settings(registry, backends)
    all_modes = sorted({m for name in backends for m in registry.backends[name].modes})
    choose("mode", args.mode, all_modes)
    choose("device", [args.device], [*DEVICES, "auto"])
    choose("precision", [args.precision], PRECISIONS)
    choose("optimizer", args.optimizer, OPTIMIZERS)
    quick = QUICK if args.quick else {}
    return Selection(
        backends=backends,
        tasks=args.task or sorted(registry.tasks),
        modes=args.mode,
        devices=None if args.device == "auto" else [args.device],
        precision=args.precision,
        repeat=args.repeat,
        epochs=args.epochs or quick.get("epochs"),
        batch_sizes=args.batch_size or [None],
        optimizers=args.optimizer or [None],
        lrs=args.lr or [None],
        threads=args.threads or [None],
        weight_decay=args.weight_decay,
        seed=int(args.seed),
        train_size=args.train_size or quick.get("train_size"),
        test_size=args.test_size or quick.get("test_size"),
        timeout_s=args.timeout or DEFAULT_TIMEOUT_S,
        latency_steps=quick.get("latency_steps", 20),
    )


def cmd_run(args: argparse.Namespace, argv: list[str]) -> int:
    from harness.executor import ExecutorError
    from harness.executor_config import choose_executor, quote, resume_flags
    from harness.progress import ConsoleProgress
    from harness.runner import Interrupted, Runner

    root = results_root(args.out)
    registry, plugins = _registry(args)
    executor = choose_executor(args, registry.executors)  # bad settings: exit 2 before anything is written
    held = None
    try:
        if args.resume:
            given = [f"--{o.replace('_', '-')}" for o in RUN_OPTIONS if getattr(args, o) not in (None, False)]
            if given or args.quick:
                raise UsageError(f"--resume continues a run as it was planned; drop {', '.join(given) or '--quick'}")
            run_dir = results.resolve(args.resume, root)
            state = runs.reopen(run_dir)
            _check_backend_settings(registry, sorted({p.cell.backend for p in state.planned
                                                      if p.cell.cell_id not in state.done and not p.skip_reason}))
            _writable_root(run_dir)
            held = runs.lock(run_dir)
            state = runs.reopen(run_dir)  # again, under the lock: which cells are done is read by one process only
            state.env = environment(plugins)  # this session's, for the records it makes; run.json keeps the first's
            if args.timeout is not None:
                state.planned = [PlannedCell(dataclasses.replace(p.cell, timeout_s=args.timeout), p.skip_reason)
                                 for p in state.planned]
            executor.prepare([p.cell for p in state.planned if p.cell.cell_id not in state.done and not p.skip_reason])
        else:
            sel = _selection(args, registry)
            for name in sel.tasks:
                registry.tasks[name]().prepare()  # DataError: exit 2 before anything is written
            gpu = executor.gpu_present()
            try:
                planned = plan(registry, sel, gpu_present=gpu)
            except PlanError as exc:
                raise UsageError(str(exc)) from None
            _writable_root(root)
            if not gpu:
                for p in planned:
                    if p.cell.device == "cuda" and not p.skip_reason:
                        p.skip_reason = executor.no_gpu_reason
            executor.prepare([p.cell for p in planned if not p.skip_reason])  # nothing submitted, nothing written
            state = runs.create(root, planned, environment(plugins), ["bench", *argv])
            held = runs.lock(state.run_dir)

        progress = ConsoleProgress()
        versions = {name: cls.version() for name, cls in registry.backends.items()}
        runner = Runner(plugins, progress, versions.get, executor)
        print(f"bench: run {state.run_id}: {len(state.planned) - len(state.done)} of {len(state.planned)} cells to "
              f"run{'' if executor.name == 'local' else ' on ' + executor.name}; results in {state.run_dir}",
              file=sys.stderr)
        resume = "continue with: " + quote(["bench", "run", "--resume", state.run_id,
                                            *(["--out", str(root)] if args.out else []), *resume_flags(args)])

        def saved() -> str:
            return f"{len(state.done)} of {len(state.planned)} cells finished and saved in {state.run_dir}"

        try:
            runner.run(state)
        except Interrupted as exc:
            stopped = (f"; {len(executor.cancelled)} queued or running cancelled on {executor.name}"
                       if executor.cancelled and executor.name != "local" else "")
            _tell(f"bench: interrupted by {exc}: {saved()}{stopped}; {resume}")
            return EXIT_INTERRUPTED
        except SaveError as exc:
            _tell(f"bench: {exc}: the run stopped; {saved()}; once that is fixed, {resume}")
            return EXIT_NOT_SAVED
        except ExecutorError as exc:
            _tell(f"bench: error: executor {executor.name}: {exc}; {saved()}; {resume}")
            return EXIT_FAILED
    finally:
        executor.close()
        if held is not None:
            held.close()
    df = _load([state.run_dir], root)
    from harness import report

    print(report.render(df, "table"))
    print(f"bench: saved {len(df)} records in {state.run_dir} (see: bench report {state.run_id})", file=sys.stderr)
    return EXIT_FAILED if df["status"].isin(results.FAILED).any() else EXIT_OK


def cmd_list(args: argparse.Namespace, argv: list[str]) -> int:
    from rich.console import Console
    from rich.table import Table

    registry, _ = _registry(args)
    tasks = Table(title="Tasks")
    for column in ("task", "description", "target", "defaults"):
        tasks.add_column(column)
    for name, cls in sorted(registry.tasks.items()):
        hp = cls.defaults
        tasks.add_row(*_cells(name, cls.description, cls.target_text(),
                              f"{hp.optimizer} lr={hp.lr:g} batch={hp.batch_size} epochs={hp.epochs}"))
    backends = Table(title="Backends")
    for column in ("backend", "available", "version", "modes", "devices", "precisions"):
        backends.add_column(column)
    for name, cls in sorted(registry.backends.items()):
        a = cls.availability()
        backends.add_row(*_cells(name, "yes" if a.ok else f"no: {a.reason}", a.version or "-", ", ".join(cls.modes),
                                 ", ".join(map(str, cls.devices)), ", ".join(map(str, cls.precisions))))
    console = Console(width=max(100, _terminal_width()))
    console.print(tasks)
    console.print(backends)
    return EXIT_OK


def _cells(*values: object) -> list[str]:
    """Table cells from plugin-supplied values: printable (no escape sequence reaches the terminal) and
    free of rich markup."""
    from rich.markup import escape

    return [escape(one_line(str(value))) for value in values]


def cmd_plugins(args: argparse.Namespace, argv: list[str]) -> int:
    from rich.console import Console
    from rich.table import Table

    registry, plugins = _registry(args)
    table = Table(title="Plugins")
    for column in ("plugin", "source", "distribution", "provides", "status"):
        table.add_column(column)
    for name, info in plugins.infos.items():
        dist = f"{info.distribution} {info.version}" if info.distribution else "bench (built in)"
        provided = []
        for item in info.provides:
            kind, _, item_name = item.partition(" ")
            if kind == "backend":
                a = registry.backends[item_name].availability()
                item += f" ({a.version})" if a.ok else f" (unavailable: {a.reason})"
            provided.append(one_line(item))
        status = f"broken: {info.broken}" if info.broken else "ok"
        table.add_row(*_cells(name, info.source, dist), "\n".join(_cells(*provided)) or "-", *_cells(status))
    Console(width=max(100, _terminal_width())).print(table)
    return EXIT_OK


def cmd_env(args: argparse.Namespace, argv: list[str]) -> int:
    _, plugins = _registry(args)
    print(json.dumps(environment(plugins), indent=2, sort_keys=True))
    return EXIT_OK


def cmd_report(args: argparse.Namespace, argv: list[str]) -> int:
    from harness import report

    root = results_root(args.out)
    choose("format", [args.format], report.FORMATS)
    paths = [results.resolve(r, root) for r in (args.runs or ["latest"])]
    df = _load(paths, root)
    text = report.render(df, args.format)  # everything is rendered before anything is written
    _emit(text, args.output)
    return EXIT_OK


def cmd_compare(args: argparse.Namespace, argv: list[str]) -> int:
    from harness import compare

    root = results_root(args.out)
    choose("format", [args.format], compare.FORMATS)
    choose("metric", [args.metric], compare.METRICS)
    if args.alpha >= 1:
        raise UsageError(f"--alpha must be a number between 0 and 1, not {args.alpha:g}")
    if args.run:
        run = results.resolve(args.run, root)
        df = _records(run, root)
        sides = []
        for name in (args.a, args.b):
            choose(f"backend in run {run.name}", [name], sorted(df["backend"].dropna().unique()))
            sides.append(compare.Side(name, df[df["backend"] == name]))
        title = f"{args.b} (B) against {args.a} (A) in run {run.name}: {args.metric}, B/A"
    else:
        runs = [results.resolve(ref, root) for ref in (args.a, args.b)]
        sides = [compare.Side(run.name, _records(run, root)) for run in runs]
        title = f"run {runs[1].name} (B) against run {runs[0].name} (A): {args.metric}, B/A"
    if args.accept_inconclusive and args.fail_above is None:
        raise UsageError("--accept-inconclusive goes with --fail-above")
    from harness.concurrency import concurrency_warning

    warning = concurrency_warning(sides[0].label, sides[0].records, sides[1].label, sides[1].records)
    if warning:
        print(f"bench: warning: {warning}", file=sys.stderr)
    table = compare.compare(*sides, metric=args.metric, alpha=args.alpha, tolerance=args.tolerance,
                            ignore_backend=bool(args.run))
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
                          args.alpha)
    _emit(text, args.output)
    if code != EXIT_OK:
        print(f"bench: {gate_line}", file=sys.stderr)
    return code


def _load(paths: list[Path], root: Path):
    """results.load, with unreadable records named on stderr as one line each rather than as Python warnings."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df = results.load(paths, root=root)
    for problem in df.attrs.get("problems", []):
        print(f"bench: warning: {problem}", file=sys.stderr)
    return df


def _tell(line: str) -> None:
    """A last line on stderr, which may be a terminal that is gone (SIGHUP): losing it must not turn a clean
    stop into a traceback."""
    try:
        print(line, file=sys.stderr, flush=True)
    except OSError:
        pass


def _records(run: Path, root: Path):
    df = _load([run], root)
    if df.empty:
        raise UsageError(f"run {run} has no records")
    return df


def _emit(text: str, output: str | None) -> None:
    """Print, or write the file whole (atomically): a failed write leaves no partial file."""
    from harness import report

    if not output:
        print(text, end="" if text.endswith("\n") else "\n")
        return
    try:
        report.write_atomic(output, text)
    except OSError as exc:
        raise UsageError(f"cannot write {output}: {exc.strerror or exc}") from None


def _terminal_width() -> int:
    """The terminal's width; unlimited when output goes to a file or pipe, so lines never wrap there."""
    if not sys.stdout.isatty():
        return 10_000
    return os.get_terminal_size().columns
