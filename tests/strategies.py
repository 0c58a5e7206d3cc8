"""Hypothesis strategies shared by the fuzz tests: JSON values of random types holding hostile text."""

from __future__ import annotations

import json

from hypothesis import strategies as st

from harness.cell.events import EVENTS
from harness.store import record

HOSTILE = ["\x1b[2J\x1b[31m", "\udcff", "\ud800x", "=cmd|' /C calc'!A0", "+1", "-1", "@SUM(A1)", "\t", "\r\n", "\x00",
           "\u202eevil", "\x07", "é☃", "<script>", "", "a" * 300, "\x1b" * 700 + "b" * 1000]
TEXT = st.one_of(st.text(st.characters(exclude_categories=()), max_size=12),  # surrogates included
                 st.sampled_from(HOSTILE))
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=6)

NUMBERS = st.integers() | st.floats()
OF_KIND = {record.TEXT: TEXT, record.WHOLE: st.integers(), record.NUMBER: NUMBERS,
           record.NUMBER_OR_NULL: st.none() | NUMBERS, record.OBJECT: st.dictionaries(TEXT, JSON_VALUES, max_size=3)}


@st.composite
def event_lines(draw) -> bytes:
    """What a worker may write to its event pipe: bytes, JSON of any type, or declared events whose
    fields have random types and text."""
    kind = draw(st.sampled_from(["bytes", "json", "event"]))
    if kind == "bytes":
        return draw(st.binary(max_size=60)).replace(b"\n", b"")
    if kind == "json":
        return json.dumps(draw(JSON_VALUES)).encode()
    name = draw(st.sampled_from(sorted(EVENTS)))
    fields = {field: draw(st.one_of(OF_KIND[kind], JSON_VALUES)) for field, kind in EVENTS[name].items()
              if draw(st.integers(0, 9))}
    if not draw(st.integers(0, 3)):
        fields[draw(TEXT)] = draw(JSON_VALUES)
    return json.dumps({"event": name, **fields}).encode()
