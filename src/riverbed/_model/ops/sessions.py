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
- ``sessions``: key -> list of sessions ``[start, last, values, accumulator, entry,
  arrivals]``, sorted by start: ``values`` are its events in arrival order, ``arrivals``
  their arrival numbers (plain ints beside them, not a tuple per event: a session keeps
  its events until it closes, and objects kept that long make the garbage collector's
  full collections frequent); ``entry`` numbers the session's one live entry in ``due``;
- ``due``: a heap of ``(time, entry, key)``: a session is looked at when the watermark
  reaches ``time``, its ``last + gap`` when the entry was pushed. A session that grew
  since is pushed again then (one heap operation per ``gap`` of a session's life, not one
  per event); entries of sessions merged away are skipped;
- ``seq``: ``[last number]``, which numbers arrivals and entries;
- ``closed``: with ``late=UPDATE``, key -> closed sessions kept for late events, and
  ``closed_due``, the heap of when each expires (``last + gap + allowed_lateness``);
- ``late_dropped``: late events dropped.

User code (the event time getter, the aggregator, ``result``) runs before any change of
state, so an event whose call raises leaves no trace.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable
from typing import Any

from riverbed._model.ops.aggregate import aggregator_of
from riverbed._model.ops.time import ARRIVAL, MAX, WM, Late, as_seconds, new_clock, watermark
from riverbed._model.ops.windows import Early, Updated, Window, WindowSpec

__all__ = ["SessionProcessor"]

_tuple_new = tuple.__new__

START, LAST, VALUES, ACC, ENTRY, ARRIVALS = range(6)
"""Indexes into a session list."""

_Due = tuple[list[tuple[Any, list[Any]]], list[Any], list[Any]]
"""What ``_take_due`` found: the ended ``(key, session)``s, their results, and the heap
entries it took for them."""


class SessionProcessor:
    """Session windows (see the module docstring)."""

    def __init__(self, spec: WindowSpec, state: dict[str, Any]) -> None:
        self._spec = spec
        self._keyed = spec.keyed
        self._gap = spec.size
        self._getter = spec.event_time
        self._delay = spec.max_delay
        self._idle = spec.idle_timeout
        self._early_every = spec.early_every
        self._update = spec.late == "update"
        self._agg = agg = aggregator_of(spec)
        self._add, self._in_place = agg.add, agg.in_place
        self._lateness = math.inf if spec.allowed_lateness is None else spec.allowed_lateness
        self._clock: list[float] = state.setdefault("clock", new_clock())
        self._sessions: dict[Any, list[list[Any]]] = state.setdefault("sessions", {})
        self._due: list[tuple[float, int, Any]] = state.setdefault("due", [])
        self._seq: list[int] = state.setdefault("seq", [0])
        self._closed: dict[Any, list[list[Any]]] = state.setdefault("closed", {})
        self._closed_due: list[tuple[float, int, Any]] = state.setdefault("closed_due", [])
        self._state = state
        state.setdefault("late_dropped", 0)
        if any(len(s) == 4 for ss in self._sessions.values() for s in ss):
            self._upgrade()
        if any(len(s) == 4 for ss in self._closed.values() for s in ss):
            self._upgrade_closed()

    def _upgrade(self) -> None:
        """Bring sessions checkpointed by an earlier riverbed (``[start, last, values,
        acc]``, a heap entry per event) to this layout: arrival numbers in the order the
        old merges kept, one heap entry per session."""
        self._due.clear()
        for key, sessions in self._sessions.items():
            for session in sessions:
                self._number(session)
                self._due.append((session[LAST] + self._gap, session[ENTRY], key))
        heapq.heapify(self._due)

    def _upgrade_closed(self) -> None:
        """``_upgrade`` for the closed sessions kept for late updates."""
        expiry = self._gap + self._lateness
        for key, sessions in self._closed.items():
            for session in sessions:
                self._number(session)
                heapq.heappush(self._closed_due, (session[LAST] + expiry, session[ENTRY], key))

    def _number(self, session: list[Any]) -> None:
        """Give a session of the earlier layout its entry and its events' arrivals."""
        seq = self._seq
        arrivals = list(range(seq[0] + 1, seq[0] + 1 + len(session[VALUES])))
        seq[0] += len(arrivals) + 1
        session.extend((seq[0], arrivals))

    def _result(
        self, key: Any, session: list[Any], *, early: bool = False, late: bool = False
    ) -> Any:
        # A Window without its Python __new__: one per session, as many as results.
        window = _tuple_new(Window, (session[START], session[LAST] + self._gap))
        value = self._agg.result(session[ACC])
        if early:
            result: Any = Early(window, value)
        else:
            result = Updated(window, value) if late else (window, value)
        return (key, result) if self._keyed else result

    def _salt(self, key: Any, start: float) -> str:
        return f"{key!r}/{start!r}" if self._agg.needs_salt else ""

    # -- per event ------------------------------------------------------------------------

    def process(self, event: Any, now: float) -> Iterable[Any] | None:
        """Add the event to its key's sessions (merging those it bridges); emit the
        sessions the watermark closed.

        The path of every event, written for speed: an event that extends its key's only
        session (most of them) goes to ``_extend``, the others to ``_join``."""
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
        sessions = self._sessions.get(key)
        if sessions is not None and len(sessions) == 1:
            session, gap = sessions[0], self._gap
            if session[START] - gap < t < session[LAST] + gap:
                return self._extend(key, value, t, mark, now, session)
        return self._join(key, value, t, mark, now, sessions)

    def _extend(
        self, key: Any, value: Any, t: float, mark: float, now: float, session: list[Any]
    ) -> Iterable[Any] | None:
        """``process`` for an event within ``gap`` of its key's only session: it costs its
        aggregator call, an append and a few compares."""
        # User code first: the results of the sessions the mark closes (not this one: it
        # ends after t), then the aggregator; the state after.
        clock, due = self._clock, self._due
        taken = own = None
        acc = session[ACC]
        try:
            if mark > clock[WM] and due and due[0][0] <= mark:
                taken, own = self._take_due_besides(mark, session)
            if self._in_place:
                self._add(acc, value)
            else:
                acc = self._add(acc, value)
        except BaseException:
            self._restore(taken, own)
            raise
        if taken is not None:
            return self._keep(key, value, t, (mark, now), [session], acc, taken, own)
        if mark > clock[WM]:
            clock[WM] = mark
        session[ACC] = acc
        if t > session[LAST]:
            session[LAST] = t
        elif t < session[START]:
            session[START] = t
        if own is not None:  # at its end now, so it comes due once per gap, not per event
            heapq.heappush(due, (session[LAST] + self._gap, own[1], key))
        seq = self._seq
        seq[0] += 1
        session[VALUES].append(value)
        session[ARRIVALS].append(seq[0])
        if self._idle is not None:
            self._arrived(t, now)
        every = self._early_every
        if every is not None and len(session[VALUES]) % every == 0:
            return [self._result(key, session, early=True)]
        return None

    def _take_due_besides(
        self, mark: float, session: list[Any]
    ) -> tuple[_Due | None, tuple[float, int, Any] | None]:
        """What ``_take_due`` finds at ``mark``, and ``session``'s own heap entry when it
        came due (often): taken off, to be pushed again at the session's new end. User
        code: on a raise, the heap is as it was."""
        due = self._due
        own = heapq.heappop(due) if due[0][1] == session[ENTRY] else None
        try:
            taken = self._take_due(mark) if due and due[0][0] <= mark else None
        except BaseException:
            self._restore(None, own)
            raise
        return taken, own

    def _join(
        self,
        key: Any,
        value: Any,
        t: float,
        mark: float,
        now: float,
        sessions: list[list[Any]] | None,
    ) -> Iterable[Any] | None:
        """``process`` for an event that starts a session, or touches several."""
        gap = self._gap
        touched = [s for s in sessions or () if s[START] - gap < t < s[LAST] + gap]
        if not touched and t + gap <= self._clock[WM]:
            return self._late_event(key, value, t)
        # User code first (the closing sessions' results, then the aggregator), state
        # after: the sessions this event touches end after t, so none closes at the mark.
        taken = self._take_due(mark) if mark > self._clock[WM] else None
        try:
            if not touched:
                acc = self._agg.start(value, f"{key!r}/{t!r}" if self._agg.needs_salt else "")
            elif len(touched) == 1:
                acc = self._agg.step(touched[0][ACC], value)
            else:  # a bridge: aggregate the merged sessions' events anew, in arrival order
                values = [v for _, v in _in_arrival_order(touched)]
                values.append(value)
                start = min(t, touched[0][START])
                acc = self._agg.over(values, self._salt(key, start))
        except BaseException:
            self._restore(taken)
            raise
        return self._keep(key, value, t, (mark, now), touched, acc, taken)

    def _keep(
        self,
        key: Any,
        value: Any,
        t: float,
        at: tuple[float, float],
        touched: list[list[Any]],
        acc: Any,
        taken: _Due | None,
        own: tuple[float, int, Any] | None = None,
    ) -> Iterable[Any] | None:
        """After the user code of an event: keep it in its session (new, extended or
        merged from ``touched``; ``own`` is the heap entry of the one it extends, if
        taken off), then forget the sessions ``taken`` closed."""
        mark, now = at
        clock, seq = self._clock, self._seq
        arrival = seq[0] = seq[0] + 1
        if len(touched) == 1:
            session = touched[0]
            session[START], session[LAST] = min(session[START], t), max(session[LAST], t)
            session[VALUES].append(value)
            session[ARRIVALS].append(arrival)
            session[ACC] = acc
            if own is not None:
                heapq.heappush(self._due, (session[LAST] + self._gap, own[1], key))
        else:
            session = self._open_session(key, t, touched, acc, (arrival, value))
        if mark > clock[WM]:
            clock[WM] = mark
        if self._idle is not None:
            self._arrived(t, now)
        out = self._commit(taken, clock[WM]) if taken is not None else []
        every = self._early_every
        if every is not None and len(session[VALUES]) % every == 0:
            out.append(self._result(key, session, early=True))
        return out or None

    def _open_session(
        self,
        key: Any,
        t: float,
        touched: list[list[Any]],
        acc: Any,
        event: tuple[int, Any],
    ) -> list[Any]:
        """A new session of ``event`` and the ``touched`` sessions it merges, in the key's
        list in place of them, with an entry in ``due``."""
        gap, number = self._gap, event[0]
        if touched:
            events = _in_arrival_order(touched)
            events.append(event)
            start = min(t, touched[0][START])
            last = max(t, *(s[LAST] for s in touched))
            values, arrivals = [v for _, v in events], [n for n, _ in events]
        else:
            values, arrivals, start, last = [event[1]], [number], t, t
        session = [start, last, values, acc, number, arrivals]
        others = self._sessions.get(key)
        if others is None:  # the key's only open session (most new ones)
            self._sessions[key] = [session]
        else:
            kept = [s for s in others if all(s is not x for x in touched)]
            kept.append(session)
            kept.sort(key=_start)
            self._sessions[key] = kept
        heapq.heappush(self._due, (last + gap, number, key))
        return session

    def _arrived(self, t: float, now: float) -> None:
        # Idle advancement works from the greatest time seen and the last arrival; without
        # an idle_timeout, nothing reads them and the watermark is enough.
        clock = self._clock
        clock[ARRIVAL] = now
        if t > clock[MAX]:
            clock[MAX] = t

    # -- late events ----------------------------------------------------------------------

    def _late_event(self, key: Any, value: Any, t: float) -> Iterable[Any] | None:
        """An event that touches no open session and whose own would have closed."""
        late = self._spec.late
        if late == "side":
            return ((key, Late(value, t)) if self._keyed else Late(value, t),)
        if late == "update" and t + self._gap + self._lateness > self._clock[WM]:
            return self._late_update(key, value, t)
        self._state["late_dropped"] += 1
        return None

    def _late_update(self, key: Any, value: Any, t: float) -> Iterable[Any] | None:
        """Add a late event to the closed session it falls in (or a new one), kept for
        late updates; emit that session again, as Updated."""
        gap, seq, mark = self._gap, self._seq, self._clock[WM]
        kept = mark - gap - self._lateness  # closed sessions whose last is past it are gone
        closed = self._closed.get(key, [])
        session = next(
            (s for s in closed if s[START] - gap < t < s[LAST] + gap and s[LAST] > kept), None
        )
        if session is None:
            acc = self._agg.start(value, self._salt(key, t))
            grown = [t, t, [], acc, seq[0] + 1, []]
        else:
            acc = self._agg.step(session[ACC], value)
            grown = [min(session[START], t), max(session[LAST], t), [], acc, session[ENTRY], []]
        out = (self._result(key, grown, late=True),)  # user code, before the state changes
        self._purge(mark)  # the closed sessions the watermark passed are forgotten
        closed = self._closed.get(key, [])
        seq[0] += 1
        if session is None:
            session = grown
            self._closed[key] = [*closed, session]
            heapq.heappush(self._closed_due, (t + gap + self._lateness, seq[0], key))
        session[START], session[LAST], session[ACC] = grown[START], grown[LAST], acc
        session[VALUES].append(value)
        session[ARRIVALS].append(seq[0])
        return out

    # -- closing --------------------------------------------------------------------------

    def _take_due(self, mark: float) -> _Due | None:
        """The sessions that ended at or before ``mark``, with their results (user code).

        Their heap entries go back if a ``result()`` raises, and nothing else changes;
        the entry of a session that grew since it was pushed is pushed again at once
        (``last + gap``), which changes nothing a result could see. None if none ended
        (most calls: an entry came due for a session that grew since)."""
        due, gap = self._due, self._gap
        ended: list[tuple[Any, list[Any]]] = []
        popped: list[Any] = []
        out: list[Any] = []
        try:
            while due and due[0][0] <= mark:
                _, number, key = due[0]
                for session in self._sessions.get(key, ()):  # mostly one
                    if session[ENTRY] == number:
                        break
                else:  # merged into another session: its entry is that one's
                    heapq.heappop(due)
                    continue
                if session[LAST] + gap > mark:  # it grew since: look again at its end
                    heapq.heapreplace(due, (session[LAST] + gap, number, key))
                    continue
                popped.append(heapq.heappop(due))
                out.append(self._result(key, session))
                ended.append((key, session))
        except BaseException:
            for entry in popped:
                heapq.heappush(due, entry)
            raise
        return (ended, out, popped) if ended else None

    def _restore(self, taken: _Due | None, own: Any = None) -> None:
        """Put the entries ``_take_due`` took back, and ``own`` (the heap entry of the
        session an event extends), when a later call of user code raised."""
        for entry in [*(taken[2] if taken is not None else ()), *((own,) if own else ())]:
            heapq.heappush(self._due, entry)

    def _commit(self, taken: _Due, mark: float) -> list[Any]:
        """Forget the sessions ``_take_due`` found ended (keeping them for late updates);
        return their results."""
        ended, out, _ = taken
        gap = self._gap
        sessions = self._sessions
        for key, session in ended:
            of_key = sessions[key]
            if len(of_key) == 1:  # mostly
                del sessions[key]
            else:
                sessions[key] = [s for s in of_key if s is not session]
            if self._update and session[LAST] + gap + self._lateness > mark:
                self._closed.setdefault(key, []).append(session)
                expiry = session[LAST] + gap + self._lateness
                heapq.heappush(self._closed_due, (expiry, session[ENTRY], key))
        if self._update:
            self._purge(mark)
        return out

    def _purge(self, mark: float) -> None:
        """Forget the closed sessions the watermark passed ``allowed_lateness`` after."""
        heap, gap, lateness = self._closed_due, self._gap, self._lateness
        while heap and heap[0][0] <= mark:
            _, number, key = heapq.heappop(heap)
            closed = self._closed.get(key, [])
            session = _with_entry(closed, number)
            if session is None:
                continue
            if session[LAST] + gap + lateness > mark:  # a late event extended it
                heapq.heappush(heap, (session[LAST] + gap + lateness, number, key))
                continue
            rest = [s for s in closed if s is not session]
            if rest:
                self._closed[key] = rest
            else:
                del self._closed[key]

    def _close(self, mark: float) -> list[Any]:
        taken = self._take_due(mark)
        if taken is not None:
            return self._commit(taken, mark)
        if self._update:
            self._purge(mark)
        return []

    def tick(self, now: float) -> Iterable[Any] | None:
        """Move the watermark with processing time; emit the sessions that closed."""
        clock = self._clock
        if self._getter is None:
            clock[WM] = max(clock[WM], now)
        else:
            watermark(clock, now, self._delay, self._idle)
        return self._close(clock[WM])

    def finish(self) -> Iterable[Any] | None:
        """Every input ended: close every session."""
        self._clock[WM] = math.inf
        return self._close(math.inf)


def _start(session: list[Any]) -> Any:
    return session[START]


def _with_entry(sessions: Iterable[list[Any]], number: int) -> list[Any] | None:
    """The session of ``sessions`` whose heap entry is ``number``, if any."""
    for session in sessions:
        if session[ENTRY] == number:
            return session
    return None


def _in_arrival_order(sessions: list[list[Any]]) -> list[tuple[int, Any]]:
    """The ``(arrival, value)`` events of ``sessions``, interleaved as they arrived (each
    session's are in arrival order already; arrival numbers are unique, so the values are
    never compared)."""
    return list(heapq.merge(*(zip(s[ARRIVALS], s[VALUES], strict=True) for s in sessions)))
