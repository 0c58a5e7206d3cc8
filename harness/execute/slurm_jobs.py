"""The `slurm` executor: each cell a SLURM job, submitted with submitit as one job array per kind of
resource (a GPU for cuda cells, a whole node for CPU cells), watched with squeue, cancelled with scancel.

On the node, submitit runs `node_job`, which runs the cell through harness.cell.parent_node like every executor
and sends back its values, placement and log in submitit's result file. submitit needs its job folder
(`slurm_folder`) on a filesystem the nodes share, as every submitit user does; bench's run folder does
not need to be: the runner writes it from what comes back. Job states come from squeue, not sacct, so
clusters without accounting work too.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator

from harness.api import Cell
from harness.executor import (
    Executor,
    ExecutorError,
    Finished,
    Launch,
    Option,
    boolean,
    driver_settings,
    seconds,
    text,
    texts,
    whole,
)
from harness.exits import UsageError
from harness.store.safe_text import one_line

ACTIVE = ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED",
          "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED", "RESV_DEL_HOLD")
STATE_STATUS = {"CANCELLED": "cancelled", "PREEMPTED": "cancelled", "TIMEOUT": "timeout", "DEADLINE": "timeout",
                "OUT_OF_MEMORY": "oom"}  # any other end without a result is an error
SIGNAL_STATE = {"SIGUSR2": "TIMEOUT"}  # submitit has SLURM send SIGUSR2 shortly before the time limit
PLUMBING = ("array", "output", "error", "open-mode", "wrap", "signal", "job-name")  # set by submitit and bench
RESULT_GRACE_S = 10.0  # a result file may show up on a shared filesystem a little after its job ended
CANCEL_WAIT_S = 60.0


def sbatch_options(value: Any) -> dict[str, Any]:
    """sbatch's long options, `--name=value` or `--flag` (the dashes may be left out), as submitit's
    additional_parameters."""
    parsed: dict[str, Any] = {}
    for item in texts(value):
        name, has_value, setting = item.removeprefix("--").partition("=")
        if not name or name.startswith("-") or (has_value and not setting):
            raise ValueError(f"sbatch options written --name=value or --flag, not {item!r}")
        if name in PLUMBING:
            raise ValueError(f"bench sets sbatch --{name} itself")
        parsed[name] = setting if has_value else True
    return parsed


def _positive_seconds(value: Any) -> float:
    number = seconds(value)
    if number <= 0:
        raise ValueError("a number of seconds > 0")
    return number


class _Stopped(Exception):
    """SLURM signalled the job (scancel, the time limit, preemption): stop the cell and say so."""


def node_job(cell_data: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    """What submitit runs on the node: the cell, stopped cleanly if SLURM signals the job.

    submitit only logs SIGTERM; here it stops the worker (and its process group) and reports
    {"stopped": signal}, so the driver can give the cell its status from the job's final state."""
    from harness.cell.parent_node import remote_events

    received: list[str] = []

    def stop(signum: int, frame: Any) -> None:
        if not received:  # once: a second signal must not cut the worker's clean-up short
            received.append(signal.Signals(signum).name)
            raise _Stopped(received[0])

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGUSR2)}
    result: dict[str, Any] = {}
    try:
        with contextlib.closing(remote_events(cell_data, "slurm", env)) as events:  # closed: the worker stopped
            for item in events:
                result = item.get("result", result)
    except _Stopped:
        pass
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return {"stopped": received[0]} if received else result


def _minutes(timeout_s: float, margin_s: float) -> int:
    return max(1, math.ceil((timeout_s + margin_s) / 60))


class SlurmExecutor(Executor):
    name = "slurm"
    description = "a SLURM cluster, through submitit"
    options = (
        Option("partition", text, None, "partition to submit to (default: the cluster's default)", "--slurm-partition"),
        Option("gres", text, "gpu:1", "generic resources of a cuda cell (sbatch --gres)", "--slurm-gres"),
        Option("cpus", whole(1), None, "CPUs per cell (sbatch --cpus-per-task; default: SLURM's)", "--slurm-cpus"),
        Option("exclusive", boolean, True, "a CPU cell asks for a whole node (sbatch --exclusive); no: it shares "
               "its node", "--slurm-exclusive"),
        Option("time_margin", seconds, 300.0, "seconds added to the cell's timeout for the job's time limit",
               "--slurm-time-margin"),
        Option("array_parallelism", whole(1), 256, "array tasks running at once, per array",
               "--slurm-array-parallelism"),
        Option("arrays", boolean, True, "one job array per kind of resource; no: one job per cell"),
        Option("sbatch", sbatch_options, {}, "more sbatch options, e.g. '--qos=high --account=lab'", "--slurm-sbatch"),
        Option("folder", text, "~/.cache/bench/slurm", "submitit's job files; must be on a filesystem the nodes see",
               "--slurm-folder"),
        Option("poll", _positive_seconds, 1.0, "seconds between two squeue calls"),
    )

    def __init__(self, settings: dict[str, Any] | None = None):
        super().__init__(settings)
        self.jobs: dict[str, str] = {}  # cell_id -> SLURM job id (array task ids as ARRAY_TASK), once submitted
        self._open: dict[str, tuple[Cell, Any]] = {}  # job id -> (cell, submitit job), until its outcome is back
        self._job_name = ""

    # -- before anything is submitted ---------------------------------------------------------

    no_gpu_reason = "no node of the SLURM cluster offers a gpu gres (sinfo)"

    @staticmethod
    def _require() -> None:
        """submitit installed, SLURM's commands on PATH."""
        try:
            import submitit  # noqa: F401
        except ImportError:
            raise UsageError("--executor slurm needs submitit: pip install 'bench-harness[slurm]'") from None
        for program in ("sbatch", "squeue", "scancel", "srun", "sinfo"):
            if shutil.which(program) is None:
                raise UsageError(f"--executor slurm: {program} not found; run bench where SLURM jobs can be submitted")

    def gpu_present(self) -> bool:
        self._require()
        try:
            out = subprocess.run(["sinfo", "--noheader", "--format=%G"], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise UsageError(f"--executor slurm: cannot ask SLURM for its nodes (sinfo): {exc}") from None
        if out.returncode != 0:
            lines = [line for line in out.stderr.splitlines() if line.strip()]
            raise UsageError(f"--executor slurm: sinfo failed: {lines[-1] if lines else out.returncode}")
        return "gpu" in out.stdout

    def prepare(self, cells: list[Cell]) -> None:
        self._require()
        folder = Path(self.settings["folder"]).expanduser()
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"--executor slurm: cannot use {folder} for job files: {exc.strerror or exc}") from None
        for device, group in self._groups(cells).items():
            flags = self._flags(self._parameters(device, group[0].timeout_s, "bench-check"))
            try:
                out = subprocess.run(["sbatch", "--test-only", *flags, "--wrap", "true"], capture_output=True,
                                     text=True, timeout=60)
            except subprocess.TimeoutExpired:
                raise UsageError("--executor slurm: the SLURM controller did not answer within 60 s") from None
            if out.returncode != 0:
                lines = [line for line in (out.stderr + out.stdout).splitlines() if line.strip()]
                raise UsageError(f"--executor slurm: SLURM refuses the {device} cells' job "
                                 f"({' '.join(flags)}): {lines[-1] if lines else f'sbatch exit {out.returncode}'}")

    @staticmethod
    def _groups(cells: list[Cell]) -> dict[str, list[Cell]]:
        groups: dict[str, list[Cell]] = {}
        for cell in cells:
            groups.setdefault(cell.device, []).append(cell)
        return groups

    def _parameters(self, device: str, timeout_s: float, job_name: str) -> dict[str, Any]:
        """submitit's SlurmExecutor parameters for one kind of cell."""
        s = self.settings
        params: dict[str, Any] = {"job_name": job_name, "time": _minutes(timeout_s, s["time_margin"]),
                                  "array_parallelism": s["array_parallelism"], "stderr_to_stdout": True,
                                  "additional_parameters": dict(s["sbatch"])}
        if s["partition"]:
            params["partition"] = s["partition"]
        if s["cpus"]:
            params["cpus_per_task"] = s["cpus"]
        if device == "cuda":
            params["gres"] = s["gres"]
        elif s["exclusive"]:
            params["exclusive"] = True
        return params

    @staticmethod
    def _flags(params: dict[str, Any]) -> list[str]:
        """The same request as sbatch flags (for `sbatch --test-only`)."""
        skip = ("array_parallelism", "stderr_to_stdout", "additional_parameters")
        merged = {k.replace("_", "-"): v for k, v in params.items() if k not in skip}
        merged.update(params["additional_parameters"])
        return [f"--{k}" if v is True else f"--{k}={v}" for k, v in merged.items()]

    # -- the run --------------------------------------------------------------------------

    def map_unordered(self, cells: list[Cell], launch: Launch) -> Iterator[Finished]:
        import submitit

        folder = Path(self.settings["folder"]).expanduser() / launch.run_id
        self._job_name = f"bench-{launch.run_id}"
        env = driver_settings()
        try:
            for device, group in self._groups(cells).items():
                executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=0)
                executor.update_parameters(**self._parameters(device, group[0].timeout_s, self._job_name))
                try:
                    if self.settings["arrays"] and len(group) > 1:
                        jobs = executor.map_array(node_job, [c.to_dict() for c in group], [env] * len(group))
                    else:
                        jobs = [executor.submit(node_job, c.to_dict(), env) for c in group]
                except Exception as exc:  # noqa: BLE001 - sbatch refused after all (a limit, the controller)
                    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
                    raise ExecutorError(f"submitting the {device} cells failed: "
                                        f"{one_line(lines[-1]) if lines else type(exc).__name__}") from None
                for cell, job in zip(group, jobs):
                    self.jobs[cell.cell_id] = job.job_id
                    self._open[job.job_id] = (cell, job)
            yield from self._follow(launch)
        finally:
            self.cancel()
            if not self._open:
                shutil.rmtree(folder, ignore_errors=True)

    def _follow(self, launch: Launch) -> Iterator[Finished]:
        poll = self.settings["poll"]
        states: dict[str, tuple[str, str]] = {}  # job id -> (state, nodes), from the last squeue
        running: dict[str, float] = {}  # job id -> when it was first seen running
        ended: dict[str, float] = {}  # job id -> when it was first seen ended, or stopped by a signal, or missing
        stopped: dict[str, str] = {}  # job id -> the signal its node reported
        polled = -math.inf
        while self._open and not launch.stopping():
            now = time.monotonic()
            if now - polled >= poll:
                states = self._states() or states
                polled = now
            for job_id, (cell, job) in list(self._open.items()):
                state, nodes = states.get(job_id, ("", ""))
                if state not in ("", "PENDING") and job_id not in running:
                    running[job_id] = now
                    launch.started(cell)
                    launch.event(cell, {"event": "phase", "phase": f"running on {nodes or '?'} as SLURM job {job_id}"},
                                 0.0)
                outcome = None
                if job_id in stopped:
                    if state not in ACTIVE or now - ended[job_id] > CANCEL_WAIT_S:
                        outcome = self._stopped(cell, job_id, stopped[job_id], state)
                elif state != "PENDING" and job.paths.result_pickle.exists():
                    outcome = self._collect(cell, job_id, job)
                    if isinstance(outcome, str):
                        stopped[job_id], ended[job_id], outcome = outcome, now, None
                elif state not in ACTIVE:  # ended, or gone from squeue, without a result file so far
                    ended.setdefault(job_id, now)
                    if now - ended[job_id] > RESULT_GRACE_S + 2 * poll:
                        outcome = self._without_result(cell, job_id, job, state)
                if outcome is not None:
                    del self._open[job_id]
                    yield outcome
                elif job_id in running:
                    launch.event(cell, {"event": "tick"}, now - running[job_id])
            time.sleep(0.1)

    def _states(self) -> dict[str, tuple[str, str]] | None:
        """Every job of this run that squeue still knows (ended ones for MinJobAge): id -> (state, nodes)."""
        try:
            out = subprocess.run(["squeue", "--noheader", "--array", "--states=all", f"--name={self._job_name}",
                                  "--format=%i|%T|%N"], capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired:
            return None
        if out.returncode != 0:
            return None  # the controller is busy or restarting: keep the last known states
        states = {}
        for line in out.stdout.splitlines():
            job_id, _, rest = line.strip().partition("|")
            state, _, nodes = rest.partition("|")
            states[job_id] = (state.split()[0] if state else "", nodes)
        return states

    def _collect(self, cell: Cell, job_id: str, job: Any) -> Finished | str:
        """The outcome in the job's result file, or the signal that stopped the job on its node."""
        try:
            payload = job.result()
        except Exception as exc:  # noqa: BLE001 - submitit re-raises the job's own failure
            lines = [line for line in str(exc).splitlines() if line.strip()]
            return Finished(cell, {"status": "error", "message": f"SLURM job {job_id} failed: "
                                   f"{lines[-1].strip() if lines else type(exc).__name__}"},
                            None, self._placement(job_id), self._job_output(job))
        if "stopped" in payload:
            return payload["stopped"]
        return Finished(cell, payload["values"], payload["wall_s"], {**payload["placement"], **self._placement(job_id)},
                        payload["log"])

    def _stopped(self, cell: Cell, job_id: str, sig: str, state: str) -> Finished:
        # The job itself may end COMPLETED (its function returned once the cell was stopped): the signal
        # says why, unless SLURM's final state does.
        state = state if state in STATE_STATUS else SIGNAL_STATE.get(sig, "CANCELLED")
        status = STATE_STATUS.get(state, "error")
        return Finished(cell, {"status": status, "message": f"SLURM job {job_id} ended {state} before the cell "
                               f"finished (its node received {sig})"}, None, self._placement(job_id))

    def _without_result(self, cell: Cell, job_id: str, job: Any, state: str) -> Finished:
        status = STATE_STATUS.get(state, "error")
        what = f"ended {state}" if state else "left the queue"
        return Finished(cell, {"status": status, "message": f"SLURM job {job_id} {what} without a result"}, None,
                        self._placement(job_id), self._job_output(job))

    def _placement(self, job_id: str) -> dict[str, Any]:
        return {"executor": self.name, "job_id": job_id}

    @staticmethod
    def _job_output(job: Any) -> bytes | None:
        try:
            return Path(job.paths.stdout).read_bytes()
        except (OSError, ValueError):
            return None

    def cancel(self) -> None:
        """scancel every job not yet back (an array's id cancels its pending tasks too), and wait until
        squeue no longer lists any as pending, running or completing."""
        if not self._open:
            return
        ids = sorted({job_id.split("_")[0] for job_id in self._open})
        subprocess.run(["scancel", *ids], capture_output=True, timeout=60)
        deadline = time.monotonic() + CANCEL_WAIT_S
        while time.monotonic() < deadline:
            states = self._states()
            if states is not None and not any(states.get(j, ("",))[0] in ACTIVE for j in self._open):
                break
            time.sleep(0.5)
        self.cancelled += [cell.cell_id for cell, _ in self._open.values()]
        self._open.clear()
