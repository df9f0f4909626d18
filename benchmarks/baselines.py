"""The baselines riverbed is measured against: the plain Python loop and a naive asyncio
pipeline.

Both call the very same user functions as the riverbed flows (``benchmarks.workloads``).
The plain loop is the limit for pure-Python stage code: the same calls per event, and
nothing else. The naive asyncio pipeline is the pattern many small event frameworks use:
one task and one bounded ``asyncio.Queue`` per stage, one event per queue item.
"""

from __future__ import annotations

import asyncio
import heapq
import math
from collections.abc import Awaitable, Callable
from typing import Any

from .workloads import (
    WINDOW_SECONDS,
    Checksum,
    EvenOdd,
    LastMeans,
    RunningMean,
    WindowCounts,
    add_v2,
    event_seconds,
    events,
    get_key,
    is_even,
    keep,
    on_even,
    on_odd,
    project,
    touch,
    touch_async,
)

# -- the plain loop ------------------------------------------------------------------------


def plain_w1(n: int) -> Checksum:
    """W1 as one loop: map, filter, map; count and sum inline."""
    count = ids = 0
    v2s = 0.0
    for event in events(n):
        event = add_v2(event)
        if keep(event):
            id_, v2 = project(event)
            count += 1
            ids += id_
            v2s += v2
    return Checksum(count, ids, v2s)


def plain_w1a(n: int) -> Checksum:
    """W1A as one loop: W1 with the middle map's work (``touch``) called as the plain
    function it wraps; a loop has nothing to await, and awaiting a coroutine per event
    would charge the baseline with a cost that is riverbed's to hide."""
    count = ids = 0
    v2s = 0.0
    for event in events(n):
        event = touch(add_v2(event))
        if keep(event):
            id_, v2 = project(event)
            count += 1
            ids += id_
            v2s += v2
    return Checksum(count, ids, v2s)


def plain_w2(n: int) -> LastMeans:
    """W2 as one loop: key, one ``RunningMean`` per key, keep the last mean per key."""
    states: dict[Any, RunningMean] = {}
    last: dict[Any, float] = {}
    emitted = 0
    for event in events(n):
        key = get_key(event)
        state = states.get(key)
        if state is None:
            state = states[key] = RunningMean()
        mean = RunningMean.add(state, event)
        if mean is not None:
            last[key] = mean
            emitted += 1
    return LastMeans(last, emitted)


def plain_w4(n: int) -> EvenOdd:
    """W4 as one loop: branch, the map of the branch taken, count by tag inline."""
    evens = odds = 0
    for event in events(n):
        tag, _ = on_even(event) if is_even(event) else on_odd(event)
        if tag == "even":
            evens += 1
        else:
            odds += 1
    return EvenOdd(evens, odds)


class TumblingCounts:
    """W3's window logic written by hand: counts per (window end, key), a heap of window
    ends, the watermark at the greatest event time seen, late events dropped. The plain loop
    and the naive asyncio pipeline both use it."""

    def __init__(self, sink: WindowCounts) -> None:
        self.sink = sink
        self.open: dict[float, dict[Any, int]] = {}
        self.ends: list[float] = []
        self.watermark = -math.inf

    def add(self, key: Any, t: float) -> None:
        """Count one event of ``key`` at event time ``t``; close what the watermark passed."""
        end = t - t % WINDOW_SECONDS + WINDOW_SECONDS
        bucket = self.open.get(end)
        if bucket is None:
            if end <= self.watermark:
                return  # late
            bucket = self.open[end] = {}
            heapq.heappush(self.ends, end)
        bucket[key] = bucket.get(key, 0) + 1
        if t > self.watermark:
            self.watermark = t
            if self.ends[0] <= t:
                self.close(t)

    def close(self, mark: float) -> None:
        """Emit every window ending at or before ``mark`` as ``(key, (start, count))``."""
        ends = self.ends
        while ends and ends[0] <= mark:
            end = heapq.heappop(ends)
            start = end - WINDOW_SECONDS
            self.sink.add_counts([(key, (start, n)) for key, n in self.open.pop(end).items()])


def plain_w3(n: int) -> WindowCounts:
    """W3 as one loop: key, event time, the hand-written tumbling window counts."""
    sink = WindowCounts()
    windows = TumblingCounts(sink)
    add = windows.add
    for event in events(n):
        add(get_key(event), event_seconds(event))
    windows.close(math.inf)
    return sink


# -- the naive asyncio pipeline ------------------------------------------------------------

QUEUE_SIZE = 1000
"""Bound of every stage queue (unbounded queues would let the source run ahead and hold
every event in memory: ``put`` on a queue with room never yields)."""

_DONE: Any = object()
"""End-of-stream marker passed down the queues."""

Queue = asyncio.Queue[Any]


def _queue() -> Queue:
    return asyncio.Queue(maxsize=QUEUE_SIZE)


async def _source(n: int, out: Queue) -> None:
    for event in events(n):
        await out.put(event)
    await out.put(_DONE)


async def _map(fn: Callable[[Any], Any], inq: Queue, out: Queue) -> None:
    while (event := await inq.get()) is not _DONE:
        await out.put(fn(event))
    await out.put(_DONE)


async def _amap(fn: Callable[[Any], Awaitable[Any]], inq: Queue, out: Queue) -> None:
    while (event := await inq.get()) is not _DONE:
        await out.put(await fn(event))
    await out.put(_DONE)


async def _filter(predicate: Callable[[Any], Any], inq: Queue, out: Queue) -> None:
    while (event := await inq.get()) is not _DONE:
        if predicate(event):
            await out.put(event)
    await out.put(_DONE)


async def _sink(fn: Callable[[Any], Any], inq: Queue) -> None:
    while (event := await inq.get()) is not _DONE:
        fn(event)


async def _stateful(inq: Queue, out: Queue) -> None:
    """One ``RunningMean`` per key over ``(key, event)`` pairs; emits ``(key, mean)``."""
    states: dict[Any, RunningMean] = {}
    while (pair := await inq.get()) is not _DONE:
        key, event = pair
        state = states.get(key)
        if state is None:
            state = states[key] = RunningMean()
        mean = RunningMean.add(state, event)
        if mean is not None:
            await out.put((key, mean))
    await out.put(_DONE)


async def _branch(predicate: Callable[[Any], Any], inq: Queue, trues: Queue, falses: Queue) -> None:
    while (event := await inq.get()) is not _DONE:
        await (trues if predicate(event) else falses).put(event)
    await trues.put(_DONE)
    await falses.put(_DONE)


async def _merge(inputs: int, inq: Queue, out: Queue) -> None:
    """Forward events until every one of ``inputs`` upstream stages has ended."""
    ended = 0
    while ended < inputs:
        event = await inq.get()
        if event is _DONE:
            ended += 1
        else:
            await out.put(event)
    await out.put(_DONE)


def _key_pair(event: Any) -> tuple[Any, Any]:
    return (get_key(event), event)


async def _windows(inq: Queue, sink: WindowCounts) -> None:
    """W3's window stage: ``(key, event)`` pairs into the hand-written window counts."""
    windows = TumblingCounts(sink)
    while (pair := await inq.get()) is not _DONE:
        windows.add(pair[0], event_seconds(pair[1]))
    windows.close(math.inf)


async def _asyncio_w3(n: int) -> WindowCounts:
    sink = WindowCounts()
    q1, q2 = _queue(), _queue()
    await asyncio.gather(_source(n, q1), _map(_key_pair, q1, q2), _windows(q2, sink))
    return sink


async def _asyncio_w1(n: int) -> Checksum:
    checksum = Checksum()
    q1, q2, q3, q4 = _queue(), _queue(), _queue(), _queue()
    await asyncio.gather(
        _source(n, q1),
        _map(add_v2, q1, q2),
        _filter(keep, q2, q3),
        _map(project, q3, q4),
        _sink(checksum.add, q4),
    )
    return checksum


async def _asyncio_w1a(n: int) -> Checksum:
    checksum = Checksum()
    q1, q2, q3, q4, q5 = _queue(), _queue(), _queue(), _queue(), _queue()
    await asyncio.gather(
        _source(n, q1),
        _map(add_v2, q1, q2),
        _amap(touch_async, q2, q3),
        _filter(keep, q3, q4),
        _map(project, q4, q5),
        _sink(checksum.add, q5),
    )
    return checksum


async def _asyncio_w2(n: int) -> LastMeans:
    last = LastMeans()
    q1, q2, q3 = _queue(), _queue(), _queue()
    await asyncio.gather(
        _source(n, q1),
        _map(_key_pair, q1, q2),
        _stateful(q2, q3),
        _sink(last.update, q3),
    )
    return last


async def _asyncio_w4(n: int) -> EvenOdd:
    counter = EvenOdd()
    source, evens, odds, merged, out = _queue(), _queue(), _queue(), _queue(), _queue()
    await asyncio.gather(
        _source(n, source),
        _branch(is_even, source, evens, odds),
        _map(on_even, evens, merged),
        _map(on_odd, odds, merged),
        _merge(2, merged, out),
        _sink(counter.add, out),
    )
    return counter


def asyncio_w1(n: int) -> Checksum:
    """W1 as a naive asyncio pipeline: source, map, filter, map, sink tasks."""
    return asyncio.run(_asyncio_w1(n))


def asyncio_w1a(n: int) -> Checksum:
    """W1A as a naive asyncio pipeline: W1's tasks with one more, awaiting ``touch_async``
    per event, between the first map and the filter."""
    return asyncio.run(_asyncio_w1a(n))


def asyncio_w2(n: int) -> LastMeans:
    """W2 as a naive asyncio pipeline: source, key_by, stateful, sink tasks."""
    return asyncio.run(_asyncio_w2(n))


def asyncio_w4(n: int) -> EvenOdd:
    """W4 as a naive asyncio pipeline: source, branch, two maps, merge, sink tasks."""
    return asyncio.run(_asyncio_w4(n))


def asyncio_w3(n: int) -> WindowCounts:
    """W3 as a naive asyncio pipeline: source, key_by, window (and its sink) tasks."""
    return asyncio.run(_asyncio_w3(n))
