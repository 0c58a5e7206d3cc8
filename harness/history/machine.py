"""Which machine a record ran on: its host name plus its CPU and GPU models.

The host name alone is not enough: cloud images reuse names ("vm", "localhost", "runner") across
instances of different hardware, and figures from different hardware must never be pooled into one
series. The models alone are not enough either: two hosts of one model still differ (load, cooling,
drivers), and a history keeps them apart so a reader can compare them, never average them.

The id is readable and safe as a folder name (the store partitions by it): the host name, cut to
MAX_HOST_CHARS and reduced to [a-z0-9.-], then 8 hex digits of a hash of host, CPU and GPU.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from typing import Any

MAX_HOST_CHARS = 40
UNKNOWN = "unknown"


@dataclass(frozen=True)
class Machine:
    host: str
    cpu: str
    gpu: str  # "" when the machine has none

    @property
    def id(self) -> str:
        return _machine_id(self.host, self.cpu, self.gpu)

    @property
    def hardware(self) -> str:
        """What a reader compares machines by: CPU, plus GPU where there is one."""
        return f"{self.cpu} + {self.gpu}" if self.gpu else self.cpu


@functools.lru_cache(maxsize=1024)
def _machine_id(host: str, cpu: str, gpu: str) -> str:
    digest = hashlib.sha256("\x1f".join((host, cpu, gpu)).encode()).hexdigest()[:8]
    slug = re.sub(r"[^a-z0-9.-]+", "-", host.lower()).strip("-.")[:MAX_HOST_CHARS] or UNKNOWN
    return f"{slug}-{digest}"


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def of_record(record: dict[str, Any], run_env: dict[str, Any] | None = None) -> Machine:
    """The machine of one record: the runner's `host` (where the cell ran, also under an executor), else the
    host the worker's environment names; CPU and GPU from the record's environment, else the run's."""
    env = record.get("env") if isinstance(record.get("env"), dict) else {}
    run_env = run_env or {}
    host = _text(record.get("host")) or _text(env.get("hostname")) or _text(run_env.get("hostname")) or UNKNOWN
    cpu = _text(env.get("cpu_model")) or _text(run_env.get("cpu_model")) or UNKNOWN
    gpu = _text(env.get("gpu")) if env else _text(run_env.get("gpu"))
    return Machine(host, cpu, gpu)
