"""A cell's log: its output as it comes, up to a head and a tail, with what was cut between them said.

A cell that prints without end must not fill the disk: the first HEAD bytes are written as they
arrive, the last TAIL bytes are held and written when the log is closed, and a line in between says
how many bytes were left out. A failed write raises SaveError.
"""

from __future__ import annotations

import os
from pathlib import Path

from harness.store.durable import SaveError, write_all

HEAD = TAIL = 2**20


class CappedLog:
    def __init__(self, path: Path, head: int = HEAD, tail: int = TAIL):
        self.path = path
        self.head, self.tail_max = head, tail
        self.written = 0
        self.tail = bytearray()
        self.cut = 0
        self.fd = self._checked(lambda: os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644))

    def _checked(self, action):
        try:
            return action()
        except OSError as exc:
            raise SaveError(f"cannot write the log {self.path}: {exc.strerror or exc}") from None

    def write(self, data: bytes) -> None:
        room = self.head - self.written
        if room > 0:
            self._checked(lambda: write_all(self.fd, data[:room]))
            self.written += min(room, len(data))
            data = data[room:]
        if data:
            self.tail += data
            excess = len(self.tail) - self.tail_max
            if excess > 0:
                del self.tail[:excess]
                self.cut += excess

    def close(self) -> None:
        """Write the tail (after a line saying what was cut, if anything was) and fsync."""
        note = (f"\n[bench: {self.cut} bytes of this cell's output cut here; the first {self.head} and the "
                f"last {self.tail_max} bytes are kept]\n".encode() if self.cut else b"")
        try:
            self._checked(lambda: (write_all(self.fd, note + bytes(self.tail)), os.fsync(self.fd)))
        finally:
            os.close(self.fd)
