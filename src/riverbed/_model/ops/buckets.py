"""Tumbling and sliding windows: open windows bucketed by their end.

The watermark is one per stage, so every key's window ``[start, end)`` closes at the same
moment: the state keeps one bucket per window end (``open[end] = {key: accumulator}``) and
a heap of the ends, so closing is a heap pop and a walk over that bucket, and an event
costs one dict lookup per window it falls in. A tumbling window is the sliding window
whose ``every`` is its ``size``: one path serves both, and every aggregate. State (all
plain, all picklable):

- ``clock``: ``[max event time, watermark, last arrival]`` (see ``ops.time``; the first
  and last are kept only with an ``idle_timeout``, the only reader of them);
- ``open``: end -> {key: accumulator}; ``ends``: a heap of the keys of ``open``; every
  window in ``open`` ends after the watermark (closing is immediate);
- ``closed`` / ``closed_ends``: the same for closed windows kept for late updates
  (``late=UPDATE`` only), until the watermark passes ``end + allowed_lateness``;
- ``early``: end -> {key: events} when ``early_every`` is set; ``dirty``: the
  (end, key) pairs changed since the last early tick when ``early_interval`` is set;
- ``late_dropped``: events that missed a window they belong to (see ``_late_event``).

Every call of user code (the event time getter, the results of the windows an event
closes, the aggregator) comes before any change of state, or is undone when a later one
raises, so an event whose call raises leaves no trace: the stage's policy can retry or
skip it exactly. (An accumulator that the raising call itself changed in place, an
instance of the user's class, stays as that call left it.)
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable
from itertools import repeat
from typing import Any

from riverbed._model.ops.aggregate import aggregator_of
from riverbed._model.ops.time import ARRIVAL, MAX, WM, Late, as_seconds, new_clock, watermark
from riverbed._model.ops.windows import Early, Updated, Window, WindowSpec

__all__ = ["BucketProcessor"]

_NEW: Any = object()
"""The window had no accumulator for the key (a ``dict.get`` default; in undo logs)."""
_NO_BUCKET: Any = object()
"""In undo logs: the window was not open before the event."""

_Step = tuple[float, Any, Any]
"""``(end, bucket or None when new, accumulator)``: what an event makes of one window."""


class BucketProcessor:
    """Tumbling and sliding windows (see the module docstring)."""

    def __init__(self, spec: WindowSpec, state: dict[str, Any]) -> None:
        self._spec = spec
        self._keyed = spec.keyed
        self._size = spec.size
        self._every = spec.every if spec.every is not None else spec.size
        self._offset = spec.offset
        self._getter = spec.event_time
        self._delay = spec.max_delay
        self._idle = spec.idle_timeout
        self._late = spec.late
        self._lateness = math.inf if spec.allowed_lateness is None else spec.allowed_lateness
        self._agg = agg = aggregator_of(spec)
        self._start, self._add, self._salted = agg.start, agg.add, agg.needs_salt
        self._in_place = agg.in_place
        self._early_every = spec.early_every
        self._tracked = spec.early_every is not None or spec.early_interval is not None
        self._clock: list[float] = state.setdefault("clock", new_clock())
        self._open: dict[float, dict[Any, Any]] = state.setdefault("open", {})
        self._ends: list[float] = state.setdefault("ends", [])
        self._closed: dict[float, dict[Any, Any]] = state.setdefault("closed", {})
        self._closed_ends: list[float] = state.setdefault("closed_ends", [])
        self._early: dict[float, dict[Any, int]] = state.setdefault("early", {})
        self._dirty: dict[tuple[float, Any], None] = state.setdefault("dirty", {})
        self._state = state
        state.setdefault("late_dropped", 0)

    # -- per event ------------------------------------------------------------------------

    def process(self, event: Any, now: float) -> Iterable[Any] | None:
        """Add the event to each of its windows; emit the windows the watermark closed.

        The path of every event, written for speed (a window stage may see a million
        events a second): locals over attributes, no list unless something is emitted.
        """
        key, value = event if self._keyed else (None, event)
        getter = self._getter
        if getter is None:  # processing time
            t = now
            mark = max(now, self._clock[WM])
        else:
            t = getter(value)
            if t.__class__ is not float or t - t != 0.0:  # not a finite float: check it
                t = as_seconds(t, getter)
            mark = t - self._delay
        start = t - (t - self._offset) % self._every  # of the last window holding t
        if start - self._every > t - self._size:  # more windows hold t (sliding)
            return self._add_many(key, value, t, start, mark, now)
        end = start + self._size
        bucket = self._open.get(end)
        clock = self._clock
        if bucket is None and end <= clock[WM]:
            return self._late_event(key, value, t, [end])
        # User code: the results of the windows the mark closes (the event's own ends
        # after t: not among them), then the aggregator.
        ends = self._ends
        due = self._due(mark) if mark > clock[WM] and ends and ends[0] <= mark else None
        acc = _NEW if bucket is None else bucket.get(key, _NEW)
        try:
            if acc is _NEW:
                acc = self._start(value, f"{key!r}/{end!r}" if self._salted else "")
            elif self._in_place:
                self._add(acc, value)
            else:
                acc = self._add(acc, value)
        except BaseException:
            self._restore(due)
            raise
        if due is not None or self._tracked:
            return self._keep(key, (t, mark, now), due or [], [(end, bucket, acc)])
        # Most events: nothing closes, nothing but the accumulator to keep.
        if bucket is None:
            bucket = self._open[end] = {}
            heapq.heappush(self._ends, end)
        bucket[key] = acc
        if mark > clock[WM]:
            clock[WM] = mark
        if self._idle is not None:
            self._arrived(t, now)
        return None

    def _add_many(
        self, key: Any, value: Any, t: float, start: float, mark: float, now: float
    ) -> Iterable[Any] | None:
        """``process`` for an event in several (sliding) windows, the last one starting
        at ``start``; those already closed follow the late policy.

        User code first: the results of the windows the event's mark closes (none of its
        own: they end after t; an event late for all its windows closes nothing), then
        the aggregator, then late updates. The event goes into each open window as the
        aggregator is called for it (a second pass would cost as much as the aggregator),
        and ``undo`` keeps what each window held before, so that a raising call of user
        code still leaves the state as it was."""
        ends = self._ends
        due = self._due(mark) if mark > self._clock[WM] and ends and ends[0] <= mark else []
        undo: list[Any] = []
        try:
            closed = self._add_to_open(key, value, t, start, undo)
            if not undo:
                return self._late_event(key, value, t, closed)
            # Late for some of its windows only: those follow the late policy.
            late = self._late_updates(key, value, closed) if closed else []
        except BaseException:
            self._undo(key, start, undo)
            self._restore(due)
            raise
        if not (due or closed or self._tracked):  # most events: the state is kept already
            clock = self._clock
            if mark > clock[WM]:
                clock[WM] = mark
            if self._idle is not None:
                self._arrived(t, now)
            return None
        steps: list[_Step] = []
        if self._tracked:  # for early results, oldest window first
            open_ = self._open
            for end in reversed(self._window_ends(start, len(undo))):
                steps.append((end, open_[end], open_[end][key]))
        return self._keep(key, (t, mark, now), due, steps, late, len(closed), stored=True)

    def _add_to_open(
        self, key: Any, value: Any, t: float, start: float, undo: list[Any]
    ) -> list[float]:
        """Add the event to each of its windows that is open, from the one starting at
        ``start`` back, appending to ``undo`` what each held before; return the ends of
        its windows already closed, oldest first."""
        size, every, wm, low = self._size, self._every, self._clock[WM], t - self._size
        open_, begin, add, salted = self._open, self._start, self._add, self._salted
        in_place = self._in_place
        closed = []
        while start > low:  # the windows holding t, newest first
            end = start + size
            start -= every
            bucket = open_.get(end)
            if bucket is None:
                if end <= wm:
                    closed.append(end)
                    continue
                acc = begin(value, f"{key!r}/{end!r}" if salted else "")
                open_[end] = {key: acc}
                heapq.heappush(self._ends, end)
                undo.append(_NO_BUCKET)
                continue
            acc = bucket.get(key, _NEW)
            if acc is _NEW:
                bucket[key] = begin(value, f"{key!r}/{end!r}" if salted else "")
            elif in_place:
                add(acc, value)
            else:
                bucket[key] = add(acc, value)
            undo.append(acc)
        closed.reverse()  # in time order: late updates, oldest window first
        return closed

    def _window_ends(self, start: float, count: int) -> list[float]:
        """The ends of ``count`` windows from the one starting at ``start`` back, newest
        first, in the arithmetic of ``_add_many``."""
        ends = []
        for _ in range(count):
            ends.append(start + self._size)
            start -= self._every
        return ends

    def _undo(self, key: Any, start: float, undo: list[Any]) -> None:
        """Put back what ``_add_many`` changed in the windows it went through."""
        for end, previous in zip(self._window_ends(start, len(undo)), undo, strict=True):
            if previous is _NO_BUCKET:
                del self._open[end]
                self._ends.remove(end)
                heapq.heapify(self._ends)
            elif previous is _NEW:
                del self._open[end][key]
            else:
                self._open[end][key] = previous

    def _keep(
        self,
        key: Any,
        at: tuple[float, float, float],
        due: list[tuple[float, list[Any]]],
        steps: list[_Step],
        late: list[tuple[float, Any, Any]] | None = None,
        closed: int = 0,
        *,
        stored: bool = False,
    ) -> Iterable[Any] | None:
        """After the user code of an event ran: move the watermark, keep the event's
        ``steps`` in its open windows (unless ``stored`` there already) and ``late`` in
        its closed ones, emit its early results and the ``due`` windows' results."""
        t, mark, now = at
        clock = self._clock
        if mark > clock[WM]:
            clock[WM] = mark
        if self._idle is not None:
            self._arrived(t, now)
        out: list[Any] = self._commit_late(key, late) if late else []
        if len(late or ()) < closed:
            self._state["late_dropped"] += 1
        for end, bucket, acc in () if stored else steps:
            if bucket is None:
                bucket = self._open[end] = {}
                heapq.heappush(self._ends, end)
            bucket[key] = acc
        if self._tracked:
            for end, _, acc in steps:
                self._after_add(end, key, acc, out)
        if due:
            self._commit(due, clock[WM], out)
        return out or None

    def _arrived(self, t: float, now: float) -> None:
        # Idle advancement works from the greatest time seen and the last arrival; without
        # an idle_timeout, nothing reads them and the watermark is enough.
        clock = self._clock
        clock[ARRIVAL] = now
        if t > clock[MAX]:
            clock[MAX] = t

    def _after_add(self, end: float, key: Any, acc: Any, out: list[Any]) -> None:
        every = self._early_every
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
        """An event all of whose windows have closed. Lateness is per window: an event
        that missed any of its windows (dropped, or past ``allowed_lateness``) counts once
        in ``late_dropped``, unless SIDE emitted it whole."""
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
                salt = f"{key!r}/{end!r}" if self._salted else ""
                acc = self._start(value, salt)
            else:
                acc = self._agg.step(bucket[key], value)
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

    def _restore(self, due: list[tuple[float, list[Any]]] | None) -> None:
        """Put what ``_due`` took back on the heap (a later call of user code raised)."""
        for end, _ in due or ():
            heapq.heappush(self._ends, end)

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
        if not self._keyed:
            return [(window, self._agg.result(bucket[None]))]
        # zip builds the (key, (window, value)) pairs in C: a million a second is common.
        values = self._agg.results(bucket.values())
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
