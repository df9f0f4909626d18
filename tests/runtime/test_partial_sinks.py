"""Batch sinks that consume part of a batch: they return how many events they took, the
rest is offered again in order after a bounded backoff, nothing is lost or doubled, and
checkpoints cover only what was consumed."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import riverbed as rb
from riverbed._runtime.chains.slowpath import REOFFER_FIRST, REOFFER_MAX
from riverbed.testing import TestClock
from tests import runners

pytestmark = pytest.mark.usefixtures("on_runner")


class Halves:
    """A batch sink that takes half of what it is offered (at least one event)."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.offers: list[int] = []

    def write_batch(self, events: list[Any]) -> int:
        self.offers.append(len(events))
        taken = max(len(events) // 2, 1)
        self.items.extend(events[:taken])
        return taken


def _run(flow: rb.Flow, **options: Any) -> rb.RunResult:
    options.setdefault("progress", False)
    options.setdefault("store", False)
    return flow.run(**options)


def test_a_sink_taking_half_gets_every_event_once_in_order() -> None:
    """A sink object returning how many it consumed gets the rest again, in order, until
    the batch is done: every event once, in stream order."""
    sink = Halves()
    flow = rb.Flow("halves")
    flow.source(list(range(100)), name="numbers").sink(sink, name="out")
    result = _run(flow, batch_size=10)
    assert result.ok
    assert sink.items == list(range(100))
    assert sink.offers[:5] == [10, 5, 3, 2, 1]  # each offer is what the last one left
    assert result.stages["out"].events_in == 100


def test_sink_batch_functions_may_count_too() -> None:
    """``sink_batch(fn)`` with ``fn`` returning a count behaves the same; returning None
    (or anything but an int) still means the whole batch."""
    taken: list[Any] = []
    whole: list[Any] = []

    def one_at_a_time(events: list[Any]) -> int:
        taken.append(events[0])
        return 1

    flow = rb.Flow("one-by-one")
    numbers = flow.source(list(range(30)), name="numbers")
    numbers.sink_batch(one_at_a_time, name="slow")
    numbers.sink_batch(lambda events: whole.extend(events) or "ok", name="plain")
    assert _run(flow, batch_size=8).ok
    assert taken == list(range(30))
    assert whole == list(range(30))


@runners.test_clock
def test_a_sink_taking_nothing_is_offered_again_with_a_bounded_backoff() -> None:
    """A sink that consumes nothing is offered the same events again after waits that
    double from REOFFER_FIRST and stop growing at REOFFER_MAX."""
    clock = TestClock()
    times: list[float] = []
    got: list[Any] = []

    def busy_then_ready(events: list[Any]) -> int:
        times.append(clock.monotonic())
        if len(times) <= 12:
            return 0
        got.extend(events)
        return len(events)

    flow = rb.Flow("busy")
    flow.source([1, 2, 3], name="numbers").sink_batch(busy_then_ready, name="out")
    assert _run(flow, clock=clock).ok
    waits = [round(b - a, 6) for a, b in itertools.pairwise(times)]
    expected = [min(REOFFER_FIRST * 2**n, REOFFER_MAX) for n in range(12)]
    assert waits == pytest.approx(expected)
    assert max(waits) == REOFFER_MAX
    assert got == [1, 2, 3]


@runners.test_clock
@settings(max_examples=60, deadline=None)
@given(
    events=st.lists(st.integers(), max_size=60),
    takes=st.lists(st.integers(0, 12), min_size=1, max_size=20),
    batch_size=st.integers(1, 16),
)
def test_any_consumption_pattern_keeps_every_event_once_in_order(
    events: list[int], takes: list[int], batch_size: int
) -> None:
    """Whatever a sink takes of each offer (none, some, all, in any sequence), it gets
    every event once, in stream order."""
    got: list[int] = []
    turns = iter(takes * 5)  # then whole offers: the run ends

    def sink(offered: list[int]) -> int:
        taken = min(next(turns, len(offered)), len(offered))
        got.extend(offered[:taken])
        return taken

    flow = rb.Flow("any-pattern")
    flow.source(events, name="numbers").sink_batch(sink, name="out")
    assert _run(flow, clock=TestClock(), batch_size=batch_size).ok
    assert got == events


def test_a_failure_after_partial_consumption_retries_only_the_rest() -> None:
    """A sink that raises after consuming part of a batch is retried with the events it
    had not consumed: none is written twice."""
    written: list[Any] = []
    failed = [False]

    def flaky(events: list[Any]) -> int:
        if len(events) == 7 and not failed[0]:
            failed[0] = True
            raise ConnectionError("lost the connection")
        written.extend(events[:3])
        return min(3, len(events))

    flow = rb.Flow("flaky")
    flow.source(list(range(20)), name="numbers").sink_batch(
        flaky, name="out", retry=rb.Retry(attempts=2, backoff=0.001)
    )
    result = _run(flow, batch_size=10)
    assert result.ok
    assert failed[0]
    assert written == list(range(20))
    assert (result.stages["out"].errors, result.stages["out"].retries) == (1, 1)


def test_a_count_larger_than_the_batch_fails_naming_the_sink() -> None:
    """A sink returning more than it was offered stops the run with a message that names
    the sink and says what to return."""
    flow = rb.Flow("too-many")
    flow.source([1, 2], name="numbers").sink_batch(lambda events: 5, name="out")
    result = _run(flow, raise_on_failure=False)
    assert result.status is rb.RunStatus.FAILED
    assert result.error is not None
    assert "sink 'out' returned 5 for a batch of 2 event(s)" in result.error.message
    assert "or None for all" in result.error.message


def test_a_slow_sink_holds_the_source_back() -> None:
    """Backpressure: while a sink consumes two events per offer, the source is never far
    ahead of it (the edges are bounded), and nothing is lost."""
    sink_items: list[int] = []
    ahead: list[int] = []

    def produce(limit: int) -> list[int]:
        start = len(ahead) * 10
        if start >= 5000:
            raise rb.EndOfStream
        ahead.append(start - len(sink_items))
        return list(range(start, start + 10))

    def two_at_a_time(events: list[int]) -> int:
        sink_items.extend(events[:2])
        return min(2, len(events))

    flow = rb.Flow("backpressure")
    flow.source(produce, name="numbers").map(lambda x: x, name="same").sink_batch(
        two_at_a_time, name="out"
    )
    assert _run(flow, batch_size=10).ok
    assert sink_items == list(range(5000))
    assert max(ahead) < 2000  # the source waits for the sink: far less than the 5000


FAIL_WHEN: set[int] = set()
"""Events whose arrival at ``Fragile`` fails the run while they are in here."""


class Fragile:
    """Consumes three events per offer; raises (stopping the run) on an event in
    FAIL_WHEN, after consuming what came before it in the offer."""

    def __init__(self) -> None:
        self.items: list[int] = []

    def write_batch(self, events: list[int]) -> int:
        for event in events[:3]:
            if event in FAIL_WHEN:
                raise RuntimeError(f"the disk is full at {event}")
            self.items.append(event)
        return min(3, len(events))


def test_checkpoints_cover_only_consumed_events(tmp_path: Path) -> None:
    """A run that fails while its sink lags, resumed from its last checkpoint: what the
    sink consumed in both runs is every event, none lost (a checkpoint never counts an
    event the sink had not consumed)."""
    store = rb.open_store(f"sqlite:///{tmp_path}/runs.db")

    def flow_into(sink: Fragile) -> rb.Flow:
        flow = rb.Flow("lagging")
        flow.source(list(range(600)), name="numbers").sink(sink, name="out")
        return flow

    first, second = Fragile(), Fragile()
    FAIL_WHEN.add(457)
    try:
        failed = _run(
            flow_into(first),
            store=store,
            batch_size=20,
            checkpoint_events=40,
            raise_on_failure=False,
        )
    finally:
        FAIL_WHEN.clear()
    assert failed.status is rb.RunStatus.FAILED
    assert first.items == list(range(457))
    assert store.latest_checkpoint(failed.run_id) is not None
    resumed = _run(flow_into(second), store=store, batch_size=20, resume=failed.run_id)
    assert resumed.ok
    assert second.items[-1] == 599
    assert second.items[0] <= 457
    assert second.items == list(range(second.items[0], 600))
    assert first.items + second.items[457 - second.items[0] :] == list(range(600))
