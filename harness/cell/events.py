"""The worker's event pipe: what each event may hold, and the parent's check of every line it reads.

The worker writes one JSON object per line (harness.cell.worker); the parent (harness.cell.parent) accepts
only the events declared here, with exactly their fields, each of its kind. Anything else is a
MalformedEvent: the cell ends as an error saying what was wrong.
"""

from __future__ import annotations

import json
from typing import Any

from harness.store.record import (
    NUMBER,
    NUMBER_OR_NULL,
    OBJECT,
    TEXT,
    WHOLE,
    Kind,
    describe,
)
from harness.store.safe_text import one_line

EVENTS: dict[str, dict[str, Kind]] = {
    "phase": {"phase": TEXT},
    "epoch_start": {"epoch": WHOLE, "epochs": WHOLE},
    "epoch": {"epoch": WHOLE, "epochs": WHOLE, "train_s": NUMBER, "metric": TEXT, "value": NUMBER_OR_NULL},
    "result": {"values": OBJECT},  # harness.store.record.measured checks what it holds
}
MAX_LINE_BYTES = 32 * 2**20  # a result with a long curve and large details is well under this
PREVIEW_CHARS = 60


class MalformedEvent(ValueError):
    """A line on the event pipe that is not one of EVENTS; the message says what was wrong."""


def preview(line: bytes) -> str:
    text = one_line(line[: PREVIEW_CHARS * 4].decode("utf-8", "backslashreplace"))
    return text[:PREVIEW_CHARS] + ("…" if len(text) > PREVIEW_CHARS or len(line) > PREVIEW_CHARS * 4 else "")


def parse(line: bytes) -> dict[str, Any]:
    """One event from one line (without its newline), its texts printable; MalformedEvent if it is not one."""
    try:
        event = json.loads(line)
    except (ValueError, RecursionError):
        raise MalformedEvent(f"not JSON: {preview(line)}") from None
    if not isinstance(event, dict):
        raise MalformedEvent(f"not a JSON object: {preview(line)}")
    kind = event.get("event")
    fields = EVENTS.get(kind) if isinstance(kind, str) else None
    if fields is None:
        raise MalformedEvent(f"unknown event {preview(json.dumps(kind).encode())}")
    unknown = sorted(set(event) - {"event", *fields})
    if unknown:
        raise MalformedEvent(f"{kind} event: unknown field(s) {one_line(', '.join(unknown))[:200]}")
    for name, field_kind in fields.items():
        if name not in event:
            raise MalformedEvent(f"{kind} event: no {name}")
        if not field_kind.accepts(event[name]):
            raise MalformedEvent(f"{kind} event: {name} is {describe(event[name])}, not {field_kind.name}")
        if isinstance(event[name], str):
            event[name] = one_line(event[name])
    return event
