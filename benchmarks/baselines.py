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
    SESSION_GAP,
    SLIDING_SECONDS,
    WINDOW_SECONDS,
    Checksum,
    EvenOdd,
    LastMeans,
    Mean,
    RunningMean,
    WindowResults,
    add_v2,
    add_value,
    burst_seconds,
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


# The W3 family's windows written by hand: the plain loop and the naive asyncio pipeline
# both use them. Each keeps what is open per window (a dict per window end, a heap of ends)
# or per key (sessions), moves the watermark to the greatest event time seen, closes what
# it passed, drops late events, and hands the results to the sink as riverbed does:
# ``(key, ((start, end), value))``.


class TumblingCounts:
    """W3: counts per (1 s window, key)."""

    def __init__(self, sink: WindowResults) -> None:
        self.sink = sink
        self.open: dict[float, dict[Any, int]] = {}
        self.ends: list[float] = []
        self.watermark = -math.inf

    def add(self, key: Any, event: Any) -> None:
        """Count one event of ``key``; close what the watermark passed."""
        t = event_seconds(event)
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
        """Emit every window ending at or before ``mark``."""
        ends = self.ends
        while ends and ends[0] <= mark:
            end = heapq.heappop(ends)
            window = (end - WINDOW_SECONDS, end)
            self.sink.add_batch([(key, (window, n)) for key, n in self.open.pop(end).items()])


class SlidingSums:
    """W3-SLIDING: sums of ``value`` (``add_value``) per (window, key), windows of 10 s
    starting every 1 s: each event is in 10 of them."""

    def __init__(self, sink: WindowResults) -> None:
        self.sink = sink
        self.open: dict[float, dict[Any, float]] = {}
        self.ends: list[float] = []
        self.watermark = -math.inf

    def add(self, key: Any, event: Any) -> None:
        """Add one event to each of its windows still open; close what the watermark
        passed."""
        t = event_seconds(event)
        end = t - t % WINDOW_SECONDS + SLIDING_SECONDS  # the last window holding t
        watermark = self.watermark
        while end > t and end > watermark:
            bucket = self.open.get(end)
            if bucket is None:
                bucket = self.open[end] = {}
                heapq.heappush(self.ends, end)
            bucket[key] = add_value(bucket.get(key, 0.0), event)
            end -= WINDOW_SECONDS
        if t > watermark:
            self.watermark = t
            if self.ends[0] <= t:
                self.close(t)

    def close(self, mark: float) -> None:
        """Emit every window ending at or before ``mark``."""
        ends = self.ends
        while ends and ends[0] <= mark:
            end = heapq.heappop(ends)
            window = (end - SLIDING_SECONDS, end)
            self.sink.add_batch([(key, (window, v)) for key, v in self.open.pop(end).items()])


class SessionMeans:
    """W3-SESSION: per key one open session ``[start, last, Mean, number]``, closed when
    the watermark reaches ``last + gap``; a heap of ``(due, number, key)`` with one entry
    per session, pushed again when the session grew. Events of a key come in time order
    here, so this does not merge sessions, which riverbed does for out-of-order events."""

    def __init__(self, sink: WindowResults) -> None:
        self.sink = sink
        self.open: dict[Any, list[Any]] = {}
        self.due: list[tuple[float, int, Any]] = []
        self.watermark = -math.inf
        self.sessions = 0

    def add(self, key: Any, event: Any) -> None:
        """Close what the event's time passed; add it to its key's session, or start one."""
        t = burst_seconds(event)
        if t > self.watermark:
            self.watermark = t
            if self.due and self.due[0][0] <= t:
                self.close(t)
        session = self.open.get(key)
        if session is None:
            if t + SESSION_GAP <= self.watermark:
                return  # late
            self.sessions += 1
            session = self.open[key] = [t, t, Mean(), self.sessions]
            heapq.heappush(self.due, (t + SESSION_GAP, self.sessions, key))
        elif t > session[1]:
            session[1] = t
        session[2].add(event)

    def close(self, mark: float) -> None:
        """Emit every session whose gap the watermark passed."""
        due = self.due
        out = []
        while due and due[0][0] <= mark:
            _, number, key = heapq.heappop(due)
            start, last, mean, _ = self.open[key]
            if last + SESSION_GAP <= mark:
                del self.open[key]
                out.append((key, ((start, last + SESSION_GAP), mean.result())))
            else:  # it grew since: look again when its new gap ends
                heapq.heappush(due, (last + SESSION_GAP, number, key))
        self.sink.add_batch(out)


def _plain_windows(n: int, windows: TumblingCounts | SlidingSums | SessionMeans) -> None:
    add = windows.add
    for event in events(n):
        add(get_key(event), event)
    windows.close(math.inf)


def plain_w3(n: int) -> WindowResults:
    """W3 as one loop: key, then the hand-written tumbling window counts."""
    sink = WindowResults()
    _plain_windows(n, TumblingCounts(sink))
    return sink


def plain_w3_sliding(n: int) -> WindowResults:
    """W3-SLIDING as one loop: key, then the hand-written sliding window sums."""
    sink = WindowResults()
    _plain_windows(n, SlidingSums(sink))
    return sink


def plain_w3_session(n: int) -> WindowResults:
    """W3-SESSION as one loop: key, then the hand-written session means."""
    sink = WindowResults()
    _plain_windows(n, SessionMeans(sink))
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


async def _windows(inq: Queue, windows: TumblingCounts | SlidingSums | SessionMeans) -> None:
    """A W3 window stage: ``(key, event)`` pairs into hand-written windows."""
    while (pair := await inq.get()) is not _DONE:
        windows.add(pair[0], pair[1])
    windows.close(math.inf)


async def _asyncio_w3(windows: TumblingCounts | SlidingSums | SessionMeans, n: int) -> None:
    q1, q2 = _queue(), _queue()
    await asyncio.gather(_source(n, q1), _map(_key_pair, q1, q2), _windows(q2, windows))


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


def asyncio_w3(n: int) -> WindowResults:
    """W3 as a naive asyncio pipeline: source, key_by, window (and its sink) tasks."""
    sink = WindowResults()
    asyncio.run(_asyncio_w3(TumblingCounts(sink), n))
    return sink


def asyncio_w3_sliding(n: int) -> WindowResults:
    """W3-SLIDING as a naive asyncio pipeline."""
    sink = WindowResults()
    asyncio.run(_asyncio_w3(SlidingSums(sink), n))
    return sink


def asyncio_w3_session(n: int) -> WindowResults:
    """W3-SESSION as a naive asyncio pipeline."""
    sink = WindowResults()
    asyncio.run(_asyncio_w3(SessionMeans(sink), n))
    return sink
