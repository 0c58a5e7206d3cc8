"""The GPU measurements in one device call, in five phases by what matters most, each with a hard cap
and one summary line, so that any call, however short, hands back something useful:

  1 preflight (30 s)  each framework imported in its own process (torch; jax with optax; Keras from the
                      carried wheels on each engine): versions, GPU, driver, clocks. No GPU seen: stop.
  2 honesty (90 s)    per backend on the GPU, the conformance sync check (the one a CPU cannot exercise)
                      and the initial-loss check against the NumPy reference; a skip is a FAIL.
  3 headline (300 s)  compiled mode, every backend x task, repeat 1, every backend's MLP before anyone's
                      LSTM (`bench run --order task`), native backends before the Keras ones; each cell
                      capped (`--timeout`: over it, recorded `timeout`, and the run goes on).
  4 the rest          eager mode of the same cells, then repeats 2 and 3 (one run per mode and family
                      holds all three repeats, for `bench compare --run`), until the budget less phase 5.
  5 archive (25 s)    one `bench report` over the runs (Markdown), the summary, logs and check outputs,
                      in one archive, beside the summary and the report: 4 files in $OUT.

The caps are those of the real budget (570 s); another budget scales them. Settings, from the environment:
  OUT                   where the files to bring back go (default /tmp/bench-gpu-out)
  BENCH_GPU_BUDGET_S    seconds for the whole script (default 570)
  BENCH_GPU_DEVICE      cuda (default); cpu only to rehearse this script on a machine without a GPU
  BENCH_GPU_BACKENDS    the backends to run, comma-separated, instead of those preflight finds (rehearsals)
  BENCH_GPU_CELL_CAP_S  each cell's cap (default 45)
  BENCH_GPU_CAPS_S      the caps of phases 1, 2, 3 and 5, comma-separated, instead of the scaled ones
  BENCH_GPU_TASKS       tasks in priority order (default mnist_mlp,linear_regression,mnist_cnn,mnist_lstm)
  BENCH_GPU_EPOCHS, BENCH_GPU_TRAIN_SIZE, BENCH_GPU_TEST_SIZE   bench run's options (default: the tasks')
Exit: 0 all checks passed and every cell recorded ran ok; 1 otherwise; 2 stopped at the start (one line).
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import outcomes
import probes
import summary
from advance import Run, advance

REAL_BUDGET_S = 570.0
CAPS_S = {"preflight": 30.0, "honesty": 90.0, "headline": 300.0, "archive": 25.0}
CELL_CAP_S = 45.0
TASKS = ("mnist_mlp", "linear_regression", "mnist_cnn", "mnist_lstm")
REQUIRED = ("pytest", "numpy", "pandas", "pluggy", "rich", "scipy")
HONESTY_CHECKS = "test_sync_waits_for_the_work or test_initial_loss_matches_the_reference"
MIN_CHECK_S = 3.0  # a backend's share of phase 2 below this is not started
MAX_ARCHIVE_BYTES = 15 * 2**20  # the device tool brings back files of at most 16 MiB
FAILED = ("error", "timeout", "diverged", "oom", "cancelled")
HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent


class Stop(Exception):
    """The script cannot do its work here: one line, exit 2."""


class Interrupted(Exception):
    """SIGTERM or SIGINT: skip to the archive."""


def _number(env: dict[str, str], name: str, default: float | None, whole: bool = False) -> float | None:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise Stop(f"{name} must be a number, not {text!r}") from None
    if value <= 0 or (whole and value != int(value)):
        raise Stop(f"{name} must be a positive {'whole ' if whole else ''}number, not {text!r}")
    return int(value) if whole else value


@dataclass
class Settings:
    out: Path
    budget_s: float
    device: str
    backends: list[str] | None
    cell_cap_s: float
    tasks: list[str]
    run_args: list[str]  # --epochs/--train-size/--test-size where set
    python: str
    caps_s: dict[str, float]  # phase -> cap

    @classmethod
    def from_env(cls, env: dict[str, str]) -> Settings:
        device = env.get("BENCH_GPU_DEVICE", "cuda") or "cuda"
        if device not in ("cuda", "cpu"):
            raise Stop(f"BENCH_GPU_DEVICE must be cuda or cpu, not {device!r}")
        run_args = []
        for name, option in (("BENCH_GPU_EPOCHS", "--epochs"), ("BENCH_GPU_TRAIN_SIZE", "--train-size"),
                             ("BENCH_GPU_TEST_SIZE", "--test-size")):
            value = _number(env, name, None, whole=True)
            if value is not None:
                run_args += [option, str(value)]
        listed = [b.strip() for b in env.get("BENCH_GPU_BACKENDS", "").split(",") if b.strip()]
        tasks = [t.strip() for t in env.get("BENCH_GPU_TASKS", "").split(",") if t.strip()] or list(TASKS)
        budget = _number(env, "BENCH_GPU_BUDGET_S", REAL_BUDGET_S)
        caps = {phase: cap * budget / REAL_BUDGET_S for phase, cap in CAPS_S.items()}
        given = [c.strip() for c in env.get("BENCH_GPU_CAPS_S", "").split(",") if c.strip()]
        if given:
            if len(given) != len(CAPS_S):
                raise Stop(f"BENCH_GPU_CAPS_S takes {len(CAPS_S)} numbers ({', '.join(CAPS_S)}), not {len(given)}")
            caps = {phase: _number({"BENCH_GPU_CAPS_S": c}, "BENCH_GPU_CAPS_S", None)
                    for phase, c in zip(CAPS_S, given)}
            if caps["preflight"] + caps["honesty"] + caps["headline"] + caps["archive"] > budget:
                raise Stop(f"BENCH_GPU_CAPS_S adds up to more than the budget, {budget:g} s")
        return cls(out=Path(env.get("OUT") or "/tmp/bench-gpu-out"), budget_s=budget, device=device,
                   backends=listed or None, cell_cap_s=_number(env, "BENCH_GPU_CELL_CAP_S", CELL_CAP_S),
                   tasks=tasks, run_args=run_args, python=sys.executable, caps_s=caps)


class Session:
    """The clock, the caps, the scratch folder, the log and the summary of one call."""

    def __init__(self, settings: Settings):
        self.s = settings
        self.start = time.monotonic()
        self.end = self.start + settings.budget_s
        self.stamp = time.strftime("%Y%m%d")
        self.scratch = Path(tempfile.mkdtemp(prefix="bench-gpu-"))
        self.session_dir = self.scratch / f"reference-gpu-{self.stamp}"
        (self.session_dir / "checks").mkdir(parents=True)
        settings.out.mkdir(parents=True, exist_ok=True)
        self.log = open(settings.out / "gpu-log.txt", "a", encoding="utf-8")  # noqa: SIM115 - open for the call
        self.lines: list[str] = []
        self.failed = False
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
        self.env.setdefault("BENCH_DISABLE_PLUGIN_AUTOLOAD", "1")  # the checkout's backends, nothing installed

    def cap(self, phase: str) -> float:
        return self.s.caps_s[phase]

    def now(self) -> float:
        return time.monotonic() - self.start

    def last_call(self) -> float:
        """When phases 1-4 must be done: the budget less phase 5's cap."""
        return self.end - self.cap("archive")

    def say(self, line: str) -> None:
        """A summary line: printed, logged, and the summary file rewritten (a killed call keeps it)."""
        print(line, flush=True)
        self.lines.append(line)
        self.log.write(f"[{self.now():7.1f} s] {line}\n")
        self.log.flush()
        (self.s.out / "summary.txt").write_text("\n".join(self.lines) + "\n", encoding="utf-8")

    def phase_line(self, number: int, name: str, started: float, cap: float | None, verdict: str) -> None:
        took = self.now() - started
        limit = f" (cap {cap:.0f} s)" if cap is not None else ""
        self.say(f"{number} {name:<9} {took:6.1f} s{limit:<12}  {verdict}")


def check_interpreter() -> None:
    """Everything the run needs is importable here: if not, stop before spending anything."""
    for module in REQUIRED:
        try:
            importlib.import_module(module)
        except Exception:  # noqa: BLE001 - any failure to import means the same: not usable
            raise Stop(f"{sys.executable} cannot import {module}") from None


# -- 1 ------------------------------------------------------------------------------------------------

def preflight(session: Session) -> list[str]:
    started = session.now()
    deadline = time.monotonic() + session.cap("preflight")
    site = session.scratch / "site"
    found = probes.probe(deadline, session.s.python, session.env, session.s.device, REPO / ".whl", site)
    (session.session_dir / "preflight.json").write_text(json.dumps(found, indent=1))
    if "error" not in found["keras"]:
        session.env["PYTHONPATH"] = os.pathsep.join([str(site), session.env["PYTHONPATH"]])
    seen = probes.backends_seen(found, session.s.device)
    backends = session.s.backends or seen
    if not backends:
        errors = "; ".join(f"{name}: {found[name].get('error', 'no GPU')}" for name in ("torch", "jax"))
        raise Stop(f"no framework sees a GPU here ({errors})" if session.s.device == "cuda"
                   else f"no framework imports here ({errors})")
    given = " (BENCH_GPU_BACKENDS)" if session.s.backends else ""
    session.phase_line(1, "preflight", started, session.cap("preflight"),
                       f"OK: backends {', '.join(backends)}{given} on {session.s.device}")
    for line in probes.describe(found):
        session.say(f"    {line}")
    return backends


# -- 2 ------------------------------------------------------------------------------------------------

def _check(session: Session, backend: str, share: float) -> outcomes.Verdict:
    record = session.session_dir / "checks" / f"honesty-{backend}.jsonl"
    command = [session.s.python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "harness.conformance.plugin",
               "-p", "pytest_outcomes", "--pyargs", "harness.conformance.test_sync", "harness.conformance.test_weights",
               "-k", HONESTY_CHECKS, "--bench-backend", backend, "--bench-device", session.s.device]
    env = {**session.env, outcomes_env(): str(record),
           "PYTHONPATH": os.pathsep.join([str(HERE), session.env["PYTHONPATH"]])}
    with open(session.session_dir / "checks" / f"honesty-{backend}.txt", "w") as output:
        proc = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env, cwd=REPO,
                                start_new_session=True)
        try:
            code: int | None = proc.wait(share)
        except subprocess.TimeoutExpired:
            code = None
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    return outcomes.verdict(record, code, share)


def outcomes_env() -> str:
    from pytest_outcomes import OUTCOMES_ENV

    return OUTCOMES_ENV


def honesty(session: Session, backends: list[str]) -> None:
    started = session.now()
    deadline = min(time.monotonic() + session.cap("honesty"), session.last_call())
    weights = [1 if b.startswith("keras-") else 2 for b in backends]  # the native backends' checks first and longer
    verdicts = {}
    for i, backend in enumerate(backends):
        t0 = session.now()
        share = (deadline - time.monotonic()) * weights[i] / sum(weights[i:])
        if share < MIN_CHECK_S:
            verdicts[backend] = outcomes.Verdict(False, f"FAIL: not run (its share of the phase was {share:.0f} s)")
        else:
            verdicts[backend] = _check(session, backend, share)
        verdicts[backend].text += f" ({session.now() - t0:.1f} s)"
    passed = [b for b, v in verdicts.items() if v.passed]
    session.failed |= len(passed) < len(backends)
    session.phase_line(2, "honesty", started, session.cap("honesty"),
                       f"{'PASS' if len(passed) == len(backends) else 'FAIL'}: {len(passed)} of {len(backends)} "
                       f"backends pass the sync and initial-loss checks on {session.s.device}")
    width = max(map(len, backends))
    for backend, v in verdicts.items():
        session.say(f"    {backend:<{width}}  {v.text}")


# -- 3 and 4 ------------------------------------------------------------------------------------------

def plan_runs(session: Session, backends: list[str]) -> dict[str, Run]:
    natives = [b for b in backends if not b.startswith("keras-")]
    keras = [b for b in backends if b.startswith("keras-")]
    prefix = f"reference-gpu-{session.stamp}"
    runs = {"compiled": Run(f"{prefix}-compiled", natives, "compiled"),
            "keras-compiled": Run(f"{prefix}-keras-compiled", keras, "compiled"),
            "eager": Run(f"{prefix}-eager", natives, "eager"),
            "keras-eager": Run(f"{prefix}-keras-eager", keras, "eager")}
    return {key: run for key, run in runs.items() if run.backends}


def _advance(session: Session, run: Run, repeat: int, deadline: float) -> str:
    args = ["--device", session.s.device, "--task", ",".join(session.s.tasks), *session.s.run_args]
    return advance(run, repeat, deadline, args, session.s.cell_cap_s, session.s.python, session.env, session.log,
                   session.scratch)


def _recorded(runs: list[Run], repeats: tuple[int, ...]) -> tuple[int, int]:
    """(records, planned cells) of these runs' given repeats."""
    done = sum(1 for run in runs for r in run.records() if r.get("repeat") in repeats)
    planned = sum(1 for run in runs for c in run.planned() if c["repeat"] in repeats)
    return done, planned


def headline(session: Session, runs: dict[str, Run]) -> None:
    started = session.now()
    deadline = min(time.monotonic() + session.cap("headline"), session.last_call())
    compiled = [runs[k] for k in ("compiled", "keras-compiled") if k in runs]
    for run in compiled:
        _advance(session, run, 0, deadline)
    done, planned = _recorded(compiled, (0,))
    statuses = _statuses(compiled, (0,))
    session.phase_line(3, "headline", started, session.cap("headline"),
                       f"compiled, repeat 1: {done} of {planned or '?'} cells recorded ({statuses}); "
                       f"cap {session.s.cell_cap_s:g} s a cell")


def the_rest(session: Session, runs: dict[str, Run]) -> None:
    started = session.now()
    deadline = session.last_call()
    eager = [runs[k] for k in ("eager", "keras-eager") if k in runs]
    for run in eager:
        _advance(session, run, 0, deadline)
    for repeat in (1, 2):
        for key in ("compiled", "eager", "keras-compiled", "keras-eager"):
            if key in runs:
                _advance(session, runs[key], repeat, deadline)
    e_done, e_planned = _recorded(eager, (0,))
    r_done, r_planned = _recorded(list(runs.values()), (1, 2))
    session.phase_line(4, "the rest", started, None,
                       f"eager, repeat 1: {e_done} of {e_planned or '?'} cells ({_statuses(eager, (0,))}); "
                       f"repeats 2-3: {r_done} of {r_planned or '?'} ({_statuses(list(runs.values()), (1, 2))})")


def _statuses(runs: list[Run], repeats: tuple[int, ...]) -> str:
    counts: dict[str, int] = {}
    for run in runs:
        for r in run.records():
            if r.get("repeat") in repeats:
                counts[r.get("status", "?")] = counts.get(r.get("status", "?"), 0) + 1
    return ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none"


# -- 5 ------------------------------------------------------------------------------------------------

def archive(session: Session, runs: dict[str, Run]) -> None:
    started = session.now()
    out = session.s.out
    folders = [run for run in runs.values() if run.folder is not None]
    report = session.session_dir / "report.md"
    if folders:
        left = max(session.end - time.monotonic() - 5, 5)
        try:
            subprocess.run([session.s.python, "-m", "harness", "report", *(str(r.folder) for r in folders),
                            "--format", "md", "--output", str(report)], stdout=session.log, stderr=subprocess.STDOUT,
                           env=session.env, timeout=left, check=False)
        except subprocess.TimeoutExpired:
            session.log.write("bench report: no answer in time\n")
    for run in folders:
        if any(r.get("status") in FAILED for r in run.records()):
            session.failed = True
    session.say("runs:")
    for line in summary.run_lines(list(runs.values())):
        session.say(f"    {line}")
    table = summary.table(list(runs.values()), session.s.tasks)
    if table:
        session.say("steady epoch by backend, mode and task:")
        for line in table:
            session.say(f"    {line}")
    sync = summary.sync_lines(list(runs.values()))
    session.say("sync cross-check (torch on cuda: CUDA events beside the synced wall clock):"
                + ("" if sync else " none recorded"))
    for line in sync:
        session.say(f"    {line}")
    if report.exists():
        shutil.copy(report, out / "report.md")
    members = {run.name: run.folder for run in folders}
    tgz = out / "gpu-runs.tgz"
    dropped = _write_archive(session, tgz, members, with_logs=True)
    if tgz.stat().st_size > MAX_ARCHIVE_BYTES:
        dropped = _write_archive(session, tgz, members, with_logs=False)
    size = tgz.stat().st_size / 2**20
    names = ", ".join([*members, session.session_dir.name])
    session.phase_line(5, "archive", started, session.cap("archive"),
                       f"gpu-runs.tgz {size:.1f} MiB: {names}{'; cell logs left out (size)' if dropped else ''}")
    session.say(f"total {session.now():.0f} s of {session.s.budget_s:.0f} s")
    shutil.copy(out / "summary.txt", session.session_dir / "summary.txt")
    _write_archive(session, tgz, members, with_logs=not dropped)  # again, with the summary's last lines


def _write_archive(session: Session, tgz: Path, members: dict[str, Path], with_logs: bool) -> bool:
    """The runs (as their names) and the session folder; returns True when cell logs were left out."""
    session.log.flush()
    shutil.copy(session.s.out / "gpu-log.txt", session.session_dir / "gpu-log.txt")
    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        if info.name.endswith("/.lock") or (not with_logs and "/logs/" in info.name):
            return None  # the run's lock file is this machine's; logs go first when the archive is too big
        return info

    with tarfile.open(tgz, "w:gz") as tar:
        for name, folder in members.items():
            tar.add(folder, arcname=name, filter=keep)
        tar.add(session.session_dir, arcname=session.session_dir.name)
    return not with_logs


# -----------------------------------------------------------------------------------------------------

def main() -> int:
    try:
        settings = Settings.from_env(dict(os.environ))
        check_interpreter()
    except Stop as exc:
        print(f"run.sh: stopping: {exc}", flush=True)
        return 2
    session = Session(settings)

    def interrupted(signum: int, frame: object) -> None:
        raise Interrupted(signal.Signals(signum).name)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, interrupted)
    session.say(f"bench on the GPU, {time.strftime('%Y-%m-%d %H:%M:%S %Z')}: budget {settings.budget_s:.0f} s "
                f"(caps: preflight {session.cap('preflight'):.0f} s, honesty {session.cap('honesty'):.0f} s, headline "
                f"{session.cap('headline'):.0f} s, archive {session.cap('archive'):.0f} s), device {settings.device}")
    runs: dict[str, Run] = {}
    try:
        backends = preflight(session)
        honesty(session, backends)
        runs = plan_runs(session, backends)
        headline(session, runs)
        the_rest(session, runs)
    except Stop as exc:
        session.say(f"run.sh: stopping: {exc}")
        shutil.rmtree(session.scratch, ignore_errors=True)
        return 2
    except Interrupted as exc:
        session.say(f"interrupted by {exc}: straight to the archive")
        session.failed = True
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # phase 5 finishes what it can: it is short and capped
    try:
        archive(session, runs)
    finally:
        session.log.close()
        shutil.rmtree(session.scratch, ignore_errors=True)  # what was worth keeping is in the archive
    return 1 if session.failed else 0


if __name__ == "__main__":
    sys.exit(main())
