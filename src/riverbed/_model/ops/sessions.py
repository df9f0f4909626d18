"""Session windows: per key, bursts of events separated by more than ``gap`` seconds.

An event at time ``t`` joins every open session of its key that it comes within ``gap``
of (``start - gap < t < last + gap``), merging them into one; a session closes when the
watermark reaches ``last + gap``, and its window is ``[start, last + gap)``. A session
aggregates as events come (so a raising aggregator fails on the event that caused it) and
also keeps its events, each with its arrival number: a merge aggregates the merged
sessions' events anew in arrival order, which works for every aggregator (folds, Min/Max's
first of equals, reservoirs and user classes see what they would have seen without a
merge). State:

- ``clock``: see ``ops.time``;
- ``sessions``: key -> list of ``[start, last, events, accumulator]``, sorted by start,
  ``events`` being ``(arrival number, value)`` pairs in arrival order;
- ``due``: a heap of ``(last + gap, sequence number, key)``, some stale (a session that
  grew since), checked against ``sessions`` when popped; ``seq``: ``[last number]``, which
  numbers heap entries and arrivals;
- ``closed``: with ``late=UPDATE``, key -> closed sessions kept for late events;
- ``late_dropped``.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable
from typing import Any

from riverbed._model.ops.aggregate import aggregator_of
from riverbed._model.ops.time import ARRIVAL, MAX, WM, Late, new_clock, seconds_of, watermark
from riverbed._model.ops.windows import Early, Updated, Window, WindowSpec

__all__ = ["SessionProcessor"]

_Due = tuple[dict[Any, list[list[Any]]], list[tuple[float, int, Any]]]
"""What ``_take_due`` found: the ended sessions by key, and the heap entries it took."""


class SessionProcessor:
    """Session windows (see the module docstring)."""

    def __init__(self, spec: WindowSpec, state: dict[str, Any]) -> None:
        self._spec = spec
        self._keyed = spec.keyed
        self._gap = spec.size
        self._getter = spec.event_time
        self._agg = aggregator_of(spec)
        self._lateness = math.inf if spec.allowed_lateness is None else spec.allowed_lateness
        self._clock: list[float] = state.setdefault("clock", new_clock())
        self._sessions: dict[Any, list[list[Any]]] = state.setdefault("sessions", {})
        self._due: list[tuple[float, int, Any]] = state.setdefault("due", [])
        self._seq: list[int] = state.setdefault("seq", [0])
        self._closed: dict[Any, list[list[Any]]] = state.setdefault("closed", {})
        self._state = state
        state.setdefault("late_dropped", 0)

    def _result(
        self, key: Any, session: list[Any], *, early: bool = False, late: bool = False
    ) -> Any:
        start, last, _, acc = session
        window = Window(start, last + self._gap)
        value = self._agg.result(acc)
        if early:
            result: Any = Early(window, value)
        else:
            result = Updated(window, value) if late else (window, value)
        return (key, result) if self._keyed else result

    def _salt(self, key: Any, start: float) -> str:
        return f"{key!r}/{start!r}" if self._agg.needs_salt else ""

    def process(self, event: Any, now: float) -> Iterable[Any] | None:
        """Add the event to its key's sessions (merging those it bridges); emit the
        sessions the watermark closed."""
        key, value = event if self._keyed else (None, event)
        getter = self._getter
        t = seconds_of(value, getter) if getter is not None else now
        gap, clock = self._gap, self._clock
        touched = [s for s in self._sessions.get(key, ()) if s[0] - gap < t < s[1] + gap]
        if not touched and t + gap <= clock[WM]:
            return self._late_event(key, value, t)
        if getter is None:
            mark = max(clock[WM], now)
        else:
            mark = max(clock[WM], max(t, clock[MAX]) - self._spec.max_delay)
        # User code first (the closing sessions' results, then the aggregator), state
        # after, so a raising call leaves the state as it was. The sessions this event
        # touches end after t, so none of them closes at the new mark.
        due, out = self._take_due(mark)
        arrival = self._seq[0] + 1
        merged = _in_arrival_order(touched) if len(touched) > 1 else []
        merged.append((arrival, value))
        try:
            start = min([t, *(s[0] for s in touched)])
            if not touched:
                acc = self._agg.start(value, self._salt(key, t))
            elif len(touched) == 1:
                acc = self._agg.add(touched[0][3], value)
            else:  # a bridge: aggregate the merged sessions' events anew
                acc = self._agg.over([v for _, v in merged], self._salt(key, start))
        except BaseException:
            self._restore(due)
            raise
        self._commit(due, mark)
        self._seq[0] = arrival
        if len(touched) == 1:
            session = touched[0]
            session[0], session[1], session[3] = start, max(session[1], t), acc
            session[2].append((arrival, value))
        else:
            session = [start, max([t, *(s[1] for s in touched)]), merged, acc]
            kept = [s for s in self._sessions.get(key, ()) if all(s is not x for x in touched)]
            kept.append(session)
            kept.sort(key=_start)
            self._sessions[key] = kept
        heapq.heappush(self._due, (session[1] + gap, arrival, key))
        clock[ARRIVAL] = now
        if t > clock[MAX]:
            clock[MAX] = t
        clock[WM] = mark
        every = self._spec.early_every
        if every is not None and len(session[2]) % every == 0:
            out.append(self._result(key, session, early=True))
        return out

    def _late_event(self, key: Any, value: Any, t: float) -> Iterable[Any] | None:
        late = self._spec.late
        if late == "side":
            return ((key, Late(value, t)) if self._keyed else Late(value, t),)
        if late == "update" and t + self._gap + self._lateness > self._clock[WM]:
            gap = self._gap
            closed = self._closed.setdefault(key, [])
            arrival = self._seq[0] + 1
            for session in closed:
                if session[0] - gap < t < session[1] + gap:
                    session[3] = self._agg.add(session[3], value)
                    self._seq[0] = arrival
                    session[0], session[1] = min(session[0], t), max(session[1], t)
                    session[2].append((arrival, value))
                    return (self._result(key, session, late=True),)
            acc = self._agg.start(value, self._salt(key, t))
            self._seq[0] = arrival
            session = [t, t, [(arrival, value)], acc]
            closed.append(session)
            return (self._result(key, session, late=True),)
        self._state["late_dropped"] += 1
        return None

    def _take_due(self, mark: float) -> tuple[_Due, list[Any]]:
        """The sessions ending at or before ``mark``, by key (with the heap entries taken
        for them), and their results; a raising ``result()`` puts the entries back."""
        due, gap = self._due, self._gap
        ended: dict[Any, Any] = {}
        out: list[Any] = []
        popped: list[tuple[float, int, Any]] = []
        try:
            while due and due[0][0] <= mark:
                entry = heapq.heappop(due)
                popped.append(entry)
                key = entry[2]
                if key in ended:
                    continue
                done = [s for s in self._sessions.get(key, ()) if s[1] + gap <= mark]
                ended[key] = done
                out.extend(self._result(key, s) for s in done)
        except BaseException:
            for entry in popped:
                heapq.heappush(due, entry)
            raise
        return (ended, popped), out

    def _restore(self, due: _Due) -> None:
        for entry in due[1]:
            heapq.heappush(self._due, entry)

    def _commit(self, due: _Due, mark: float) -> None:
        """Forget the sessions ``_take_due`` found (keeping them for late updates)."""
        gap = self._gap
        for key, done in due[0].items():
            if not done:
                continue
            rest = [s for s in self._sessions[key] if all(s is not d for d in done)]
            if rest:
                self._sessions[key] = rest
            else:
                del self._sessions[key]
            if self._spec.late == "update":
                self._closed.setdefault(key, []).extend(done)
        if self._spec.late == "update":
            for key in list(self._closed):
                alive = [s for s in self._closed[key] if s[1] + gap + self._lateness > mark]
                if alive:
                    self._closed[key] = alive
                else:
                    del self._closed[key]

    def _close(self, mark: float) -> list[Any]:
        due, out = self._take_due(mark)
        self._commit(due, mark)
        return out

    def tick(self, now: float) -> Iterable[Any] | None:
        """Move the watermark with processing time; emit the sessions that closed."""
        clock = self._clock
        if self._spec.event_time is None:
            clock[WM] = max(clock[WM], now)
        else:
            watermark(clock, now, self._spec.max_delay, self._spec.idle_timeout)
        return self._close(clock[WM])

    def finish(self) -> Iterable[Any] | None:
        """Every input ended: close every session."""
        self._clock[WM] = math.inf
        return self._close(math.inf)


def _start(session: list[Any]) -> Any:
    return session[0]


def _in_arrival_order(sessions: list[list[Any]]) -> list[tuple[int, Any]]:
    """The ``(arrival, value)`` events of ``sessions``, interleaved as they arrived (each
    session's are in arrival order already; arrival numbers are unique, so the values are
    never compared)."""
    return list(heapq.merge(*(session[2] for session in sessions)))
