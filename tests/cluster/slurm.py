"""A real one-node SLURM cluster on this machine, on loopback, for the executor tests and CI.

Debian's `slurm-wlm` and `munge` (apt-get install slurm-wlm munge), run as root: a private munged
(its own key and socket), slurmctld and slurmd (node `localhost` at 127.0.0.1, free ports), all state
in one folder. Nothing system-wide is touched, so it can run next to another cluster. Clients find it
through SLURM_CONF=<folder>/slurm.conf.

    python -m tests.cluster.slurm up FOLDER     # prints SLURM_CONF=...
    python -m tests.cluster.slurm down FOLDER   # cancels every job, stops each daemon by its pid
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.cluster.procs import alive, stop

DAEMONS = ("munged", "slurmctld", "slurmd")
START_TIMEOUT_S = 30.0


class ClusterError(RuntimeError):
    """The cluster could not be started; the message says why (and where its logs are)."""


def missing() -> str | None:
    """Why a cluster can't be started here, or None."""
    for program in ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel"):
        if shutil.which(program) is None and not Path("/usr/sbin", program).exists():
            return f"{program} not found (apt-get install slurm-wlm munge)"
    if os.geteuid() != 0:
        return "the test cluster runs its daemons as root"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _program(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


def _node_line() -> str:
    """This machine's CPU layout as slurmd sees it (slurmd refuses a node bigger than the hardware)."""
    out = subprocess.run([_program("slurmd"), "-C"], capture_output=True, text=True, timeout=30).stdout
    fields = dict(item.split("=", 1) for item in out.split() if "=" in item)
    keep = ("CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore", "RealMemory")
    return " ".join(f"{k}={fields[k]}" for k in keep if k in fields)


def write_config(folder: Path) -> Path:
    for sub in ("state", "spool", "munge"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    os.chmod(folder / "munge", 0o700)
    key = folder / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    os.chmod(key, 0o400)
    conf = folder / "slurm.conf"
    conf.write_text(f"""\
ClusterName=benchtest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={folder}/munge/munge.socket
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd.pid
SlurmctldLogFile={folder}/slurmctld.log
SlurmdLogFile={folder}/slurmd.log
PlugStackConfig={folder}/plugstack.conf
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1
MinJobAge=300
KillWait=5
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=localhost NodeAddr=127.0.0.1 {_node_line()} State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
""")
    (folder / "plugstack.conf").write_text("")
    return conf


def _wait_for(check, what: str, folder: Path, timeout: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise ClusterError(f"{what} within {timeout:g} s (logs in {folder})")


def client_env(folder: Path) -> dict[str, str]:
    return {**os.environ, "SLURM_CONF": str(Path(folder) / "slurm.conf")}


def _sinfo_idle(folder: Path) -> bool:
    out = subprocess.run(["sinfo", "-h", "-N", "-o", "%t"], capture_output=True, text=True, env=client_env(folder),
                         timeout=10)
    return out.returncode == 0 and out.stdout.strip() in ("idle", "mix", "alloc")


def up(folder: Path) -> Path:
    """Start munged, slurmctld and slurmd; returns the slurm.conf path once the node takes jobs."""
    problem = missing()
    if problem:
        raise ClusterError(problem)
    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    conf = write_config(folder)
    env = client_env(folder)
    pids: dict[str, int] = {}
    try:
        munge = folder / "munge"
        subprocess.run([_program("munged"), "--force", f"--socket={munge}/munge.socket",
                        f"--key-file={munge}/munge.key", f"--pid-file={munge}/munged.pid",
                        f"--log-file={munge}/munged.log", f"--seed-file={munge}/munged.seed"],
                       check=True, capture_output=True, timeout=30)
        _wait_for(lambda: (munge / "munged.pid").is_file(), "munged did not start", folder)
        pids["munged"] = int((munge / "munged.pid").read_text())
        for name, args in (("slurmctld", ["-D", "-c", "-i"]), ("slurmd", ["-D", "-N", "localhost"])):
            log = open(folder / f"{name}.out", "wb")
            proc = subprocess.Popen([_program(name), *args, "-f", str(conf)], stdout=log, stderr=subprocess.STDOUT,
                                    env=env, start_new_session=True)
            pids[name] = proc.pid
        _record(folder, pids)
        _wait_for(lambda: _sinfo_idle(folder), "the node did not come up", folder)
    except (OSError, subprocess.SubprocessError, ClusterError, ValueError) as exc:
        _record(folder, pids)
        down(folder)
        raise ClusterError(f"SLURM cluster did not start: {exc} (logs in {folder})") from None
    return conf


def _record(folder: Path, pids: dict[str, int]) -> None:
    (folder / "pids").write_text("".join(f"{name} {pid}\n" for name, pid in pids.items()))


def _steps_of(folder: Path) -> list[int]:
    """slurmstepd processes serving this cluster's jobs (they hold files in its spool folder)."""
    spool = str(folder / "spool")
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if not (proc / "comm").read_text().startswith("slurmstepd"):
                continue
            links = [os.readlink(fd) for fd in (proc / "fd").iterdir()]
        except OSError:
            continue
        if any(link.startswith(spool) for link in links):
            found.append(int(proc.name))
    return found


def down(folder: Path) -> None:
    """Cancel every job, then stop each daemon this folder's `up` started, by its pid."""
    folder = Path(folder).resolve()
    pids_file = folder / "pids"
    if not pids_file.is_file():
        return
    pids = dict(line.split() for line in pids_file.read_text().splitlines() if line.strip())
    if "slurmctld" in pids and alive(int(pids["slurmctld"])):
        subprocess.run(["scancel", "--full", "--user", "root"], env=client_env(folder), capture_output=True,
                       timeout=30)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and _steps_of(folder):
            time.sleep(0.2)
    stop(_steps_of(folder), grace=2.0)
    for name in ("slurmd", "slurmctld", "munged"):
        if name in pids:
            stop([int(pids[name])])
    pids_file.unlink()


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("up", "down"):
        print(__doc__.strip().splitlines()[-2].strip(), file=sys.stderr)
        return 2
    action, folder = argv
    if action == "up":
        try:
            print(f"SLURM_CONF={up(Path(folder))}")
        except ClusterError as exc:
            print(f"slurm: {exc}", file=sys.stderr)
            return 1
    else:
        down(Path(folder))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
