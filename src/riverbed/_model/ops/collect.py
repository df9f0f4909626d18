"""Collecting and grouping: batches by size or time, groups until a key change or the end.

- ``CollectSpec``: lists of at most ``max_size`` events, flushed also when the oldest has
  waited ``max_wait`` seconds of processing time; per key on a keyed stream.
- ``GroupSpec``: per key lists flushed when the key changes (consecutive events of one key
  form a group, as ``StreamGrouper`` did), or all at the end of the stream. Grouping until
  the end of a window is a window with ``rb.Collect()``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from riverbed._model.process import Processor, ProcessorSpec

__all__ = ["CollectSpec", "GroupSpec", "KeyedCollectSpec"]


@dataclass(frozen=True)
class CollectSpec(ProcessorSpec):
    """Batches of events as lists (``Stream.collect``)."""

    max_size: int | None = None
    max_wait: float | None = None

    keyed: ClassVar[bool] = False
    emits_keyed: ClassVar[bool] = False
    operator: ClassVar[str] = "collect"

    @property
    def tick(self) -> float | None:
        """Check the oldest batch's age twice per ``max_wait``."""
        return None if self.max_wait is None else self.max_wait / 2

    def create(self, state: dict[str, Any]) -> Processor:
        """A collector over ``state["open"]``: key -> ``[opened at, events]``."""
        return _Collector(self, state)


@dataclass(frozen=True)
class KeyedCollectSpec(CollectSpec):
    """Batches per key, emitted as ``(key, list)`` (``KeyedStream.collect``)."""

    keyed: ClassVar[bool] = True
    emits_keyed: ClassVar[bool] = True


class _Collector:
    def __init__(self, spec: CollectSpec, state: dict[str, Any]) -> None:
        self._keyed = spec.keyed
        self._size = spec.max_size
        self._wait = spec.max_wait
        self._open: dict[Any, list[Any]] = state.setdefault("open", {})

    def _out(self, key: Any, events: list[Any]) -> Any:
        return (key, events) if self._keyed else events

    def process(self, event: Any, now: float) -> Iterable[Any] | None:
        key, value = event if self._keyed else (None, event)
        out = []
        entry = self._open.get(key)
        if entry is not None and self._wait is not None and now - entry[0] >= self._wait:
            out.append(self._out(key, entry[1]))
            entry = None
        if entry is None:
            entry = self._open[key] = [now, []]
        entry[1].append(value)
        if self._size is not None and len(entry[1]) >= self._size:
            out.append(self._out(key, entry[1]))
            del self._open[key]
        return out

    def tick(self, now: float) -> Iterable[Any] | None:
        if self._wait is None:
            return None
        wait = self._wait
        due = [key for key, (opened, _) in self._open.items() if now - opened >= wait]
        return [self._out(key, self._open.pop(key)[1]) for key in due]

    def finish(self) -> Iterable[Any] | None:
        out = [self._out(key, events) for key, (_, events) in self._open.items()]
        self._open.clear()
        return out


@dataclass(frozen=True)
class GroupSpec(ProcessorSpec):
    """Per key lists of consecutive events (``KeyedStream.group``)."""

    until: str = "key_change"
    """``key_change``: emit a key's group when an event of another key comes; ``end``:
    emit every key's group at the end of the stream."""

    keyed: ClassVar[bool] = True
    emits_keyed: ClassVar[bool] = True
    operator: ClassVar[str] = "group"

    def create(self, state: dict[str, Any]) -> Processor:
        """A grouper over ``state["groups"]``: key -> events, in first-seen order."""
        return _Grouper(self, state)


class _Grouper:
    def __init__(self, spec: GroupSpec, state: dict[str, Any]) -> None:
        self._on_change = spec.until == "key_change"
        self._groups: dict[Any, list[Any]] = state.setdefault("groups", {})

    def process(self, event: Any, now: float) -> Iterable[Any] | None:
        key, value = event
        groups = self._groups
        if self._on_change and groups and key not in groups:
            out = list(groups.items())
            groups.clear()
            groups[key] = [value]
            return out
        groups.setdefault(key, []).append(value)
        return None

    def tick(self, now: float) -> Iterable[Any] | None:
        return None

    def finish(self) -> Iterable[Any] | None:
        out = list(self._groups.items())
        self._groups.clear()
        return out
