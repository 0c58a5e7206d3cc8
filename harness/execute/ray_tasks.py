"""The `ray` executor: each cell a Ray task (a streaming generator, so its events come home live) holding
one GPU for a cuda cell, or a whole node's CPUs for a CPU cell; cancelled with ray.cancel.

Without `--ray-address` bench starts a Ray instance of its own on this machine, on 127.0.0.1 and
without a dashboard, and stops it at the end. On the node every cell runs through harness.cell.parent_node,
like every executor; tasks are never retried, so a cell is timed once.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import sys
import tempfile
import time
from typing import Any, Iterator

from harness.api import Cell
from harness.executor import (
    Executor,
    Finished,
    Launch,
    Option,
    driver_settings,
    text,
    whole,
)
from harness.exits import UsageError
from harness.store.safe_text import last_line

CANCEL_WAIT_S = 15.0


def node_task(cell_data: dict[str, Any], env: dict[str, str]) -> Iterator[dict[str, Any]]:
    """What a Ray worker runs: the cell's events, its start message carrying the Ray task id."""
    import ray

    from harness.cell.parent_node import remote_events

    task_id = ray.get_runtime_context().get_task_id()
    for item in remote_events(cell_data, "ray", env):
        if "started" in item:
            item["started"]["job_id"] = task_id
        yield item


def _loopback(address: str) -> bool:
    import ipaddress

    host = address.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _reachable(address: str) -> str | None:
    """Why host:port can't be reached (one line), or None."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        return f"--ray-address must be host:port (the head's GCS address) or auto, not {address!r}"
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=5):
            return None
    except OSError as exc:
        return f"cannot reach Ray at {address}: {exc.strerror or exc}"


class RayExecutor(Executor):
    name = "ray"
    description = "a Ray cluster, or a Ray instance started on this machine"
    options = (
        Option("address", text, None, "the cluster's GCS address host:port, or auto (default: start a local Ray "
               "instance on 127.0.0.1, without dashboard)", "--ray-address"),
        Option("cpus_per_gpu_cell", whole(1), 1, "CPUs a cuda cell holds besides its GPU"),
        Option("cpus_per_cpu_cell", whole(1), None, "CPUs a CPU cell holds (default: all of the largest node's, "
               "so it runs alone there)"),
    )

    def __init__(self, settings: dict[str, Any] | None = None):
        super().__init__(settings)
        self.tasks: dict[str, Any] = {}  # cell_id -> the task's ObjectRefGenerator, while it is not back
        self._connected = False
        self._cpu_cell_cpus = 1

    no_gpu_reason = "no node of the Ray cluster has a GPU"

    def _connect(self) -> None:
        if self._connected:
            return
        address = self.settings["address"]
        if address and address != "auto":
            problem = _reachable(address)
            if problem:
                raise UsageError(problem)
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # nothing leaves the machine unasked
        if not address and not any(k in os.environ for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")):
            # bench's own instance: token authentication as Ray's default, its token kept in this process's
            # environment (inherited by the instance) instead of written to ~/.ray
            os.environ.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)})
        if not address or _loopback(address):
            # Ray turns 127.0.0.1 into the machine's network address unless told this is a one-machine
            # instance: bench's own instance stays on loopback, and a head on loopback is reached there.
            os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
        try:
            import ray
            from ray._private import ray_constants
        except ImportError:
            raise UsageError("--executor ray needs Ray: pip install 'bench-harness[ray]'") from None
        if os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER") == "0":
            ray_constants.ENABLE_RAY_CLUSTER = False  # read at import: when Ray came in before the variable was set
        with _stderr_kept() as said:  # Ray's C++ client logs each retry there: one line for the user instead
            try:
                if address:
                    ray.init(address=address, log_to_driver=False, configure_logging=False)
                else:
                    ray.init(address="local", include_dashboard=False, _node_ip_address="127.0.0.1",
                             log_to_driver=False, configure_logging=False)
                failed = None
            except Exception as exc:  # noqa: BLE001 - Ray raises many kinds; all mean: no cluster
                failed = last_line(exc, named=False)
        if failed is not None:
            if AUTH_REFUSED in "".join(said):
                failed += (f" ({AUTH_REFUSED}: the cluster uses token authentication; set RAY_AUTH_MODE=token and "
                           "RAY_AUTH_TOKEN, or RAY_AUTH_TOKEN_PATH, to the head's token: `ray get-auth-token` on "
                           "the head prints it)")
            raise UsageError(f"--executor ray: cannot start or join Ray: {failed}")
        self._connected = True

    def _largest_node(self) -> tuple[int, float]:
        """CPUs and GPUs of the largest live node."""
        import ray

        nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
        return (int(max((n.get("CPU", 0) for n in nodes), default=0)),
                max((n.get("GPU", 0) for n in nodes), default=0))

    def gpu_present(self) -> bool:
        self._connect()
        return self._largest_node()[1] >= 1

    def prepare(self, cells: list[Cell]) -> None:
        self._connect()
        most_cpus, most_gpus = self._largest_node()
        self._cpu_cell_cpus = self.settings["cpus_per_cpu_cell"] or max(most_cpus, 1)
        if any(c.device == "cuda" for c in cells) and most_gpus < 1:
            raise UsageError("--executor ray: no node of the Ray cluster has a GPU for the cuda cells")
        if any(c.device == "cpu" for c in cells) and self._cpu_cell_cpus > most_cpus:
            raise UsageError(f"--executor ray: a CPU cell asks for {self._cpu_cell_cpus} CPUs; the largest node "
                             f"has {most_cpus}")

    def map_unordered(self, cells: list[Cell], launch: Launch) -> Iterator[Finished]:
        import ray

        remote = ray.remote(node_task)
        env = driver_settings()
        by_task: dict[Any, Cell] = {}
        for cell in cells:
            cuda = cell.device == "cuda"
            task = remote.options(num_returns="streaming", max_retries=0, name=f"bench {cell.cell_id}",
                                  num_gpus=1 if cuda else 0,
                                  num_cpus=self.settings["cpus_per_gpu_cell"] if cuda else self._cpu_cell_cpus,
                                  ).remote(cell.to_dict(), env)
            self.tasks[cell.cell_id] = task
            by_task[task] = cell
        running: dict[str, tuple[float, str | None]] = {}  # cell_id -> (started, task id)
        try:
            while by_task and not launch.stopping():
                ready, _ = ray.wait(list(by_task), num_returns=len(by_task), timeout=0)
                if not ready:
                    ready, _ = ray.wait(list(by_task), num_returns=1, timeout=0.5)
                for task in ready:
                    cell = by_task[task]
                    outcome = self._next(cell, task, launch, running)
                    if outcome is not None:
                        del by_task[task], self.tasks[cell.cell_id]
                        yield outcome
                now = time.monotonic()
                for cell in by_task.values():
                    if cell.cell_id in running:
                        launch.event(cell, {"event": "tick"}, now - running[cell.cell_id][0])
        finally:
            self.cancel()

    def _next(self, cell: Cell, task: Any, launch: Launch, running: dict[str, tuple[float, str | None]],
              ) -> Finished | None:
        """Take the task's next message; its outcome once it is over."""
        import ray
        from ray import exceptions

        task_id = running.get(cell.cell_id, (0.0, None))[1]
        placement = {"executor": self.name, "job_id": task_id}
        try:
            item = ray.get(next(task))
        except StopIteration:
            return Finished(cell, {"status": "error", "message": "the Ray task ended without a result"}, None,
                            placement)
        except exceptions.TaskCancelledError:
            return Finished(cell, {"status": "cancelled", "message": f"Ray task {task_id or '(queued)'} was "
                                   "cancelled before the cell finished"}, None, placement)
        except exceptions.OutOfMemoryError as exc:
            return Finished(cell, {"status": "oom", "message": last_line(exc, named=False)}, None, placement)
        except exceptions.RayError as exc:
            return Finished(cell, {"status": "error", "message": f"Ray: {last_line(exc, named=False)}"},
                            None, placement)
        if "started" in item:
            running[cell.cell_id] = (time.monotonic(), item["started"].get("job_id"))
            launch.started(cell)
            launch.event(cell, {"event": "phase", "phase": f"running on {item['started'].get('host')} as Ray task "
                                f"{item['started'].get('job_id')}"}, 0.0)
            return None
        if "event" in item:
            launch.event(cell, item["event"], item.get("elapsed", 0.0))
            return None
        result = item["result"]
        running.pop(cell.cell_id, None)
        if result["values"] is None:  # stopped on the node: only a cancellation does that
            return Finished(cell, {"status": "cancelled", "message": f"Ray task {task_id} was cancelled"}, None,
                            placement)
        return Finished(cell, result["values"], result["wall_s"], {**result["placement"], **placement}, result["log"])

    def cancel(self) -> None:
        """ray.cancel every task not yet back (queued ones are dropped, running ones stop their worker), and
        wait until they are over; a task that ignores it is killed with its Ray worker."""
        if not self.tasks:
            return
        import ray

        tasks = list(self.tasks.values())
        for task in tasks:
            ray.cancel(task)
        deadline = time.monotonic() + CANCEL_WAIT_S
        while tasks and time.monotonic() < deadline:
            tasks = [t for t in tasks if not _over(t)]
            time.sleep(0.1)
        for task in tasks:
            ray.cancel(task, force=True)
        self.cancelled += list(self.tasks)
        self.tasks.clear()

    def close(self) -> None:
        if self._connected:
            import ray

            ray.shutdown()  # a local instance stops with it; a cluster forgets this driver and its tasks
            self._connected = False


def _over(task: Any) -> bool:
    """Whether a streaming task has finished (its last message taken or an error waiting)."""
    import ray

    try:
        ready, _ = ray.wait([task], timeout=0)
        if not ready:
            return False
        ray.get(next(task))
        return False  # a message was still waiting; look again
    except StopIteration:
        return True
    except ray.exceptions.RayError:
        return True


AUTH_REFUSED = "InvalidAuthToken"  # what Ray's client logs when the head refuses its token (or its lack of one)


@contextlib.contextmanager
def _stderr_kept() -> Iterator[list[str]]:
    """File descriptor 2 goes to a temporary file inside the block (C++ libraries write there directly); the
    yielded list holds what was written once the block ends."""
    said: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as kept:
        os.dup2(kept.fileno(), 2)
        try:
            yield said
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            kept.seek(0)
            said.append(kept.read().decode("utf-8", "replace"))
