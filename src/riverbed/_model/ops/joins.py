"""Joins of keyed streams: within a window, or as a rendezvous; and lookups in a table.

Joining several streams needs no engine support: the builder tags each input's values with
the input's index (``tag_0``... below: importable functions, so the flow still serializes),
merges the tagged streams, and feeds them to one processor, which sees ``(key, (index,
value))``.

- ``JoinSpec``: a window (tumbling or session, event or processing time) per key that
  collects each input's values; when it closes, it emits ``(key, row)`` for each row of
  the join, a tuple with one value per input: every combination for ``inner``, ``None``
  for a missing input where ``left`` (input 0 must be there) or ``outer`` allow it.
- ``RendezvousSpec``: per key, a queue per input; as soon as every input has a value for a
  key, emit ``(key, row)`` of the oldest of each (stream order). Orphans (keys still
  waiting for some input) are kept forever, at most ``max_pending`` keys (the oldest
  evicted), or ``expire_after`` seconds of processing time.
"""

from __future__ import annotations

import collections
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from riverbed._model.ops.windows import KeyedWindowSpec
from riverbed._model.process import Processor, ProcessorSpec

__all__ = [
    "ExpireAfter",
    "JoinSpec",
    "MaxPending",
    "RendezvousSpec",
    "WaitForever",
    "join_rows",
    "tag_of",
]


def tag_0(pair: tuple[Any, Any]) -> tuple[Any, Any]:
    """Tag a keyed event as coming from join input 0."""
    return (pair[0], (0, pair[1]))


def tag_1(pair: tuple[Any, Any]) -> tuple[Any, Any]:
    """Tag a keyed event as coming from join input 1."""
    return (pair[0], (1, pair[1]))


def tag_2(pair: tuple[Any, Any]) -> tuple[Any, Any]:
    """Tag a keyed event as coming from join input 2."""
    return (pair[0], (2, pair[1]))


def tag_3(pair: tuple[Any, Any]) -> tuple[Any, Any]:
    """Tag a keyed event as coming from join input 3."""
    return (pair[0], (3, pair[1]))


def tag_4(pair: tuple[Any, Any]) -> tuple[Any, Any]:
    """Tag a keyed event as coming from join input 4."""
    return (pair[0], (4, pair[1]))


def tag_5(pair: tuple[Any, Any]) -> tuple[Any, Any]:
    """Tag a keyed event as coming from join input 5."""
    return (pair[0], (5, pair[1]))


def tag_6(pair: tuple[Any, Any]) -> tuple[Any, Any]:
    """Tag a keyed event as coming from join input 6."""
    return (pair[0], (6, pair[1]))


def tag_7(pair: tuple[Any, Any]) -> tuple[Any, Any]:
    """Tag a keyed event as coming from join input 7."""
    return (pair[0], (7, pair[1]))


_TAGS = (tag_0, tag_1, tag_2, tag_3, tag_4, tag_5, tag_6, tag_7)
MAX_INPUTS = len(_TAGS)


def tag_of(index: int) -> Callable[[tuple[Any, Any]], tuple[Any, Any]]:
    """The tagging function of join input ``index`` (0 to 7)."""
    return _TAGS[index]


@dataclass(frozen=True)
class WaitForever:
    """Rendezvous orphan policy: keep a key waiting for its other inputs forever.

    >>> import riverbed as rb
    >>> rb.WaitForever()
    WaitForever()
    """

    __module__ = "riverbed"


@dataclass(frozen=True)
class MaxPending:
    """Rendezvous orphan policy: keep at most ``keys`` keys waiting; a new one evicts the
    oldest (counted in the stage's ``state["orphans_dropped"]``).

    >>> import riverbed as rb
    >>> rb.MaxPending(10_000).keys
    10000
    """

    keys: int

    __module__ = "riverbed"


@dataclass(frozen=True)
class ExpireAfter:
    """Rendezvous orphan policy: forget a key that has waited ``seconds`` of processing
    time since its first pending value.

    >>> import riverbed as rb
    >>> rb.ExpireAfter(60.0).seconds
    60.0
    """

    seconds: float

    __module__ = "riverbed"


def join_rows(lists: list[list[Any]], how: str) -> list[tuple[Any, ...]]:
    """The rows of a join of one key in one window: ``lists[i]`` holds input i's values."""
    if how == "inner":
        if not all(lists):
            return []
        return list(itertools.product(*lists))
    if how == "left" and not lists[0]:
        return []
    return list(itertools.product(*(values or [None] for values in lists)))


@dataclass(frozen=True)
class JoinSpec(KeyedWindowSpec):
    """A window join of ``inputs`` tagged streams (``KeyedStream.join``)."""

    inputs: int = 2
    how: str = "inner"

    operator: ClassVar[str] = "join"

    def create(self, state: dict[str, Any]) -> Processor:
        """A collect-window processor whose results are expanded into join rows."""
        return _Rows(super().create(state), self.event_time)


class _Rows:
    """Wraps a window processor whose accumulators are the tagged values of a window:
    reads event time from the untagged value, and emits one ``(key, row)`` per row."""

    def __init__(self, inner: Any, getter: Any) -> None:
        if getter is not None:
            inner._getter = _untagged(getter)
        self._inner = inner
        self._spec: JoinSpec = inner._spec

    def _rows(self, emitted: Iterable[Any] | None) -> list[Any]:
        out: list[Any] = []
        n, how = self._spec.inputs, self._spec.how
        for key, (_, tagged) in emitted or ():
            lists: list[list[Any]] = [[] for _ in range(n)]
            for index, value in tagged:
                lists[index].append(value)
            out.extend((key, row) for row in join_rows(lists, how))
        return out

    def process(self, event: Any, now: float) -> Iterable[Any] | None:
        return self._rows(self._inner.process(event, now))

    def tick(self, now: float) -> Iterable[Any] | None:
        return self._rows(self._inner.tick(now))

    def finish(self) -> Iterable[Any] | None:
        return self._rows(self._inner.finish())


class _untagged:  # noqa: N801 - used like a function
    """``getter`` applied to the value inside ``(index, value)``."""

    def __init__(self, getter: Callable[[Any], Any]) -> None:
        self.getter = getter
        self.__qualname__ = getattr(getter, "__qualname__", "event_time")

    def __call__(self, tagged: tuple[int, Any]) -> Any:
        return self.getter(tagged[1])


@dataclass(frozen=True)
class RendezvousSpec(ProcessorSpec):
    """A rendezvous of ``inputs`` tagged streams (``KeyedStream.rendezvous``)."""

    inputs: int = 2
    max_pending: int | None = None
    expire_after: float | None = None

    keyed: ClassVar[bool] = True
    emits_keyed: ClassVar[bool] = True
    operator: ClassVar[str] = "rendezvous"

    @property
    def tick(self) -> float | None:
        """Expiry is checked on ticks, four times per ``expire_after``."""
        return None if self.expire_after is None else self.expire_after / 4

    def create(self, state: dict[str, Any]) -> Processor:
        """A rendezvous over ``state["pending"]``: key -> ``[since, [queue per input]]``."""
        return _Rendezvous(self, state)


class _Rendezvous:
    def __init__(self, spec: RendezvousSpec, state: dict[str, Any]) -> None:
        self._n = spec.inputs
        self._max = spec.max_pending
        self._expire = spec.expire_after
        self._pending: dict[Any, list[Any]] = state.setdefault("pending", {})
        self._state = state
        state.setdefault("orphans_dropped", 0)

    def process(self, event: Any, now: float) -> Iterable[Any] | None:
        key, (index, value) = event
        pending = self._pending
        out: list[Any] = list(self._expired(now)) if self._expire is not None else []
        entry = pending.get(key)
        if entry is None:
            entry = pending[key] = [now, [collections.deque() for _ in range(self._n)]]
        queues = entry[1]
        queues[index].append(value)
        if all(queues):  # deques: one input may queue many values while another has none
            out.append((key, tuple(queue.popleft() for queue in queues)))
            del pending[key]
            if any(queues):  # leftovers wait anew, as the newest pending key
                pending[key] = [now, queues]
        if self._max is not None:
            while len(pending) > self._max:
                del pending[next(iter(pending))]
                self._state["orphans_dropped"] += 1
        return out

    def _expired(self, now: float) -> list[Any]:
        assert self._expire is not None
        pending = self._pending
        # Keys are in the order they started waiting: the expired ones come first.
        while pending:
            key = next(iter(pending))
            if now - pending[key][0] < self._expire:
                break
            del pending[key]
            self._state["orphans_dropped"] += 1
        return []

    def tick(self, now: float) -> Iterable[Any] | None:
        return self._expired(now) if self._expire is not None else None

    def finish(self) -> Iterable[Any] | None:
        return None
