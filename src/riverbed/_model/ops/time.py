"""Time for processors: event time from a timestamp getter, the watermark, late events.

Every time-based processor keeps one *clock* in its state: a list ``[max_seen, watermark,
last_arrival]`` (a list, so that the processor can hold a reference to it and update it
without writing the state dict on every event). The watermark is per stage:

- with an ``event_time`` getter, ``watermark = max event time seen - max_delay`` (bounded
  out-of-orderness), never moving back;
- when no event has arrived for ``idle_timeout`` seconds of processing time, the watermark
  moves on with the processing clock from the last event time seen, so that a quiet input
  does not hold its windows open forever;
- without a getter (processing time), an event's time is ``now`` and the watermark is
  ``now``.

A *late* event is one whose windows the watermark has already closed; ``LatePolicy`` says
what becomes of it.
"""

from __future__ import annotations

import datetime
import enum
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ARRIVAL",
    "MAX",
    "WM",
    "Late",
    "LatePolicy",
    "as_seconds",
    "new_clock",
    "seconds_of",
    "watermark",
]

MAX, WM, ARRIVAL = 0, 1, 2
"""Indexes into a clock list: the greatest event time seen, the watermark, the processing
time of the last event."""


class LatePolicy(enum.Enum):
    """What a window operator does with an event that arrives after its window closed.

    >>> import riverbed as rb
    >>> rb.LatePolicy.SIDE.value
    'side'
    """

    DROP = "drop"
    """Drop it; the stage counts it (``state["late_dropped"]``)."""
    SIDE = "side"
    """Emit it downstream as ``rb.Late(value, time)`` (``(key, rb.Late(...))`` when keyed),
    beside the results, for the user to ``filter`` or ``route``."""
    UPDATE = "update"
    """Add it to its window (kept for ``allowed_lateness`` after closing) and emit the
    window's result again, with ``late=True``."""

    __module__ = "riverbed"


@dataclass(frozen=True, slots=True)
class Late:
    """An event that came after its window closed (``late=rb.LatePolicy.SIDE``).

    >>> import riverbed as rb
    >>> late = rb.Late({"t": 3}, 3.0)
    >>> isinstance(late, rb.Late), late.time
    (True, 3.0)
    """

    value: Any
    """The event as it arrived."""
    time: float
    """Its event time, in seconds."""

    __module__ = "riverbed"


def new_clock() -> list[float]:
    """A fresh clock: nothing seen, watermark at minus infinity."""
    return [-math.inf, -math.inf, -math.inf]


def seconds_of(value: Any, getter: Callable[[Any], Any]) -> float:
    """Event time as float seconds: what ``getter`` returned for ``value``, a number or a
    datetime (see ``as_seconds``)."""
    return as_seconds(getter(value), getter)


def as_seconds(raw: Any, getter: Callable[[Any], Any]) -> float:
    """``raw``, what the event_time ``getter`` returned, as float seconds.

    Raises TypeError for what is not a number or a datetime, and ValueError for NaN and
    +-inf: they are no point in time, and taken as one they would corrupt the order of
    windows and the watermark (every later event lost, or late). The stage's failure
    policy then decides what becomes of the event, as for any error of the stage.
    """
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        seconds = float(raw)
        if seconds - seconds == 0.0:  # NaN - NaN and inf - inf are NaN
            return seconds
        raise ValueError(
            # The engine adds the stage's name and the event when it records the error.
            f"the event_time getter {_name(getter)} returned {raw!r}, which is no point in "
            "time: an event time must be a finite number of seconds or a datetime. Fix "
            "the getter or filter such events out before the window; the stage's "
            "on_error= decides what becomes of this one (skip, dead_letter...)"
        )
    if isinstance(raw, datetime.datetime):
        # A naive datetime is read as local time by timestamp(); aware ones are exact.
        return raw.timestamp()
    raise TypeError(
        f"the event_time getter {_name(getter)} returned {type(raw).__name__} {raw!r:.40}; "
        "it must return seconds (int or float) or a datetime"
    )


def _name(getter: Callable[[Any], Any]) -> str:
    return str(getattr(getter, "__qualname__", getter))


def watermark(
    clock: list[float], now: float, max_delay: float, idle_timeout: float | None
) -> float:
    """Advance and return ``clock``'s watermark at processing time ``now``."""
    mark = clock[MAX] - max_delay
    if idle_timeout is not None and clock[MAX] > -math.inf:
        idle = now - clock[ARRIVAL]
        if idle >= idle_timeout:
            # Quiet for long enough: event time is taken to flow with processing time
            # from the last event, so windows a silent input holds open still close.
            mark += idle
    if mark > clock[WM]:
        clock[WM] = mark
    return clock[WM]
