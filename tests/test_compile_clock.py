"""backends.compile_clock: a cell's share of a framework's process-wide compile-time counter."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backends.compile_clock import CompileClock, SpanUnion


class Counter:
    """A framework's running compile-time total, advanced by hand."""

    def __init__(self, value: float = 0.0):
        self.value = value

    def read(self) -> float:
        return self.value


def test_counts_from_construction_and_leaves_out_what_was_compiled_aside():
    counter = Counter(5.0)  # earlier cells in the same process compiled for 5 s
    clock = CompileClock(counter.read, "how")
    counter.value += 2.0  # setup and training
    with clock.aside():
        counter.value += 0.5  # the harness's predict
    counter.value += 1.0  # a recompile in a later epoch
    assert clock.reading() == (pytest.approx(3.0), "how")


def test_what_is_compiled_aside_stays_out_when_the_block_raises():
    counter = Counter()
    clock = CompileClock(counter.read, "how")
    with pytest.raises(RuntimeError), clock.aside():
        counter.value += 1.0
        raise RuntimeError("predict failed")
    assert clock.seconds() == 0.0


def test_nested_and_overlapping_spans_count_once():
    spans = SpanUnion()
    spans.add(1.0, 1.5)  # a trace reported while lowering ...
    spans.add(0.0, 2.0)  # ... inside the lowering, reported when it ends
    spans.add(3.0, 4.0)
    spans.add(3.5, 5.0)  # overlaps the one before
    spans.add(2.5, 2.6)  # reported late, between two others
    assert spans.total() == pytest.approx(2.0 + 2.0 + 0.1)


@given(st.lists(st.tuples(st.integers(0, 200), st.integers(0, 20)), max_size=40))
def test_the_union_matches_counting_covered_unit_cells(spans):
    union, covered = SpanUnion(), set()
    for start, length in spans:
        union.add(float(start), float(start + length))
        covered.update(range(start, start + length))
    assert union.total() == pytest.approx(len(covered))


def test_a_counter_that_cannot_be_read_or_never_moves_is_unknown_not_zero():
    from backends.compile_clock import CompileClock

    def renamed() -> float:
        raise KeyError("total_wall_time")

    seconds, why = CompileClock(renamed, "torch._dynamo metrics").reading()
    assert seconds is None and why.startswith("unknown: the framework's compile counter could not be read (KeyError")
    seconds, why = CompileClock(lambda: 0.0, "jax.monitoring", expected=True).reading()
    assert seconds is None and "read 0 s though this mode compiles" in why
    assert CompileClock(lambda: 0.0, "tf tracing").reading() == (0.0, "tf tracing")  # eager: 0 s is measured


def test_keras_compile_spans_count_nested_ones_once_and_only_while_training():
    from backends.keras_backend import TrainingCompileSpans

    spans = TrainingCompileSpans()
    spans.add(0.0, 5.0)  # outside an epoch (evaluation's compile): not training's
    with spans.training():
        spans.add(10.0, 14.0)
        spans.add(11.0, 12.0)  # nested in the one above (a trace inside a lowering)
        spans.add(20.0, 21.0)
    assert spans.reading("jax.monitoring", compiles=True) == (5.0, "jax.monitoring")
    seconds, why = TrainingCompileSpans().reading("jax.monitoring", compiles=True)
    assert seconds is None and "reported nothing" in why
