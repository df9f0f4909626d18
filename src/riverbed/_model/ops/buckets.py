"""Tumbling and sliding windows: open windows bucketed by their end.

The watermark is one per stage, so every key's window ``[start, end)`` closes at the same
moment: the state keeps one bucket per window end (``open[end] = {key: accumulator}``) and
a heap of the ends, so closing is a heap pop and a walk over that bucket, and an event
costs one dict lookup per window it falls in. State (all plain, all picklable):

- ``clock``: ``[max event time, watermark, last arrival]`` (see ``ops.time``);
- ``open``: end -> {key: accumulator}; ``ends``: a heap of the keys of ``open``;
- ``closed`` / ``closed_ends``: the same for closed windows kept for late updates
  (``late=UPDATE`` only), until the watermark passes ``end + allowed_lateness``;
- ``early``: end -> {key: events} when ``early_every`` is set; ``dirty``: the
  (end, key) pairs changed since the last early tick when ``early_interval`` is set;
- ``late_dropped``: late events dropped.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterable
from itertools import repeat
from typing import Any

from riverbed._model.ops.aggregate import aggregator_of
from riverbed._model.ops.time import (
    ARRIVAL,
    MAX,
    WM,
    Late,
    as_seconds,
    new_clock,
    seconds_of,
    watermark,
)
from riverbed._model.ops.windows import Early, Updated, Window, WindowSpec

__all__ = ["BucketProcessor"]


class BucketProcessor:
    """Tumbling and sliding windows (see the module docstring)."""

    def __init__(self, spec: WindowSpec, state: dict[str, Any]) -> None:
        self._spec = spec
        self._keyed = spec.keyed
        self._size = spec.size
        self._every = spec.every
        self._offset = spec.offset
        self._getter = spec.event_time
        self._delay = spec.max_delay
        self._idle = spec.idle_timeout
        self._late = spec.late
        self._lateness = math.inf if spec.allowed_lateness is None else spec.allowed_lateness
        self._agg = aggregator_of(spec)
        self._clock: list[float] = state.setdefault("clock", new_clock())
        self._open: dict[float, dict[Any, Any]] = state.setdefault("open", {})
        self._ends: list[float] = state.setdefault("ends", [])
        self._closed: dict[float, dict[Any, Any]] = state.setdefault("closed", {})
        self._closed_ends: list[float] = state.setdefault("closed_ends", [])
        self._early: dict[float, dict[Any, int]] = state.setdefault("early", {})
        self._dirty: dict[tuple[float, Any], None] = state.setdefault("dirty", {})
        self._state = state
        state.setdefault("late_dropped", 0)
        fast = (
            spec.kind == "tumbling"
            and spec.agg == "count"
            and spec.early_every is None
            and spec.early_interval is None
            and spec.event_time is not None
        )
        if fast:
            self.process = self._counting()  # type: ignore[method-assign, assignment]

    # -- per event ------------------------------------------------------------------------

    def _ends_of(self, t: float) -> list[float]:
        size, every = self._size, self._every
        if every is None:
            return [t - (t - self._offset) % size + size]
        start = t - (t - self._offset) % every
        ends = []
        while start > t - size:
            ends.append(start + size)
            start -= every
        ends.reverse()  # in time order: late updates come out oldest window first
        return ends

    def _counting(self) -> Callable[[Any, float], Iterable[Any] | None]:
        """The tight path of keyed tumbling event-time windows that count (benchmark W3):
        a closure over everything it touches, so an event costs local lookups only."""
        getter, keyed = self._getter, self._keyed
        open_, ends, clock = self._open, self._ends, self._clock
        size, offset, delay = self._size, self._offset, self._delay
        track_idle = self._idle is not None
        push, late, close = heapq.heappush, self._late_event, self._close
        get = open_.get

        def process(event: Any, now: float) -> Iterable[Any] | None:
            if keyed:
                key, value = event
            else:
                key, value = None, event
            t = getter(value)
            try:
                end = t - (t - offset) % size + size
            except TypeError:  # a datetime (or a wrong type, which as_seconds names)
                t = as_seconds(t, getter)
                end = t - (t - offset) % size + size
            if end != end:  # NaN: t is NaN or +-inf, which as_seconds refuses
                as_seconds(t, getter)
            bucket = get(end)
            if bucket is None:
                if end <= clock[1]:
                    return late(key, value, t, [end])
                bucket = open_[end] = {}
                push(ends, end)
            bucket[key] = bucket.get(key, 0) + 1
            if track_idle:
                # Idle advancement works from the greatest time seen and the last arrival;
                # without an idle_timeout, nothing reads them and the watermark is enough.
                clock[2] = now
                if t > clock[0]:
                    clock[0] = t
            mark = t - delay
            if mark > clock[1]:
                clock[1] = mark
                if ends[0] <= mark:
                    return close(mark)
            return None

        return process

    def process(self, event: Any, now: float) -> Iterable[Any] | None:
        """Add the event to each of its windows; emit the windows the watermark closed."""
        key, value = event if self._keyed else (None, event)
        t = seconds_of(value, self._getter) if self._getter is not None else now
        clock = self._clock
        ends = self._ends_of(t)
        mark = clock[WM]
        live = [end for end in ends if end > mark]
        if not live:
            return self._late_event(key, value, t, ends)
        # A sliding window's event may be late for some of its windows only: those follow
        # the late policy (``_late_updates``), the open ones take it.
        closed = [end for end in ends if end <= mark] if len(live) < len(ends) else []
        if self._getter is None:
            mark = max(mark, now)
        else:
            mark = max(mark, max(t, clock[MAX]) - self._delay)
        # None of this event's windows closes at the new mark (each ends after t). User
        # code first (results, then aggregator steps), state after: a raising call leaves
        # the state as it was, so the stage's error policy can retry or skip the event.
        due = self._due(mark)
        try:
            updates = []
            for end in live:
                bucket = self._open.get(end)
                if bucket is None or key not in bucket:
                    salt = f"{key!r}/{end!r}" if self._agg.needs_salt else ""
                    updates.append((end, self._agg.start(value, salt)))
                else:
                    updates.append((end, self._agg.add(bucket[key], value)))
            late_updates = self._late_updates(key, value, closed) if closed else []
        except BaseException:
            for end, _ in due:
                heapq.heappush(self._ends, end)
            raise
        out: list[Any] = self._commit_late(key, late_updates)
        if len(late_updates) < len(closed):
            self._state["late_dropped"] += 1
        for end, acc in updates:
            bucket = self._open.get(end)
            if bucket is None:
                bucket = self._open[end] = {}
                heapq.heappush(self._ends, end)
            bucket[key] = acc
            self._after_add(end, key, acc, out)
        clock[ARRIVAL] = now
        if t > clock[MAX]:
            clock[MAX] = t
        clock[WM] = mark
        self._commit(due, mark, out)
        return out

    def _after_add(self, end: float, key: Any, acc: Any, out: list[Any]) -> None:
        every = self._spec.early_every
        if every is not None:
            counts = self._early.setdefault(end, {})
            seen = counts[key] = counts.get(key, 0) + 1
            if seen % every == 0:
                out.append(self._result(key, end, acc, early=True))
        if self._spec.early_interval is not None:
            self._dirty[(end, key)] = None

    def _result(
        self, key: Any, end: float, acc: Any, *, early: bool = False, late: bool = False
    ) -> Any:
        window = Window(end - self._size, end)
        value = self._agg.result(acc)
        if early:
            result: Any = Early(window, value)
        else:
            result = Updated(window, value) if late else (window, value)
        return (key, result) if self._keyed else result

    # -- late events ----------------------------------------------------------------------

    def _late_event(
        self, key: Any, value: Any, t: float, ends: list[float]
    ) -> Iterable[Any] | None:
        """An event all of whose windows have closed."""
        if self._late == "side":
            return ((key, Late(value, t)) if self._keyed else Late(value, t),)
        out = self._commit_late(key, self._late_updates(key, value, ends))
        if len(out) < len(ends):
            self._state["late_dropped"] += 1
        return out or None

    def _late_updates(
        self, key: Any, value: Any, ends: list[float]
    ) -> list[tuple[float, Any, Any]]:
        """What ``late=UPDATE`` makes of ``value`` in its closed windows ``ends``: for each
        one still kept (``allowed_lateness``), its end, new accumulator and ``Updated``
        result. User code only: changes no state."""
        if self._late != "update":
            return []
        mark = self._clock[WM]
        updates = []
        for end in ends:
            if end + self._lateness <= mark:
                continue  # gone: the event misses this window
            bucket = self._closed.get(end)
            if bucket is None or key not in bucket:
                salt = f"{key!r}/{end!r}" if self._agg.needs_salt else ""
                acc = self._agg.start(value, salt)
            else:
                acc = self._agg.add(bucket[key], value)
            updates.append((end, acc, self._result(key, end, acc, late=True)))
        return updates

    def _commit_late(self, key: Any, updates: list[tuple[float, Any, Any]]) -> list[Any]:
        """Keep ``_late_updates`` in the closed windows; return their results."""
        for end, acc, _ in updates:
            bucket = self._closed.get(end)
            if bucket is None:
                bucket = self._closed[end] = {}
                heapq.heappush(self._closed_ends, end)
            bucket[key] = acc
        return [result for _, _, result in updates]

    # -- closing --------------------------------------------------------------------------

    def _close(self, mark: float) -> list[Any]:
        out: list[Any] = []
        self._close_into(mark, out)
        return out

    def _close_into(self, mark: float, out: list[Any]) -> None:
        self._commit(self._due(mark), mark, out)

    def _due(self, mark: float) -> list[tuple[float, list[Any]]]:
        """The windows ending at or before ``mark``, taken off the heap, with their
        results; a raising ``result()`` puts them back and leaves the state as it was."""
        ends = self._ends
        if not ends or ends[0] > mark:
            return []
        due = []
        while ends and ends[0] <= mark:
            due.append(heapq.heappop(ends))
        try:
            return [(end, self._results(end, self._open[end])) for end in due]
        except BaseException:
            for end in due:
                heapq.heappush(ends, end)
            raise

    def _commit(self, due: list[tuple[float, list[Any]]], mark: float, out: list[Any]) -> None:
        for end, emitted in due:
            out.extend(emitted)
            bucket = self._open.pop(end)
            self._early.pop(end, None)
            if self._late == "update" and end + self._lateness > mark:
                self._closed[end] = bucket
                heapq.heappush(self._closed_ends, end)
        self._purge(mark)

    def _results(self, end: float, bucket: dict[Any, Any]) -> list[Any]:
        window = Window(end - self._size, end)
        result = self._agg.result
        if not self._keyed:
            return [(window, result(bucket[None]))]
        # zip builds the (key, (window, value)) pairs in C: a million a second is common.
        values = bucket.values() if self._agg.kind == "count" else map(result, bucket.values())
        return list(zip(bucket.keys(), zip(repeat(window), values, strict=False), strict=True))

    def _purge(self, mark: float) -> None:
        closed_ends = self._closed_ends
        while closed_ends and closed_ends[0] + self._lateness <= mark:
            del self._closed[heapq.heappop(closed_ends)]

    def tick(self, now: float) -> Iterable[Any] | None:
        """Move the watermark with processing time (idle inputs, processing-time windows);
        emit what closed, and early results when ``early_interval`` is set."""
        clock = self._clock
        if self._getter is None:
            clock[WM] = max(clock[WM], now)
        else:
            watermark(clock, now, self._delay, self._idle)
        out: list[Any] = []
        if self._spec.early_interval is not None:
            for end, key in self._dirty:
                bucket = self._open.get(end)
                if bucket is not None and key in bucket and end > clock[WM]:
                    out.append(self._result(key, end, bucket[key], early=True))
            self._dirty.clear()
        self._close_into(clock[WM], out)
        return out

    def finish(self) -> Iterable[Any] | None:
        """Every input ended: close every open window."""
        self._clock[WM] = math.inf
        self._dirty.clear()
        return self._close(math.inf)
