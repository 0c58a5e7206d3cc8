"""A tiny NumPy backend for harness tests (Dense layers with ReLU, plain SGD, CPU only), and a
fault-injection variant whose modes each misbehave in one way."""

from __future__ import annotations

import os
import time

import numpy as np

from harness import hookimpl
from harness.api import Availability, Backend


class FakeBackend(Backend):
    name = "fake"
    module = "numpy"
    distributions = ("numpy",)
    modes = ("eager", "compiled")
    optimizers = ("sgd",)
    layer_kinds = frozenset({"Dense", "ReLU", "Flatten"})

    @classmethod
    def availability(cls) -> Availability:
        return Availability(True, "0.0-fake")

    def import_framework(self, cell) -> None:
        self.fault = ""

    def build(self, task, cell, data, weights):
        return {"w": [dict(p) for p in weights], "layers": task.model().layers, "data": data, "lr": cell.hp.lr,
                "loss": task.loss}

    def _forward(self, state, x):
        acts = [x.reshape(len(x), -1)]
        for layer, p in zip(state["layers"], state["w"]):
            kind = type(layer).__name__
            out = acts[-1]
            if kind == "Dense":
                out = out @ p["kernel"] + p["bias"]
            elif kind == "ReLU":
                out = np.maximum(out, 0)
            acts.append(out)
        return acts

    def train_epoch(self, state, order):
        if self.fault and not getattr(self, "injected", False):  # once, in the first epoch
            self.injected = True
            inject(self.fault)
        x_all, y_all = state["data"].x_train, state["data"].y_train
        for idx in order:
            x, y = x_all[idx], y_all[idx]
            acts = self._forward(state, x)
            out = acts[-1]
            if state["loss"] == "mse":
                grad = 2 * (out - y) / len(x)
            else:
                z = np.exp(out - out.max(1, keepdims=True))
                grad = z / z.sum(1, keepdims=True)
                grad[np.arange(len(y)), y] -= 1
                grad /= len(x)
            for i in reversed(range(len(state["layers"]))):
                kind = type(state["layers"][i]).__name__
                p = state["w"][i]
                if kind == "Dense":
                    gk, gb = acts[i].T @ grad, grad.sum(0)
                    grad = grad @ p["kernel"].T
                    p["kernel"] = p["kernel"] - state["lr"] * gk
                    p["bias"] = p["bias"] - state["lr"] * gb
                elif kind == "ReLU":
                    grad = grad * (acts[i] > 0)
        if self.fault == "nan":
            for p in state["w"]:
                for k in p:
                    p[k] = p[k] * np.nan
        if self.fault == "slow" and len(order) > 1:  # whole epochs only, not the latency steps
            time.sleep(1.0)
        return state

    def sync(self, state) -> None:
        pass

    def predict(self, state, split):
        x, _ = state["data"].split(split)
        return self._forward(state, x)[-1]

    def loss(self, state, indices):
        from harness.measure.metrics import loss_value

        out = self._forward(state, state["data"].x_train[indices])[-1]
        return loss_value(state["loss"], out, state["data"].y_train[indices])

    def get_weights(self, state):
        return [dict(p) for p in state["w"]]


FAULTS = ("raise", "exit", "segfault", "hang", "nan", "oom", "slow")
# Faults of an adversarial or careless plugin, seen from bench's parent process (issue 13): each mode
# does one thing in the first epoch; the ones that write to the event pipe then hang, so a parent that
# does not kill its worker leaves it running.
PARENT_FAULTS = ("event_number", "event_list", "event_types", "result_types", "details_str", "peak_str",
                 "surrogate", "escape", "formula", "daemon", "exit_helper", "spam", "big_result", "events",
                 "long_message")
EVENTS_ENV = "BENCH_FAULT_EVENTS"  # mode "events": these bytes (hex) go to the event pipe, then training goes on
BAD_EVENTS = {
    "event_number": b"42\n",
    "event_list": b"[1, 2]\n",
    "event_types": b'{"event": "epoch", "epoch": "one", "epochs": null}\n',
    "result_types": b'{"event": "result", "values": {"status": ["ok"], "train_s": "fast"}}\n',
}
ESCAPES = "\x1b[2J\x1b[31mred alert\x1b[0m\x07"
FORMULA = '=HYPERLINK("http://example.invalid/x","click")'
SPAM_BYTES = 50 * 2**20
BIG_RESULT_BYTES = 4 * 2**20
LONG_MESSAGE = "the start of a long message " + "x" * 2**20


def _daemonize() -> None:
    """Double fork with setsid, as a daemon does: the grandchild leaves the worker's process group
    and session and is adopted by init; only its environment still says where it came from."""
    pid = os.fork()
    if pid == 0:
        os.setsid()
        if os.fork() == 0:
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(devnull, fd)
            os.closerange(3, 1024)
            os.execv("/bin/sleep", ["sleep", "3600"])
        os._exit(0)
    os.waitpid(pid, 0)


def inject(fault: str) -> None:
    if fault == "raise":
        raise RuntimeError("injected failure\nsecond line of the message")
    if fault == "exit":
        os._exit(3)
    if fault == "segfault":
        import ctypes

        ctypes.string_at(0)
    if fault == "hang":
        import subprocess

        subprocess.Popen(["sleep", "3600"])  # a helper process: the timeout must kill it too
        time.sleep(3600)
    if fault == "oom":
        import resource

        # Bound the damage: this process alone may grow by 512 MiB of address space, no more.
        with open("/proc/self/status") as status:
            vm_kib = next(int(line.split()[1]) for line in status if line.startswith("VmSize:"))
        limit = vm_kib * 1024 + 512 * 1024**2
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        hog = []
        while True:
            hog.append(np.ones(64 * 1024**2 // 8))
    if fault in BAD_EVENTS:
        os.write(int(os.environ["BENCH_EVENT_FD"]), BAD_EVENTS[fault])
        time.sleep(3600)
    if fault == "events":
        os.write(int(os.environ["BENCH_EVENT_FD"]), bytes.fromhex(os.environ.get(EVENTS_ENV, "")))
    if fault == "surrogate":  # a file name that is not UTF-8, decoded as Python does: a lone surrogate
        raise FileNotFoundError("no data in " + os.fsdecode(b"data/\xff.bin"))
    if fault == "escape":
        raise RuntimeError(ESCAPES)
    if fault == "long_message":
        raise RuntimeError(LONG_MESSAGE)
    if fault == "daemon":
        _daemonize()
    if fault == "exit_helper":
        import subprocess

        # The helper inherits the event pipe and outlives the worker, which then exits.
        subprocess.Popen(["sleep", "3600"], pass_fds=(int(os.environ["BENCH_EVENT_FD"]),))
        os._exit(3)
    if fault == "spam":
        line = b"x" * 1023 + b"\n"
        for _ in range(SPAM_BYTES // len(line)):
            os.write(1, line)


class SignalsBackend(FakeBackend):
    """Says in its details how its worker process stands to signals: its SIGINT handler, and whether it leads a
    session of its own (a terminal's Ctrl-C then reaches bench, which stops the cell, not the worker)."""

    name = "signals"

    def details(self, state):
        import signal

        handler = signal.getsignal(signal.SIGINT)
        return {"sigint": getattr(handler, "__name__", str(handler)),
                "own_session": os.getsid(0) == os.getpid() and os.getsid(0) != os.getsid(os.getppid())}


class FaultyBackend(FakeBackend):
    """Each mode but "ok" injects one fault in the first epoch (or in the method that mode names)."""

    name = "faulty"
    modes = ("ok", *FAULTS, *PARENT_FAULTS)

    def import_framework(self, cell) -> None:
        self.fault = "" if cell.mode == "ok" else cell.mode

    def device_problem(self, cell) -> str | None:
        return FORMULA if self.fault == "formula" else None  # the cell is skipped with this message

    def details(self, state):
        if self.fault == "details_str":
            return "compiled everything"
        if self.fault == "big_result":  # many texts: one is cut at MAX_TEXT characters
            return {"blob": ["x" * 1024] * (BIG_RESULT_BYTES // 1024)}
        return {}

    def peak_device_mb(self, state):
        return "12 MB" if self.fault == "peak_str" else None


@hookimpl
def bench_backends():
    return [FakeBackend, FaultyBackend]
