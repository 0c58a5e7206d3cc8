"""Writes that either complete or leave the file as it was, and say so when they can't.

Every write is checked (a short write is continued, an error raised) and fsync'd. A failed append is
cut back to the file's former length, so a full disk never leaves a torn record; the caller gets a
SaveError naming the file and the reason.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path


class SaveError(Exception):
    """Results could not be written (disk full, I/O error); the message names the file and the reason."""


def write_all(fd: int, data: bytes) -> None:
    """os.write until every byte is written: a write to a nearly full disk may write only part."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def sync_file(path: Path) -> None:
    """fsync a file written by someone else's writer (pyarrow's, say), so that it survives a crash."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_folder(folder: Path) -> None:
    """fsync a folder, so that a file just created or renamed in it survives a crash too."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def append(path: Path, data: bytes) -> None:
    """Append `data` whole and fsync it, or leave the file as it was and raise SaveError. If the file
    ends without a newline (a crash of an older writer), the data starts on a fresh line."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError as exc:
        raise SaveError(f"cannot save results in {path}: {exc.strerror or exc}") from None
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data
        try:
            write_all(fd, data)
            os.fsync(fd)
            if not size:
                sync_folder(Path(path).parent)
        except OSError as exc:
            os.ftruncate(fd, size)
            raise SaveError(f"cannot save results in {path}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def replace(path: str | os.PathLike, data: bytes) -> None:
    """Write the whole file or nothing: a temporary file beside it, fsync'd, then renamed over it."""
    out = Path(path)
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, out)
        sync_folder(out.parent)
    finally:
        if tmp.exists():
            tmp.unlink()
