"""Windows: what they look like to users, and the spec of a window stage.

A window stage groups events (per key on a ``KeyedStream``, all together on a ``Stream``)
into windows, aggregates each, and emits one result when the window closes:
``(key, (rb.Window(start, end), value))`` on a keyed stream, the ``(window, value)`` pair
alone on a plain one. Results before the close (early results) come as
``rb.Early(window, value)``, results re-emitted after late events as
``rb.Updated(window, value)``: both are named pairs too, so ``for key, (window, value) in
...`` reads every kind, and ``isinstance`` tells them apart. Final results are plain tuples,
not records: a window stage may emit a million a second, and building a tuple subclass
instance costs three times as much as a tuple.

Window kinds: ``rb.Tumbling(size)``, ``rb.Sliding(size, every)``, ``rb.Session(gap)``
(in seconds of event time, or of processing time without an ``event_time`` getter) and
``rb.CountWindow(size)`` (every ``size`` events of a key). The processors live in
``buckets`` (tumbling, sliding), ``sessions`` and here (count windows).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

from riverbed._errors import FlowDefinitionError
from riverbed._model.ops.aggregate import aggregator_of
from riverbed._model.process import Processor, ProcessorSpec

__all__ = [
    "CountWindow",
    "Early",
    "KeyedWindowSpec",
    "Session",
    "Sliding",
    "Tumbling",
    "Updated",
    "Window",
    "WindowSpec",
    "window_fields",
]


class Window(NamedTuple):
    """The span of a window: ``start <= time < end`` (for count windows, event numbers).

    >>> import riverbed as rb
    >>> rb.Window(0.0, 60.0).end
    60.0
    """

    start: float
    end: float


class Early(NamedTuple):
    """A window's result before it closes (``early_every=`` or ``early_interval=``); the
    final ``(window, value)`` follows.

    >>> import riverbed as rb
    >>> window, value = rb.Early(rb.Window(0.0, 60.0), 3)
    """

    window: Window
    value: Any


class Updated(NamedTuple):
    """A closed window's result again, with late events added (``late=UPDATE``); it
    replaces the earlier result.

    >>> import riverbed as rb
    >>> rb.Updated(rb.Window(0.0, 60.0), 4).value
    4
    """

    window: Window
    value: Any


for _shape in (Window, Early, Updated):
    _shape.__module__ = "riverbed"  # a NamedTuple body cannot set it


@dataclass(frozen=True)
class Tumbling:
    """Fixed, back-to-back windows of ``size`` seconds: ``[offset + k*size, ... + size)``.

    >>> import riverbed as rb
    >>> rb.Tumbling(60.0)
    Tumbling(size=60.0, offset=0.0)
    """

    size: float
    offset: float = 0.0

    __module__ = "riverbed"


@dataclass(frozen=True)
class Sliding:
    """Windows of ``size`` seconds starting every ``every`` seconds (they overlap when
    ``every < size``: an event is in ``size / every`` of them).

    >>> import riverbed as rb
    >>> rb.Sliding(60.0, every=10.0).every
    10.0
    """

    size: float
    every: float
    offset: float = 0.0

    __module__ = "riverbed"


@dataclass(frozen=True)
class Session:
    """Per-key bursts of activity: a window closes after ``gap`` seconds without events;
    an event that bridges two sessions merges them.

    >>> import riverbed as rb
    >>> rb.Session(gap=30.0)
    Session(gap=30.0)
    """

    gap: float

    __module__ = "riverbed"


@dataclass(frozen=True)
class CountWindow:
    """Every ``size`` events of a key, whatever their time (what is left is emitted at end
    of stream). ``Window(start, end)`` holds event numbers, counted from 0 per key.

    >>> import riverbed as rb
    >>> rb.CountWindow(100).size
    100
    """

    size: int

    __module__ = "riverbed"


def _positive(value: Any, what: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise FlowDefinitionError(f"{where}: {what} must be a finite number > 0, got {value!r}")
    return value


def window_fields(window: Any, where: str) -> dict[str, Any]:
    """The spec fields (``kind``, ``size``, ``every``, ``offset``) of a window kind."""
    if isinstance(window, Tumbling):
        size = _positive(window.size, "Tumbling size", where)
        return {"kind": "tumbling", "size": size, "every": None, "offset": window.offset}
    if isinstance(window, Sliding):
        size = _positive(window.size, "Sliding size", where)
        every = _positive(window.every, "Sliding every", where)
        if every > size:
            raise FlowDefinitionError(
                f"{where}: Sliding(size={size}, every={every}) would skip events between "
                "windows; every must be <= size"
            )
        return {"kind": "sliding", "size": size, "every": every, "offset": window.offset}
    if isinstance(window, Session):
        gap = _positive(window.gap, "Session gap", where)
        return {"kind": "session", "size": gap, "every": None, "offset": 0.0}
    if isinstance(window, CountWindow):
        if isinstance(window.size, bool) or not isinstance(window.size, int) or window.size < 1:
            raise FlowDefinitionError(f"{where}: CountWindow size must be an int >= 1")
        return {"kind": "count", "size": window.size, "every": None, "offset": 0.0}
    raise FlowDefinitionError(
        f"{where}: window must be rb.Tumbling(size), rb.Sliding(size, every), "
        f"rb.Session(gap) or rb.CountWindow(size); got {window!r:.60}"
    )


@dataclass(frozen=True)
class WindowSpec(ProcessorSpec):
    """A window stage over a plain stream: one set of windows for all events.

    Made by ``Stream.window``; see ``riverbed._model.ops.windows`` for the fields' meaning.
    """

    kind: str = "tumbling"
    """tumbling, sliding, session or count."""
    size: float = 1.0
    """Window length in seconds; the gap of sessions; events per count window."""
    every: float | None = None
    offset: float = 0.0
    agg: str = "count"
    agg_fn: Any = None
    agg_initial: Any = None
    agg_size: int = 0
    agg_seed: int = 0
    event_time: Any = None
    """A getter of each event's time (seconds or datetime); None for processing time."""
    max_delay: float = 0.0
    idle_timeout: float | None = None
    late: str = "drop"
    allowed_lateness: float | None = None
    early_every: int | None = None
    early_interval: float | None = None

    keyed: ClassVar[bool] = False
    emits_keyed: ClassVar[bool] = False
    operator: ClassVar[str] = "window"

    @property
    def tick(self) -> float | None:
        """Processing-time windows close on ticks; idle inputs and early results need
        them too."""
        every = []
        if self.kind != "count" and self.event_time is None:
            every.append(min(self.size, 1.0))
        if self.idle_timeout is not None:
            every.append(min(self.idle_timeout, 1.0))
        if self.early_interval is not None:
            every.append(self.early_interval)
        return min(every) if every else None

    def create(self, state: dict[str, Any]) -> Processor:
        """The processor for this window kind over ``state``."""
        if self.kind == "count":
            return CountProcessor(self, state)
        if self.kind == "session":
            from riverbed._model.ops.sessions import SessionProcessor

            return SessionProcessor(self, state)
        from riverbed._model.ops.buckets import BucketProcessor

        return BucketProcessor(self, state)


@dataclass(frozen=True)
class KeyedWindowSpec(WindowSpec):
    """A window stage over a keyed stream: windows per key. Made by ``KeyedStream.window``."""

    keyed: ClassVar[bool] = True
    emits_keyed: ClassVar[bool] = True


class CountProcessor:
    """Count windows: per key ``[window number, events so far, accumulator]``."""

    def __init__(self, spec: WindowSpec, state: dict[str, Any]) -> None:
        self._keyed = spec.keyed
        self._size = int(spec.size)
        self._early = spec.early_every
        self._agg = aggregator_of(spec)
        self._open: dict[Any, list[Any]] = state.setdefault("open", {})

    def _out(self, key: Any, entry: list[Any], *, early: bool = False) -> Any:
        start = entry[0] * self._size
        window = Window(start, start + entry[1])
        value = self._agg.result(entry[2])
        result = Early(window, value) if early else (window, value)
        return (key, result) if self._keyed else result

    def process(self, event: Any, now: float) -> Iterable[Any] | None:
        """Add the event to its key's window; emit it when full."""
        key, value = event if self._keyed else (None, event)
        entry = self._open.get(key)
        # User code first (aggregator, result), state after: see ``ops.buckets``.
        if entry is None or entry[1] == 0:
            index = entry[0] if entry is not None else 0
            entry = [index, 1, self._agg.start(value, f"{key!r}/{index}")]
        else:
            entry = [entry[0], entry[1] + 1, self._agg.step(entry[2], value)]
        out = None
        if entry[1] == self._size:
            out = (self._out(key, entry),)
            entry = [entry[0] + 1, 0, None]
        elif self._early is not None and entry[1] % self._early == 0:
            out = (self._out(key, entry, early=True),)
        self._open[key] = entry
        return out

    def tick(self, now: float) -> Iterable[Any] | None:
        """Count windows have no timers."""
        return None

    def finish(self) -> Iterable[Any] | None:
        """Emit every window not yet full."""
        return [self._out(key, entry) for key, entry in self._open.items() if entry[1]]
