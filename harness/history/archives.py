"""Runs inside a .tgz (or any tar) archive made on another machine: `tar czf run.tgz -C results RUN_ID`.

Nothing of the archive is extracted as it names it: only each run's records.jsonl and run.json are read,
as regular members, into a temporary folder under names this module chooses, so an archive cannot write
outside it (no path, link or device member is followed). A truncated or corrupt archive, or one holding
no run, is a HistoryError naming it; every run in it is read before anything is published.
"""

from __future__ import annotations

import tarfile
import zlib
from pathlib import Path, PurePosixPath

from harness import results
from harness.history import HistoryError

MAX_MEMBER_BYTES = 4 << 30  # a records file beyond this is not a bench run's
ARCHIVE_SUFFIXES = (".tgz", ".tar.gz", ".tar", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ")  # gzip, bzip2, xz


def looks_like_archive(path: Path) -> bool:
    """Named as an archive, or starting like a compressed one (a records file never does)."""
    if path.name.lower().endswith(ARCHIVE_SUFFIXES):
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(6)
    except OSError:
        return False
    return head.startswith(_MAGIC)


def unpack_runs(archive: Path, into: Path) -> list[Path]:
    """The runs of `archive`, each as a folder under `into` holding its records.jsonl (and run.json when the
    archive has one), in the order the archive lists them."""
    wanted = (results.RECORDS, results.RUN_FILE)
    runs: dict[str, dict[str, bytes]] = {}
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                path = PurePosixPath(member.name)
                if path.name not in wanted or not member.isfile():
                    continue
                if member.size > MAX_MEMBER_BYTES:
                    raise HistoryError(f"{archive}: {member.name} is {member.size} bytes, too large for a bench run")
                data = tar.extractfile(member)
                if data is not None:
                    runs.setdefault(str(path.parent), {})[path.name] = data.read()
    except HistoryError:
        raise
    except (tarfile.TarError, EOFError, zlib.error, OSError, ValueError) as exc:
        reason = str(exc) or type(exc).__name__
        raise HistoryError(f"{archive} is not a readable archive (truncated or corrupt: {reason})") from None
    folders = []
    for number, (name, files) in enumerate(runs.items()):
        if results.RECORDS not in files:
            continue  # a run that never finished a cell: nothing to publish
        folder = into / f"run-{number}"
        folder.mkdir(parents=True)
        for file_name, data in files.items():
            (folder / file_name).write_bytes(data)
        (folder / ".origin").write_text(f"{archive.name}:{name}")
        folders.append(folder)
    if not folders:
        raise HistoryError(f"{archive} holds no bench run (no {results.RECORDS} in it)")
    return folders
