"""The local engine: completion and counters, fusion, folds and state, source shapes,
backpressure, running inside an event loop, cancellation, names and option checks."""

from __future__ import annotations

import asyncio
import functools
import itertools
import operator
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

import riverbed as rb
from riverbed.testing import Capture, TestClock
from tests import runners

pytestmark = pytest.mark.usefixtures("on_runner")


def _run(flow: rb.Flow, **options: Any) -> rb.RunResult:
    options.setdefault("progress", False)
    return flow.run(**options)


def inc(x: int) -> int:
    return x + 1


def is_even(x: int) -> bool:
    return x % 2 == 0


# -- completion, counters, fusion ---------------------------------------------------------


def test_finite_flow_succeeds_with_counters() -> None:
    """A finite flow drains and ends SUCCEEDED with every stage's counters right."""
    flow = rb.Flow("counts")
    seen = Capture()
    flow.source(range(10), name="src").map(inc, name="inc").filter(is_even, name="even").sink(
        seen, name="out"
    )
    result = _run(flow, batch_size=3)
    assert result.status is rb.RunStatus.SUCCEEDED
    assert result.ok
    assert seen.items == [2, 4, 6, 8, 10]
    assert result.outputs == {"out": [2, 4, 6, 8, 10]}
    stats = result.stages
    assert (stats["src"].events_in, stats["src"].events_out) == (0, 10)
    assert (stats["inc"].events_in, stats["inc"].events_out) == (10, 10)
    assert (stats["even"].events_in, stats["even"].events_out) == (10, 5)
    assert stats["out"].events_in == 5
    assert all(s.errors == 0 for s in stats.values())
    assert result.error is None
    assert result.errors == ()
    assert result.ended_at >= result.started_at
    assert result.flow == "counts"
    assert result.flow_version == flow.version
    assert result.positions == {"src": {"0": 10}}


def test_empty_source_succeeds() -> None:
    """A source with no events ends the run at once, SUCCEEDED, with zero counts."""
    flow = rb.Flow("empty")
    flow.source([], name="src").map(inc, name="inc").sink(Capture(), name="out")
    result = _run(flow)
    assert result.ok
    assert result.outputs == {"out": []}
    assert result.stages["inc"].events_in == 0


@runners.local_structure
def test_sync_stages_fuse_and_async_stages_break_the_chain() -> None:
    """Consecutive sync stages run fused; an async stage stands alone and splits chains."""

    async def slow(x: int) -> int:
        return x

    flow = rb.Flow("fusion")
    flow.source([1, 2], name="src").map(inc, name="a").filter(is_even, name="b").map(
        slow, name="c"
    ).map(inc, name="d").sink(Capture(), name="out")
    result = _run(flow)
    stages = result.stages
    assert stages["a"].fused_with == ("b",)
    assert stages["b"].fused_with == ("a",)
    assert stages["c"].fused_with == ()
    assert stages["d"].fused_with == ("out",)
    assert stages["out"].fused_with == ("d",)
    assert stages["src"].fused_with == ()
    assert result.outputs == {"out": [3]}


@runners.local_structure
def test_a_stream_read_twice_is_not_fused() -> None:
    """A stage whose output two stages read ends its chain; each reader gets every event."""
    flow = rb.Flow("fanout")
    shared = flow.source([1, 2, 3], name="src").map(inc, name="shared")
    shared.map(inc, name="left").sink(Capture(), name="l_out")
    shared.map(operator.neg, name="right").sink(Capture(), name="r_out")
    result = _run(flow)
    assert result.stages["shared"].fused_with == ()
    assert result.stages["left"].fused_with == ("l_out",)
    assert result.outputs == {"l_out": [3, 4, 5], "r_out": [-2, -3, -4]}


@runners.local_structure
def test_branch_and_the_merge_of_its_paths_run_as_one_loop() -> None:
    """A branch, the sync stages of both its paths and their merge fuse into one chain;
    an async stage on a path splits that path (and the merge) off."""
    flow = rb.Flow("tree")
    sides = flow.source(range(6), name="src").branch(is_even, name="split")
    evens = sides.trues.map(inc, name="evens")
    odds = sides.falses.map(operator.neg, name="odds")
    rb.merge(evens, odds, name="joined").sink(Capture(), name="out")
    result = _run(flow, batch_size=4)
    assert set(result.stages["split"].fused_with) == {"evens", "odds", "joined", "out"}
    assert sorted(result.outputs["out"]) == sorted([1, 3, 5, -1, -3, -5])
    assert result.stages["joined"].events_in == 6

    async def slow_neg(x: int) -> int:
        return -x

    flow = rb.Flow("tree-async")
    sides = flow.source(range(6), name="src").branch(is_even, name="split")
    evens = sides.trues.map(inc, name="evens")
    odds = sides.falses.map(slow_neg, name="odds")
    rb.merge(evens, odds, name="joined").sink(Capture(), name="out")
    result = _run(flow, batch_size=4)
    assert result.stages["split"].fused_with == ("evens",)
    assert result.stages["odds"].fused_with == ()
    assert result.stages["joined"].fused_with == ("out",)
    assert sorted(result.outputs["out"]) == sorted([1, 3, 5, -1, -3, -5])


def test_async_callable_object_is_awaited() -> None:
    """An object whose __call__ is async is awaited like an async function."""

    class Doubler:
        async def __call__(self, x: int) -> int:
            await asyncio.sleep(0)
            return x * 2

    flow = rb.Flow("callable")
    flow.source([1, 2, 3], name="src").map(Doubler(), name="double").sink(Capture(), name="out")
    assert _run(flow).outputs == {"out": [2, 4, 6]}


def asyncify(fn: Any) -> Any:
    """A decorator that makes a sync function async, keeping its metadata (a common
    pattern, e.g. to run blocking code off the loop)."""

    @functools.wraps(fn)
    async def wrapper(x: Any) -> Any:
        await asyncio.sleep(0)
        return fn(x)

    return wrapper


def test_async_wrapper_made_with_functools_wraps_is_awaited() -> None:
    """An async def decorated with functools.wraps(sync_fn) is awaited, not emitted."""

    @asyncify
    def add_one(x: int) -> int:
        return x + 1

    flow = rb.Flow("wrapped")
    seen = Capture()
    flow.source([1, 2], name="src").map(add_one, name="add_one").sink(seen, name="out")
    try:
        _run(flow)
        assert seen.items == [2, 3]
    finally:
        for item in seen.items:  # close stray coroutines so no warning hides the assertion
            if asyncio.iscoroutine(item):
                item.close()


def test_async_sink_function_is_awaited_per_event() -> None:
    """An async per-event sink is awaited once per event, in order at concurrency 1."""
    got: list[int] = []

    async def write(x: int) -> None:
        await asyncio.sleep(0)
        got.append(x)

    flow = rb.Flow("async-sink")
    flow.source(range(20), name="src").sink(write, name="out", concurrency=1)
    result = _run(flow, batch_size=6)
    assert got == list(range(20))
    assert result.stages["out"].events_in == 20


def test_async_stage_keeps_input_order_at_any_concurrency() -> None:
    """Async calls finishing out of order still emit in input order."""

    async def jittery(x: int) -> int:
        for _ in range((7 * x) % 5):
            await asyncio.sleep(0)
        return x

    flow = rb.Flow("order")
    seen = Capture()
    flow.source(range(100), name="src").map(jittery, name="m", concurrency=8).sink(seen, name="out")
    _run(flow, batch_size=30)
    assert seen.items == list(range(100))


@runners.shared_objects
def test_async_concurrency_is_bounded() -> None:
    """No more than `concurrency` calls of an async stage are in flight at once."""
    active = 0
    peak = 0

    async def tracked(x: int) -> int:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        for _ in range(3):
            await asyncio.sleep(0)
        active -= 1
        return x

    flow = rb.Flow("bounded")
    flow.source(range(50), name="src").map(tracked, name="m", concurrency=4).sink(
        Capture(), name="out"
    )
    _run(flow, batch_size=50)
    assert peak == 4


# -- folds and state ---------------------------------------------------------------------


def key_mod3(x: int) -> int:
    return x % 3


def test_fold_emits_once_per_key_at_end_of_stream() -> None:
    """fold emits (key, accumulator) for each key when the stream ends, and not before."""
    flow = rb.Flow("fold")
    seen = Capture()
    flow.source(range(10), name="src").key_by(key_mod3, name="key").fold(
        int, operator.add, name="total"
    ).sink(seen, name="out")
    result = _run(flow, batch_size=4)
    assert sorted(seen.items) == [(0, 0 + 3 + 6 + 9), (1, 1 + 4 + 7), (2, 2 + 5 + 8)]
    assert result.stages["total"].events_in == 10
    assert result.stages["total"].events_out == 3


def test_fold_end_values_run_through_the_rest_of_the_chain() -> None:
    """The final accumulators go through the stages after the fold in the same chain."""
    flow = rb.Flow("fold-chain")
    seen = Capture()
    flow.source(range(6), name="src").key_by(is_even, name="key").fold(
        list, lambda acc, x: [*acc, x], name="collect"
    ).values().map(tuple, name="freeze").sink(seen, name="out")
    result = _run(flow, batch_size=2)
    assert sorted(seen.items) == [(0, 2, 4), (1, 3, 5)]
    assert result.stages["freeze"].events_in == 2


def test_running_fold_emits_after_every_event() -> None:
    """fold(running=True) emits the key's accumulator after each event."""
    flow = rb.Flow("running")
    seen = Capture()
    flow.source([1, 2, 3, 4], name="src").key_by(is_even, name="key").fold(
        int, operator.add, running=True, name="total"
    ).sink(seen, name="out")
    _run(flow, batch_size=3)
    # In order per key (the order every runner keeps; the local one keeps it overall too).
    assert [v for k, v in seen.items if not k] == [1, 4]
    assert [v for k, v in seen.items if k] == [2, 6]


def test_reduce_starts_from_each_keys_first_value() -> None:
    """reduce uses a key's first value as its start and emits at end of stream."""
    flow = rb.Flow("reduce")
    seen = Capture()
    flow.source([5, 2, 8, 1, 9], name="src").key_by(lambda x: "all", name="key").reduce(
        max, name="biggest"
    ).sink(seen, name="out")
    _run(flow, batch_size=2)
    assert seen.items == [("all", 9)]


def test_async_fold_emits_at_end() -> None:
    """An async fold function is awaited per event and still emits at end of stream."""

    async def add(acc: int, x: int) -> int:
        await asyncio.sleep(0)
        return acc + x

    flow = rb.Flow("async-fold")
    seen = Capture()
    flow.source(range(10), name="src").key_by(is_even, name="key").fold(
        int, add, name="total", concurrency=4
    ).sink(seen, name="out")
    _run(flow, batch_size=3)
    assert sorted(seen.items) == [(False, 25), (True, 20)]


def count_to_three(state: int, value: str) -> tuple[int | None, Any]:
    """Emits every third value of a key, then forgets the key (state None)."""
    n = state + 1
    if n == 3:
        return None, value
    return n, None


def test_stateful_function_form_with_initial_and_forgetting() -> None:
    """(state, value) -> (state, output): starts from initial(); state None forgets the key,
    which then starts over; output None emits nothing."""
    events = ["a1", "b1", "a2", "a3", "b2", "a4", "a5", "b3", "a6"]
    flow = rb.Flow("stateful-fn")
    seen = Capture()
    flow.source(events, name="src").key_by(lambda e: e[0], name="key").stateful(
        count_to_three, initial=int, name="third"
    ).sink(seen, name="out")
    result = _run(flow, batch_size=4)
    assert seen.items == [("a", "a3"), ("b", "b3"), ("a", "a6")]
    assert result.stages["third"].events_in == 9
    assert result.stages["third"].events_out == 3


@runners.shared_objects
def test_stateful_function_without_initial_starts_from_none() -> None:
    """Without initial, a key's state starts as None."""
    starts: list[Any] = []

    def remember(state: Any, value: int) -> tuple[Any, Any]:
        starts.append(state)
        return value, value

    flow = rb.Flow("no-initial")
    flow.source([1, 2], name="src").key_by(lambda x: 0, name="key").stateful(
        remember, name="remember"
    ).sink(Capture(), name="out")
    _run(flow)
    assert starts == [None, 1]


class Average:
    def __init__(self) -> None:
        self.n = 0
        self.total = 0.0

    def add(self, value: float) -> float | None:
        self.n += 1
        self.total += value
        return self.total / self.n if self.n % 2 == 0 else None


def test_stateful_class_form_keeps_one_instance_per_key() -> None:
    """stateful(Class, Class.method): one instance per key; None outputs emit nothing."""
    flow = rb.Flow("stateful-class")
    seen = Capture()
    flow.source([1, 10, 3, 30, 5, 50], name="src").key_by(lambda x: x >= 10, name="key").stateful(
        Average, "add", name="avg"
    ).sink(seen, name="out")
    _run(flow, batch_size=5)
    assert seen.items == [(False, 2.0), (True, 20.0)]


def test_state_is_per_run() -> None:
    """A second run of the same flow starts with empty state."""
    flow = rb.Flow("fresh")
    flow.source([1, 2, 3], name="src").key_by(lambda x: 0, name="key").fold(
        int, operator.add, name="sum"
    ).sink(Capture(), name="out")
    assert _run(flow).outputs == {"out": [(0, 6)]}
    assert _run(flow).outputs == {"out": [(0, 6)]}


# -- source shapes -----------------------------------------------------------------------


def _outputs(source: Any, **options: Any) -> list[Any]:
    flow = rb.Flow("shapes")
    flow.source(source, name="src").sink(Capture(), name="out")
    return list(_run(flow, **options).outputs["out"])


def numbers() -> Iterator[int]:
    yield from range(5)


async def async_numbers() -> AsyncIterator[int]:
    for i in range(5):
        await asyncio.sleep(0)
        yield i


class AsyncNumbers:
    """An async iterable object (not a generator)."""

    def __aiter__(self) -> AsyncIterator[int]:
        return async_numbers()


@pytest.mark.parametrize(
    "source",
    [[0, 1, 2, 3, 4], range(5), (0, 1, 2, 3, 4), numbers, async_numbers, AsyncNumbers()],
    ids=[
        "list",
        "range",
        "tuple",
        "generator-function",
        "async-generator-function",
        "async-iterable",
    ],
)
def test_source_shapes_give_their_events_in_order(source: Any) -> None:
    """Lists, ranges, generator functions and async iterables all read fully, in order."""
    assert _outputs(source, batch_size=2) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("source", [[1, 2, 3], range(1, 4), numbers, async_numbers])
def test_reusable_sources_give_the_same_events_on_every_run(source: Any) -> None:
    """A list, range or generator function is read afresh by every run."""
    flow = rb.Flow("rerun")
    flow.source(source, name="src").sink(Capture(), name="out")
    first = _run(flow).outputs["out"]
    assert first
    assert _run(flow).outputs["out"] == first


def test_one_shot_generator_object_fails_a_second_run_clearly() -> None:
    """A generator object is read by one run; a second run fails with a SourceError that
    says to pass a generator function instead."""
    flow = rb.Flow("one-shot")
    flow.source(numbers(), name="src").sink(Capture(), name="out")
    assert _run(flow).outputs["out"] == [0, 1, 2, 3, 4]
    with pytest.raises(rb.RunFailedError) as caught:
        _run(flow)
    error = caught.value.result.error
    assert error is not None
    assert (error.stage, error.error_type) == ("src", "SourceError")
    assert "one-shot" in error.message
    assert "generator function" in error.message
    assert isinstance(caught.value.__cause__.__cause__, rb.SourceError)


class Partitioned:
    """A custom source: named partitions over lists; the position is an offset dict."""

    def __init__(self, data: dict[str, list[Any]], chunk: int = 2) -> None:
        self.data = data
        self.chunk = chunk
        self.opened: list[tuple[str, Any]] = []
        self.closed: list[str] = []

    def partitions(self) -> list[str]:
        return list(self.data)

    def open(self, partition: str, position: Any) -> PartitionedReader:
        self.opened.append((partition, position))
        return PartitionedReader(self, partition, (position or {}).get("offset", 0))


class PartitionedReader:
    def __init__(self, owner: Partitioned, partition: str, offset: int) -> None:
        self.owner = owner
        self.partition = partition
        self.offset = offset

    def read(self, max_events: int) -> list[Any] | None:
        items = self.owner.data[self.partition]
        if self.offset >= len(items):
            return None
        batch = items[self.offset : self.offset + min(max_events, self.owner.chunk)]
        self.offset += len(batch)
        return batch

    def position(self) -> dict[str, int]:
        return {"offset": self.offset}

    def close(self) -> None:
        self.owner.closed.append(self.partition)


def test_custom_source_with_two_partitions_and_positions() -> None:
    """A Source object's partitions are all read, each in order, each reader closed once,
    and the result holds every partition's final position."""
    source = Partitioned({"a": ["a0", "a1", "a2"], "b": ["b0", "b1", "b2", "b3", "b4"]})
    assert isinstance(source, rb.Source)
    flow = rb.Flow("partitioned")
    seen = Capture()
    flow.source(source, name="src").map(str.upper, name="upper").sink(seen, name="out")
    result = _run(flow, batch_size=10)
    assert sorted(seen.items) == ["A0", "A1", "A2", "B0", "B1", "B2", "B3", "B4"]
    assert [x for x in seen.items if x[0] == "A"] == ["A0", "A1", "A2"]
    assert [x for x in seen.items if x[0] == "B"] == ["B0", "B1", "B2", "B3", "B4"]
    assert result.positions == {"src": {"a": {"offset": 3}, "b": {"offset": 5}}}
    assert sorted(source.opened) == [("a", None), ("b", None)]
    assert sorted(source.closed) == ["a", "b"]
    assert result.stages["src"].events_out == 8


def test_fold_over_two_partitions_waits_for_both() -> None:
    """End of stream comes only when every partition has ended."""
    source = Partitioned({"a": [1] * 7, "b": [1] * 11}, chunk=1)
    flow = rb.Flow("two-ends")
    flow.source(source, name="src").key_by(lambda x: "k", name="key").fold(
        int, operator.add, name="count"
    ).sink(Capture(), name="out")
    assert _run(flow).outputs == {"out": [("k", 18)]}


class PollingReader:
    """Says "nothing yet" ([]) a few times before each batch."""

    def __init__(self, batches: list[list[int]], empty_before_each: int) -> None:
        self.script: list[list[int]] = []
        for batch in batches:
            self.script += [[]] * empty_before_each + [batch]
        self.step = 0
        self.reads = 0

    def read(self, max_events: int) -> list[int] | None:
        self.reads += 1
        if self.step >= len(self.script):
            return None
        self.step += 1
        return self.script[self.step - 1]

    def position(self) -> int:
        return self.step

    def close(self) -> None:
        pass


class OneReader:
    def __init__(self, reader: Any) -> None:
        self.reader = reader

    def partitions(self) -> list[str]:
        return ["only"]

    def open(self, partition: str, position: Any) -> Any:
        return self.reader


@runners.test_clock
def test_reader_saying_nothing_yet_is_polled_on_the_clock() -> None:
    """A read() of [] means "nothing yet": the engine sleeps on its clock and asks again."""
    reader = PollingReader([[1, 2], [3]], empty_before_each=3)
    clock = TestClock()
    flow = rb.Flow("polling")
    flow.source(OneReader(reader), name="src").sink(Capture(), name="out")
    result = _run(flow, clock=clock)
    assert result.outputs == {"out": [1, 2, 3]}
    assert len(clock.sleeps) == 6
    assert all(0 < s < 1 for s in clock.sleeps)
    assert reader.reads == 9
    assert result.positions == {"src": {"only": 8}}


class TupleReader:
    def read(self, max_events: int) -> Any:
        return (1, 2)

    def position(self) -> int:
        return 0

    def close(self) -> None:
        pass


def test_non_list_batch_fails_the_run_with_a_source_error() -> None:
    """A read() returning something other than a list fails the run with a SourceError
    that says what was returned and what is expected."""
    flow = rb.Flow("bad-batch")
    flow.source(OneReader(TupleReader()), name="src").sink(Capture(), name="out")
    result = _run(flow, raise_on_failure=False)
    assert result.status is rb.RunStatus.FAILED
    assert result.error is not None
    assert (result.error.stage, result.error.error_type) == ("src", "SourceError")
    assert "returned tuple" in result.error.message
    assert "list" in result.error.message
    assert result.stages["src"].errors == 1


def test_failing_source_fails_the_run() -> None:
    """A source whose iteration raises fails the run, naming the source and its error."""

    def breaks() -> Iterator[int]:
        yield 1
        raise ConnectionResetError("gone")

    flow = rb.Flow("source-fails")
    flow.source(breaks, name="src").sink(Capture(), name="out")
    with pytest.raises(rb.RunFailedError, match="src") as caught:
        _run(flow, batch_size=1)
    error = caught.value.result.error
    assert error is not None
    assert error.error_type == "ConnectionResetError"


class MetadataDown:
    """A source whose partitions() cannot be listed (its server is down)."""

    def partitions(self) -> list[str]:
        raise ConnectionError("metadata server down")

    def open(self, partition: str, position: Any) -> Any:  # pragma: no cover - never reached
        raise AssertionError("not opened")


class CannotOpen(MetadataDown):
    def partitions(self) -> list[str]:
        return ["0"]

    def open(self, partition: str, position: Any) -> Any:
        raise ConnectionError("cannot connect")


def test_source_failing_to_open_fails_the_run_with_a_result() -> None:
    """A source whose open() raises ends the run FAILED, naming the source."""
    flow = rb.Flow("cannot-open")
    flow.source(CannotOpen(), name="src").sink(Capture(), name="out")
    result = _run(flow, raise_on_failure=False)
    assert result.status is rb.RunStatus.FAILED
    assert result.error is not None
    assert (result.error.stage, result.error.error_type) == ("src", "ConnectionError")


def test_source_failing_to_list_partitions_fails_the_run_with_a_result() -> None:
    """A source whose partitions() raises ends the run FAILED, naming the source, like
    any other source failure."""
    flow = rb.Flow("no-partitions")
    flow.source(MetadataDown(), name="src").sink(Capture(), name="out")
    result = _run(flow, raise_on_failure=False)
    assert result.status is rb.RunStatus.FAILED
    assert result.error is not None
    assert (result.error.stage, result.error.error_type) == ("src", "ConnectionError")


def _stop_early(source: Any, log: list[str]) -> list[str]:
    """Run ``source`` into a map that fails on its fourth event, inside a running loop;
    return what ``log`` held when arun returned (before the loop's own clean-up)."""

    def fails_on_three(x: int) -> int:
        if x == 3:
            raise ValueError("stop here")
        return x

    flow = rb.Flow("early-stop")
    flow.source(source, name="src").map(fails_on_three, name="m").sink(Capture(), name="out")

    async def main() -> list[str]:
        result = await flow.arun(progress=False, raise_on_failure=False, batch_size=2)
        assert result.status is rb.RunStatus.FAILED
        return list(log)

    return asyncio.run(main())


def test_generator_source_is_closed_when_the_run_stops_early() -> None:
    """A generator source's clean-up (its finally) has run by the time the run returns."""
    log: list[str] = []

    def numbers_with_cleanup() -> Iterator[int]:
        try:
            yield from range(1000)
        finally:
            log.append("closed")

    assert _stop_early(numbers_with_cleanup, log) == ["closed"]


def test_async_generator_source_is_closed_when_the_run_stops_early() -> None:
    """An async generator source's clean-up has run by the time arun returns, as for a
    sync generator, even when the run stops early."""
    log: list[str] = []

    async def numbers_with_cleanup() -> AsyncIterator[int]:
        try:
            for i in range(1000):
                yield i
        finally:
            log.append("closed")

    assert _stop_early(numbers_with_cleanup, log) == ["closed"]


# -- backpressure ------------------------------------------------------------------------


def test_fast_source_waits_for_a_slow_sink() -> None:
    """Every edge is bounded: a fast source is never more than the channel's batches
    (plus the batch in the sink and the one being handed over) ahead of the sink."""
    batch_size, capacity = 10, 2
    produced = 0
    lag: list[int] = []
    received = 0

    def endless() -> Iterator[int]:
        nonlocal produced
        for i in range(10**7):
            produced += 1
            yield i

    async def slow_sink(x: int) -> None:
        nonlocal received
        received += 1
        lag.append(produced - received)
        if received == 300:
            raise RuntimeError("enough")
        await asyncio.sleep(0)

    flow = rb.Flow("backpressure")
    flow.source(endless, name="src").sink(slow_sink, name="out", concurrency=1)
    result = _run(flow, batch_size=batch_size, channel_capacity=capacity, raise_on_failure=False)
    assert result.error is not None
    assert result.error.message == "enough"
    # In flight at most: the batch in the sink, `capacity` batches in its channel, and the
    # batch the source is putting.
    bound = (capacity + 2) * batch_size
    assert max(lag) <= bound
    assert produced <= 300 + bound


@pytest.mark.local_only(
    "the bound counts the local runner's channels; the Ray runner's bound is per actor (tests/ray)"
)
def test_backpressure_holds_across_several_edges() -> None:
    """With two async stages (two edges), the source stays within both channels' bound."""
    batch_size, capacity = 5, 1
    produced = 0
    lag: list[int] = []
    received = 0

    def endless() -> Iterator[int]:
        nonlocal produced
        for i in itertools.count():
            produced += 1
            yield i

    async def middle(x: int) -> int:
        await asyncio.sleep(0)
        return x

    async def slow_sink(x: int) -> None:
        nonlocal received
        received += 1
        lag.append(produced - received)
        if received == 200:
            raise RuntimeError("enough")
        await asyncio.sleep(0)

    flow = rb.Flow("backpressure-2")
    flow.source(endless, name="src").map(middle, name="middle").sink(
        slow_sink, name="out", concurrency=1
    )
    result = _run(flow, batch_size=batch_size, channel_capacity=capacity, raise_on_failure=False)
    assert result.status is rb.RunStatus.FAILED
    # Per edge: `capacity` queued batches and one being handed over; plus the sink's batch.
    edges = 2
    bound = (edges * (capacity + 1) + 1) * batch_size
    assert max(lag) <= bound


class Shares:
    """Partitions that always have data, all stopping once ``total`` batches were read
    between them; ``reads`` counts each one's batches."""

    def __init__(self, names: list[str], total: int, reads: dict[str, int] | None = None) -> None:
        self.names = names
        self.total = total
        self.reads = reads if reads is not None else {}
        self.reads.update(dict.fromkeys(names, 0))

    def partitions(self) -> list[str]:
        return self.names

    def open(self, partition: str, position: Any) -> SharesReader:
        return SharesReader(self, partition)


class SharesReader:
    def __init__(self, owner: Shares, partition: str) -> None:
        self.owner = owner
        self.partition = partition

    def read(self, max_events: int) -> list[int] | None:
        reads = self.owner.reads
        if sum(reads.values()) >= self.owner.total:
            return None
        reads[self.partition] += 1
        return list(range(max_events))

    def position(self) -> int:
        return self.owner.reads[self.partition]

    def close(self) -> None:
        pass


def test_sync_partitions_each_get_a_share(on_runner: str) -> None:
    """Synchronous readers that never wait for data take turns: none starves the others.
    The local runner's source loop gives each a fair part of the batches, give or take its
    channel's room (at least 80 of 100); on Ray each partition is read by a task of its
    own, whose share follows when the actors' lanes have room (at least half of 100)."""
    source = Shares(["a", "b", "c"], total=300)
    flow = rb.Flow("shares")
    flow.source(source, name="src").map(inc).sink(Capture(), name="out")
    _run(flow, batch_size=10)
    assert min(source.reads.values()) >= (80 if on_runner == "local" else 50), source.reads


@runners.local_structure
def test_sources_running_their_chains_inline_take_turns() -> None:
    """Two sources, each running its chain in its own task (no channel to wait on), share
    the event loop batch by batch."""
    reads: dict[str, int] = {}
    flow = rb.Flow("two-sources")
    for name in ("a", "b"):
        source = Shares([name], total=200, reads=reads)
        flow.source(source, name=name).map(inc, name=f"inc_{name}").sink(
            Capture(), name=f"out_{name}"
        )
    _run(flow, batch_size=10)
    assert min(reads.values()) >= 80, reads


# -- inside an event loop ----------------------------------------------------------------


def test_arun_inside_a_running_loop() -> None:
    """Flow.arun runs on the caller's loop; two flows can run at once on it."""

    async def main() -> tuple[rb.RunResult, rb.RunResult]:
        one = rb.Flow("one")
        one.source(async_numbers, name="src").map(inc, name="inc").sink(Capture(), name="out")
        two = rb.Flow("two")
        two.source(range(3), name="src").sink(Capture(), name="out")
        return await asyncio.gather(one.arun(progress=False), two.arun(progress=False))

    first, second = asyncio.run(main())
    assert first.outputs == {"out": [1, 2, 3, 4, 5]}
    assert second.outputs == {"out": [0, 1, 2]}


def test_arun_raises_run_failed_error_on_failure() -> None:
    """arun fails like run: RunFailedError, or the result with raise_on_failure=False."""
    flow = rb.Flow("afail")
    flow.source([1], name="src").map(lambda x: 1 / 0, name="div").sink(Capture(), name="out")

    async def main() -> rb.RunResult:
        with pytest.raises(rb.RunFailedError):
            await flow.arun(progress=False)
        return await flow.arun(progress=False, raise_on_failure=False)

    assert asyncio.run(main()).status is rb.RunStatus.FAILED


def test_cancelling_arun_cancels_cleanly() -> None:
    """Cancelling the arun task stops every stage, closes sinks and raises
    CancelledError to the caller (no warning, no stray task)."""

    class Store:
        def __init__(self) -> None:
            self.items: list[int] = []
            self.closed = 0

        def write_batch(self, events: list[int]) -> None:
            self.items.extend(events)

        def close(self) -> None:
            self.closed += 1

    async def ticks() -> AsyncIterator[int]:
        for i in itertools.count():
            await asyncio.sleep(0)
            yield i

    store = Store()
    flow = rb.Flow("cancel")
    flow.source(ticks, name="src").map(inc, name="inc").sink(store, name="store")

    async def main() -> set[asyncio.Task[Any]]:
        task = asyncio.create_task(flow.arun(progress=False, batch_size=5))
        while len(store.items) < 50:
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return asyncio.all_tasks() - {asyncio.current_task()}  # type: ignore[operator]

    leftover = asyncio.run(main())
    assert leftover == set()
    assert store.closed == 1
    assert store.items == list(range(1, len(store.items) + 1))


# -- names and options -------------------------------------------------------------------


def test_stage_names_are_stable_and_used_in_the_result() -> None:
    """Derived stage names are the functions' names, numbered in building order, the same
    on every build; the result's stages keep the flow's order."""

    def build() -> rb.Flow:
        flow = rb.Flow("names")
        flow.source(numbers).map(inc).map(inc).map(lambda x: x).filter(is_even).sink(Capture())
        return flow

    names = [s.name for s in build().stages]
    assert names == ["numbers", "inc", "inc_2", "map", "is_even", "capture"]
    assert [s.name for s in build().stages] == names
    result = _run(build())
    assert list(result.stages) == names
    assert list(result.outputs) == ["capture"]


@pytest.mark.parametrize("option", ["batch_size", "concurrency", "channel_capacity"])
@pytest.mark.parametrize("value", [0, -1, 1.5, True, "8"])
def test_bad_run_options_are_rejected_with_a_message(option: str, value: Any) -> None:
    """batch_size, concurrency and channel_capacity must be ints >= 1; ValueError names it."""
    flow = rb.Flow("options")
    flow.source([1], name="src").sink(Capture(), name="out")
    with pytest.raises(ValueError, match=f"{option} must be an int >= 1, got {value!r}"):
        _run(flow, **{option: value})


@pytest.mark.parametrize("value", [-1, 1.5, True, "5"])
def test_bad_max_errors_is_rejected_with_a_message(value: Any) -> None:
    """max_errors must be an int >= 0; anything else is a ValueError before the run."""
    flow = rb.Flow("options")
    flow.source([1], name="src").map(lambda x: 1 / 0, name="div", on_error=rb.OnError.SKIP).sink(
        Capture(), name="out"
    )
    with pytest.raises(ValueError, match="max_errors"):
        _run(flow, max_errors=value)


def test_unknown_run_option_is_a_type_error() -> None:
    """A misspelt run option is refused rather than ignored."""
    flow = rb.Flow("typo")
    flow.source([1], name="src").sink(Capture(), name="out")
    with pytest.raises(TypeError, match="batchsize"):
        _run(flow, batchsize=10)


def test_stopped_run_does_not_emit_fold_totals() -> None:
    """A run stopped on request drains what is in flight, but its folds emit nothing: the
    stream was stopped, not ended, so partial totals are not passed off as final."""
    from tests.runtime.runs import execute, stream_run

    totals = Capture()
    seen = Capture()
    flow = rb.Flow("stopped")
    keyed = flow.source(range(1000), name="src").key_by(lambda x: x % 2, name="parity")
    keyed.inspect(lambda _: None, name="look").sink(seen, name="seen")
    keyed.fold(int, operator.add, name="sum").sink(totals, name="totals")
    run = stream_run(flow, batch_size=10)
    run.control.stop()  # as the first Ctrl-C does
    assert asyncio.run(execute(run)) is None
    assert run.control.status(None) is rb.RunStatus.CANCELLED
    assert totals.items == []
    assert seen.items == []  # stopped before the first read


def test_ended_run_emits_fold_totals() -> None:
    """The same flow run to its end emits each key's total once."""
    flow = rb.Flow("ended")
    flow.source(range(10), name="src").key_by(lambda x: x % 2, name="parity").fold(
        int, operator.add, name="sum"
    ).sink(Capture(), name="totals")
    assert sorted(_run(flow).outputs["totals"]) == [(0, 20), (1, 25)]


def test_generator_failing_while_pulled_fails_the_run_at_the_source() -> None:
    """A source read straight into its only chain (no batch list) that raises ends the run
    FAILED at the source, not as an engine error, and counts agree along the chain."""

    def numbers() -> Iterator[int]:
        for i in range(2500):
            if i == 2222:
                raise OSError("disk gone")
            yield i

    flow = rb.Flow("pulled-source-fails")
    flow.source(numbers, name="src").map(inc, name="inc").sink(Capture(), name="out")
    result = _run(flow, batch_size=1000, raise_on_failure=False)
    assert result.status is rb.RunStatus.FAILED
    assert result.error is not None
    assert (result.error.stage, result.error.message) == ("src", "disk gone")
    assert result.stages["src"].events_out == result.stages["inc"].events_in


@runners.local_structure
def test_stop_while_pulled_counts_the_events_taken() -> None:
    """A STOP half way through a pulled batch: the source's count and position include
    the events the chain took, the failing one too."""

    def fail_at_1500(x: int) -> int:
        if x == 1500:
            raise ValueError("1500")
        return x

    flow = rb.Flow("pulled-stop")
    flow.source(lambda: iter(range(2500)), name="src").map(fail_at_1500, name="f").sink(
        Capture(), name="out"
    )
    result = _run(flow, batch_size=1000, raise_on_failure=False)
    assert result.status is rb.RunStatus.FAILED
    assert result.stages["src"].events_out == 1501
    assert result.stages["f"].events_in == 1501
    assert result.positions == {"src": {"0": 1501}}
