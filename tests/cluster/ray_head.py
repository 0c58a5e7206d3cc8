"""A real Ray head on this machine, on 127.0.0.1 without dashboard, for the executor tests and CI.

`ray start --head --block` runs in the foreground as our child; stopping it (SIGTERM, by its pid) takes
down every process it started, and whatever survives is killed by pid. All state lives in a private
temporary folder, so it runs next to any other Ray on the machine.

    python -m tests.cluster.ray_head up FOLDER     # prints RAY_ADDRESS=127.0.0.1:PORT and the token variables
    python -m tests.cluster.ray_head down FOLDER
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.cluster.procs import descendants, stop

START_TIMEOUT_S = 90.0


class HeadError(RuntimeError):
    """The head did not start; the message says why and where its output is."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def loopback_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """Ray keeps a one-machine instance on 127.0.0.1 only when told it is one; no usage reports."""
    return {**(base or os.environ), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}


def driver_env(folder: Path) -> dict[str, str]:
    """What a driver (bench, a test) needs in its environment to join the head started in `folder`: its
    token (token authentication, the token held in the environment rather than in ~/.ray)."""
    token = (Path(folder).resolve() / "ray-head.token").read_text().strip()
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token, "RAY_USAGE_STATS_ENABLED": "0"}


def ray_program() -> str | None:
    return shutil.which("ray") or next((str(p) for p in [Path(sys.executable).parent / "ray"] if p.exists()), None)


def up(folder: Path, env: dict[str, str] | None = None) -> str:
    """Start the head; returns its GCS address once it takes drivers. `env`: the environment of its workers."""
    program = ray_program()
    if program is None:
        raise HeadError("ray not installed (pip install 'bench-harness[ray]')")
    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    temp = tempfile.mkdtemp(prefix="bray-")  # short: Ray's socket paths must fit in 107 bytes
    port = _free_port()
    token = folder / "ray-head.token"
    token.write_text(secrets.token_hex(32))
    os.chmod(token, 0o600)
    out = open(folder / "ray-head.out", "wb")
    proc = subprocess.Popen(
        [program, "start", "--head", "--block", "--node-ip-address=127.0.0.1", "--include-dashboard=false",
         f"--port={port}", f"--ray-client-server-port={_free_port()}", f"--temp-dir={temp}", "--disable-usage-stats"],
        stdout=out, stderr=subprocess.STDOUT, env={**loopback_env(env), **driver_env(folder)}, start_new_session=True)
    (folder / "ray-head.pid").write_text(f"{proc.pid}\n{temp}\n")
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        text = (folder / "ray-head.out").read_text(errors="replace")
        if "Ray runtime started" in text:
            return f"127.0.0.1:{port}"
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    down(folder)
    tail = re.sub(r"\s+", " ", text[-300:])
    raise HeadError(f"ray head did not start within {START_TIMEOUT_S:g} s: {tail} ({folder / 'ray-head.out'})")


def down(folder: Path) -> None:
    """Stop the head started in `folder` and everything it started, each by its pid."""
    pid_file = Path(folder).resolve() / "ray-head.pid"
    if not pid_file.is_file():
        return
    pid_text, temp = pid_file.read_text().splitlines()
    pid = int(pid_text)
    stop([pid, *descendants(pid)], grace=5.0)
    shutil.rmtree(temp, ignore_errors=True)
    pid_file.unlink()


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("up", "down"):
        print("usage: python -m tests.cluster.ray_head up|down FOLDER", file=sys.stderr)
        return 2
    if argv[0] == "up":
        try:
            address = up(Path(argv[1]))
            print(f"RAY_ADDRESS={address}")
            for key, value in driver_env(Path(argv[1])).items():
                print(f"{key}={value}")
        except HeadError as exc:
            print(f"ray: {exc}", file=sys.stderr)
            return 1
    else:
        down(Path(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
