"""One bench run carried forward a repeat at a time, never past a deadline.

A run is planned once with every repeat (`--repeat 3`), so that its repeats stay in one run for
`bench compare --run`; each call here takes it up to a given repeat and stops it there with SIGINT, as
Ctrl-C would: bench keeps every finished record and the next call resumes the rest (`--resume`).
Every cell has its own cap (`--timeout`: a cell over it is recorded `timeout` and the run goes on);
the deadline is the phase's, and a cell running when it comes is stopped unrecorded, to run first next time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

POLL_S = 0.2
STOP_GRACE_S = 15.0  # after SIGINT, before SIGKILL: bench kills its cell and saves what it finished
MIN_START_S = 3.0  # not worth starting a bench process with less left


@dataclass
class Run:
    """A run of some backends in one mode; `folder` is set once bench has created it."""

    name: str
    backends: list[str]
    mode: str
    folder: Path | None = None
    exits: list[str] = field(default_factory=list)  # one word per bench process: how it ended

    def planned(self) -> list[dict]:
        """The plan's cells (dicts as run.json holds them), in bench's order."""
        if self.folder is None or not (self.folder / "run.json").exists():
            return []
        return [p["cell"] for p in json.loads((self.folder / "run.json").read_text())["plan"]]

    def records(self) -> list[dict]:
        if self.folder is None or not (self.folder / "records.jsonl").exists():
            return []
        out = []
        for line in (self.folder / "records.jsonl").read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:  # a line being written right now
                continue
        return out


def _repeats_done(run: Run, repeat: int, folder: Path | None) -> bool:
    """Every planned cell of repeats 0..repeat has a record."""
    probe = Run(run.name, run.backends, run.mode, folder)
    planned = probe.planned()
    if not planned:
        return False
    done = {(r.get("backend"), r.get("task"), r.get("mode"), r.get("repeat")) for r in probe.records()}
    return all((c["backend"], c["task"], c["mode"], c["repeat"]) in done for c in planned if c["repeat"] <= repeat)


def _new_folder(parent: Path) -> Path | None:
    found = [p for p in parent.iterdir() if (p / "run.json").exists()] if parent.exists() else []
    return found[0] if found else None


def advance(run: Run, repeat: int, deadline: float, new_args: list[str], cell_cap_s: float, python: str,
            env: dict[str, str], log: IO[str], scratch: Path) -> str:
    """Run (or resume) `run` until its repeats 0..`repeat` are recorded, or the deadline; returns how it ended:
    "done" (bench finished its plan), "reached" (stopped after the repeat), "deadline", "no time", or
    "exit N" (bench stopped by itself with code N before either)."""
    if run.folder is not None and _repeats_done(run, repeat, run.folder):
        return "reached"
    if deadline - time.monotonic() < MIN_START_S:
        return "no time"
    if run.folder is None:
        fresh = scratch / f"new-{run.name}"
        command = [python, "-m", "harness", "run", "--backend", ",".join(run.backends), "--mode", run.mode,
                   "--repeat", "3", "--order", "task", "--timeout", f"{cell_cap_s:g}", *new_args, "--out", str(fresh)]
    else:
        fresh = None
        command = [python, "-m", "harness", "run", "--resume", str(run.folder), "--timeout", f"{cell_cap_s:g}"]
    log.write(f"\n$ {' '.join(command)}\n")
    log.flush()
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    ended = None
    try:
        while proc.poll() is None:
            folder = run.folder or _new_folder(fresh)
            if _repeats_done(run, repeat, folder):
                ended = "reached"
                break
            if time.monotonic() >= deadline:
                ended = "deadline"
                break
            time.sleep(POLL_S)
    finally:
        if proc.poll() is None:
            _stop(proc)
    if run.folder is None:
        run.folder = _new_folder(fresh)
    if ended is None:
        ended = "done" if proc.returncode in (0, 1) else f"exit {proc.returncode}"
    run.exits.append(ended)
    log.write(f"[{run.name}: {ended}, bench exit {proc.returncode}]\n")
    log.flush()
    return ended


def _stop(proc: subprocess.Popen) -> None:
    """SIGINT as Ctrl-C would send it; SIGKILL to the whole group if bench has not saved and left in time."""
    try:
        proc.send_signal(signal.SIGINT)
        proc.wait(STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
