"""`bench run`: plan the cells the options ask for, run them (here or on a cluster), save and show them."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import uuid
from pathlib import Path

from harness.cli.loading import environment, records, registry
from harness.cli.output import tell
from harness.cli.values import interpreters, listed, names, number, whole_number
from harness.exits import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_NOT_SAVED,
    EXIT_OK,
    RESULTS_ENV,
    UsageError,
    choose,
    results_root,
)

DEFAULT_TIMEOUT_S = 1800.0
# --quick: inference cells time 1 s and 100 queries of batch-1 predictions instead of 10 s and 1,000.
QUICK = {"epochs": 1, "train_size": 8192, "test_size": 2000, "latency_steps": 5, "inference_s": 1.0,
         "inference_queries": 100}
RUN_OPTIONS = ("backend", "task", "mode", "phase", "epochs", "batch_size", "optimizer", "lr", "weight_decay", "l1",
               "threads", "train_size", "test_size", "order", "python", "lockstep")
ALL = "all"  # --backend all: every available backend, not only those a plain run takes


def register(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="run benchmark cells and print the table")
    run.add_argument("--backend", type=names("--backend"),
                     help="backends, comma-separated, or 'all' (default: every available backend that a plain run "
                          "takes: the native torch, tensorflow and jax, not the Keras ones)")
    run.add_argument("--task", type=names("--task"), help="tasks, comma-separated (default: all)")
    run.add_argument("--mode", type=names("--mode"),
                     help="modes, comma-separated, e.g. eager,compiled (default: each backend's best, the last it "
                          "lists)")
    run.add_argument("--phase", type=names("--phase"),
                     help="train (default), inference (prediction: batch-1 latency and throughput at batch 1, 32, "
                          "256 and 1024, with the task's initial weights; docs/inference-and-energy.md), or both, "
                          "comma-separated")
    run.add_argument("--python", type=interpreters,
                     help="Python environments to run every cell in, comma-separated interpreters, each PATH or "
                          "LABEL=PATH (e.g. .venv-a/bin/python,.venv-b/bin/python): the environments of one cell "
                          "run in lockstep, taking turns epoch by epoch (--lockstep); bench compare --run RUN "
                          "LABEL_A LABEL_B pairs them (default: this interpreter)")
    run.add_argument("--lockstep", type=names("--lockstep"),
                     help="grid axes whose cells take turns, comma-separated (python, backend, mode, train_size, ...; "
                          "none: off): the training cells of one repeat that differ only in these run as live "
                          "processes alternating epoch by epoch, so that all see the same machine, and bench "
                          "compare pairs them; the local executor only (default: python when --python gives two or "
                          "more environments, else none; docs/repeats-and-compare.md)")
    run.add_argument("--device", default="auto", help="cpu, cuda or auto (default: auto, the best device here)")
    run.add_argument("--precision", default="fp32", help="fp32 (default), tf32 or bf16")
    run.add_argument("--repeat", type=whole_number("--repeat"), default=1, help="repeats, each its own process")
    run.add_argument("--order", help="order of the cells within a repeat: backend (default: each backend's tasks "
                                     "in turn) or task (every backend's first task, then every backend's second, "
                                     "in --task order: a run cut short has the same tasks for all)")
    run.add_argument("--epochs", type=whole_number("--epochs"), help="epochs (default: the task's)")
    run.add_argument("--batch-size", type=listed(whole_number("--batch-size"), "--batch-size"),
                     help="batch sizes, comma-separated (default: the task's)")
    run.add_argument("--optimizer", type=names("--optimizer"),
                     help="sgd, momentum, adam, rmsprop, adagrad (comma-separated)")
    run.add_argument("--lr", type=listed(number("--lr", 0, False), "--lr"), help="learning rates, comma-separated")
    run.add_argument("--weight-decay", type=listed(number("--weight-decay", 0, True), "--weight-decay"),
                     help="coupled L2 coefficients, comma-separated: (wd/2)*||w||^2 added to the objective, "
                          "wd*w to every gradient (default: the task's, 0)")
    run.add_argument("--l1", type=listed(number("--l1", 0, True), "--l1"),
                     help="L1 coefficients, comma-separated: l1*||w||_1 added to the objective, l1*sign(w) to every "
                          "gradient (sign(0) = 0; default 0)")
    run.add_argument("--threads", type=listed(whole_number("--threads"), "--threads"),
                     help="CPU threads per framework, comma-separated (default: all usable cores)")
    run.add_argument("--seed", type=whole_number("--seed", 0), default=0, help="seed of weights and batch order")
    run.add_argument("--train-size", type=listed(whole_number("--train-size"), "--train-size"),
                     help="training samples, comma-separated, e.g. 20000 or 1e7 (MNIST: the first N, at most 60000)")
    run.add_argument("--test-size", type=whole_number("--test-size"),
                     help="test samples (MNIST: the first N, at most 10000)")
    run.add_argument("--timeout", type=number("--timeout", 0, False),
                     help="seconds per cell before it is killed (default 1800); with --resume, caps the cells "
                          "still to run")
    run.add_argument("--quick", action="store_true",
                     help="a smoke run: 1 epoch on 8192 training and 2000 test samples (targets are missed)")
    run.add_argument("--out", help=f"results folder (default: ${RESULTS_ENV} or ./results)")
    run.add_argument("--resume", metavar="RUN_ID", help="finish the unfinished cells of an earlier run")
    _executor_arguments(run)
    run.set_defaults(handler=run_command)


def _executor_arguments(run: argparse.ArgumentParser) -> None:
    from harness.execute.config import builtin_flags, dest

    group = run.add_argument_group("where cells run", "see docs/clusters.md")
    group.add_argument("--executor", metavar="NAME",
                       help="local (default: this machine), slurm, ray, or a plugin's executor")
    group.add_argument("--executor-config", metavar="FILE",
                       help="TOML file of executor settings, keys prefixed by the executor (slurm_partition = ...); "
                            "flags win over it")
    for cls, option in builtin_flags():
        group.add_argument(option.flag, dest=dest(option), metavar="VALUE",
                           help=f"{option.help} ({cls.name})".replace("%", "%%"))


def _writable_root(root: Path) -> None:
    """Fail before anything is written if results can't be saved there."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".bench-write-test-{uuid.uuid4().hex}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"cannot write results to {root}: {exc.strerror or exc}") from None


def _check_backend_settings(reg, backend_names: list[str]) -> None:
    """Exit 2 on a bad value in an environment variable that one of these backends reads."""
    for name in backend_names:
        backend = reg.backends.get(name)
        problem = backend.settings_problem() if backend else None
        if problem:
            raise UsageError(f"backend {name}: {problem}")


def _backends(args: argparse.Namespace, reg) -> list[str]:
    available = [n for n, b in sorted(reg.backends.items()) if b.availability().ok]
    if args.backend == [ALL]:
        chosen = available
    else:
        choose("backend", args.backend, list(reg.backends))
        chosen = args.backend or [n for n in available if reg.backends[n].in_default_run]
    if not chosen:
        raise UsageError("no backend is available: install a framework, e.g. pip install torch==2.13.0")
    return chosen


def _selection(args: argparse.Namespace, reg):
    from harness.api import DEVICES, OPTIMIZERS, PHASES, PRECISIONS
    from harness.run.plan import ORDERS, Selection

    choose("task", args.task, list(reg.tasks))
    backends = _backends(args, reg)
    _check_backend_settings(reg, backends)
    all_modes = sorted({m for name in backends for m in reg.backends[name].modes})
    choose("mode", args.mode, all_modes)
    choose("device", [args.device], [*DEVICES, "auto"])
    choose("precision", [args.precision], PRECISIONS)
    choose("order", [args.order] if args.order else None, list(ORDERS))
    choose("optimizer", args.optimizer, OPTIMIZERS)
    choose("phase", args.phase, PHASES)
    quick = QUICK if args.quick else {}
    return Selection(
        backends=backends,
        tasks=args.task or sorted(reg.tasks),
        modes=args.mode,
        devices=None if args.device == "auto" else [args.device],
        precision=args.precision,
        repeat=args.repeat,
        epochs=args.epochs or quick.get("epochs"),
        batch_sizes=args.batch_size or [None],
        optimizers=args.optimizer or [None],
        lrs=args.lr or [None],
        threads=args.threads or [None],
        weight_decays=args.weight_decay or [None],
        l1s=args.l1 or [None],
        seed=args.seed,
        train_sizes=args.train_size or [quick.get("train_size")],
        test_size=args.test_size or quick.get("test_size"),
        timeout_s=args.timeout or DEFAULT_TIMEOUT_S,
        latency_steps=quick.get("latency_steps", 20),
        order=args.order or "backend",
        phases=args.phase or ["train"],
        pythons=[(label, _runnable(label, path)) for label, path in args.python] if args.python else [None],
        **{k: quick[k] for k in ("inference_s", "inference_queries") if k in quick},
    )


def _lockstep(args: argparse.Namespace, executor) -> list[str]:
    from harness.run.plan import LOCKSTEP_AXES

    if args.lockstep is None:  # the default: environments compared in one run alternate epochs, where they can
        return ["python"] if args.python and len(args.python) > 1 and executor.name == "local" else []
    if args.lockstep == ["none"]:
        return []
    choose("lockstep axis", args.lockstep, list(LOCKSTEP_AXES))
    if executor.name != "local":
        raise UsageError(f"--lockstep: the cells of a group take turns on one machine; executor {executor.name} "
                         "runs each cell on its own (use the local executor, or --lockstep none)")
    return args.lockstep


def _runnable(label: str, path: str) -> str:
    """The interpreter's absolute path, once it has run bench's worker imports from this checkout; UsageError
    saying what is missing otherwise (nothing written yet)."""
    import os
    import shutil
    import subprocess

    from harness.cell.parent import CHECKOUT

    found = shutil.which(path) if os.sep not in path else (path if os.access(path, os.X_OK) else None)
    if not found or not os.path.isfile(found):
        raise UsageError(f"--python {label}: {path} is not an executable interpreter")
    probe = subprocess.run([found, "-c", "import harness.cell.worker, harness.api"], capture_output=True, text=True,
                           env={**os.environ, "PYTHONPATH": CHECKOUT}, timeout=120)
    if probe.returncode != 0:
        lines = [line for line in probe.stderr.splitlines() if line.strip()]
        raise UsageError(f"--python {label}: {path} cannot run bench's worker ({lines[-1] if lines else 'no output'}): "
                         "install numpy and pluggy, and the frameworks to compare, in that environment")
    return os.path.abspath(found)


def _resumed(args, reg, plugins, root, executor):
    from collections import Counter

    from harness import results
    from harness.run import folders
    from harness.run.plan import PlannedCell

    given = [f"--{o.replace('_', '-')}" for o in RUN_OPTIONS if getattr(args, o) not in (None, False)]
    if given or args.quick:
        raise UsageError(f"--resume continues a run as it was planned; drop {', '.join(given) or '--quick'}")
    run_dir = results.resolve(args.resume, root)
    state = folders.reopen(run_dir)
    _check_backend_settings(reg, sorted({p.cell.backend for p in state.planned
                                         if p.cell.cell_id not in state.done and not p.skip_reason}))
    _writable_root(run_dir)
    held = folders.lock(run_dir)
    state = folders.reopen(run_dir)  # again, under the lock: which cells are done is read by one process only
    state.env = environment(plugins)  # this session's, for the records it makes; run.json keeps the first's
    if args.timeout is not None:  # a lockstep cell waits while the others of its group run: once per cell
        sizes = Counter(p.cell.lockstep for p in state.planned)
        sizes[None] = 1
        state.planned = [PlannedCell(dataclasses.replace(p.cell, timeout_s=args.timeout * sizes[p.cell.lockstep]),
                                     p.skip_reason) for p in state.planned]
    executor.prepare([p.cell for p in state.planned if p.cell.cell_id not in state.done and not p.skip_reason])
    return state, held


def _planned(args, argv, reg, plugins, root, executor):
    from harness.run import folders
    from harness.run.plan import PlanError, plan

    sel = _selection(args, reg)
    sel.lockstep = _lockstep(args, executor)
    for name in sel.tasks:
        reg.tasks[name]().prepare()  # DataError: exit 2 before anything is written
    gpu = executor.gpu_present()
    if sel.devices == ["cuda"] and not gpu:
        raise UsageError(f"--device cuda: {executor.no_gpu_reason} (--device auto runs on the best device here)")
    try:
        planned = plan(reg, sel, gpu_present=gpu)
    except PlanError as exc:
        raise UsageError(str(exc)) from None
    if args.lockstep and sel.lockstep and not any(p.cell.lockstep for p in planned):
        tell(f"bench: --lockstep {','.join(sel.lockstep)}: no two cells of a repeat differ only in that; each runs "
             "alone")
    _writable_root(root)
    executor.prepare([p.cell for p in planned if not p.skip_reason])  # nothing submitted, nothing written
    state = folders.create(root, planned, environment(plugins), ["bench", *argv])
    return state, folders.lock(state.run_dir)


def run_command(args: argparse.Namespace, argv: list[str]) -> int:
    from harness import results
    from harness.execute.config import choose_executor, quote, resume_flags
    from harness.executor import ExecutorError
    from harness.run.estimate import Estimates
    from harness.run.progress import ConsoleProgress
    from harness.run.runner import Interrupted, Runner
    from harness.store.durable import SaveError

    root = results_root(args.out)
    reg, plugins = registry(args)
    executor = choose_executor(args, reg.executors)  # bad settings: exit 2 before anything is written
    held = None
    try:
        if args.resume:
            state, held = _resumed(args, reg, plugins, root, executor)
        else:
            state, held = _planned(args, argv, reg, plugins, root, executor)
        todo = [p.cell for p in state.planned if p.cell.cell_id not in state.done and not p.skip_reason]
        progress = ConsoleProgress(estimates=Estimates.for_cells(todo, root))
        versions = {name: cls.version() for name, cls in reg.backends.items()}
        runner = Runner(plugins, progress, versions.get, executor)
        print(f"bench: run {state.run_id}: {len(state.planned) - len(state.done)} of {len(state.planned)} cells to "
              f"run{'' if executor.name == 'local' else ' on ' + executor.name}"
              f"{progress.estimates.total_line()}; results in {state.run_dir}", file=sys.stderr)
        resume = "continue with: " + quote(["bench", "run", "--resume", state.run_id,
                                            *(["--out", str(root)] if args.out else []), *resume_flags(args)])

        def saved() -> str:
            return f"{len(state.done)} of {len(state.planned)} cells finished and saved in {state.run_dir}"

        try:
            runner.run(state)
        except Interrupted as exc:
            stopped = (f"; {len(executor.cancelled)} queued or running cancelled on {executor.name}"
                       if executor.cancelled and executor.name != "local" else "")
            tell(f"bench: interrupted by {exc}: {saved()}{stopped}; {resume}")
            return EXIT_INTERRUPTED
        except SaveError as exc:
            tell(f"bench: {exc}: the run stopped; {saved()}; once that is fixed, {resume}")
            return EXIT_NOT_SAVED
        except ExecutorError as exc:
            tell(f"bench: error: executor {executor.name}: {exc}; {saved()}; {resume}")
            return EXIT_FAILED
    finally:
        executor.close()
        if held is not None:
            held.close()
    df = records([state.run_dir], root)
    from harness.report.render import render

    print(render(df, "table"))
    print(f"bench: saved {len(df)} records in {state.run_dir} (see: bench report {state.run_id}; "
          f"bench report {state.run_id} --full for every table)", file=sys.stderr)
    return EXIT_FAILED if df["status"].isin(results.FAILED).any() else EXIT_OK
