"""Lookup joins: enrich each event from a table (a dict) or a function, with a cache.

``LookupSpec`` emits ``(event, found)``, ``found`` being what the table holds for the
event's lookup key (``key(event)``, or the event itself), or ``None`` for ``how="left"``
when there is nothing (``how="inner"`` drops such events). With a function, answers are
cached in the state (an LRU of ``cache_size`` entries, each trusted for ``ttl`` seconds of
processing time), so a resumed run starts with a warm cache. A function answers None for
"not found", and that answer is cached too.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from riverbed._model.process import Processor, ProcessorSpec

__all__ = ["KeyedLookupSpec", "LookupSpec"]


@dataclass(frozen=True)
class LookupSpec(ProcessorSpec):
    """Enrich events from a table or a function (``Stream.lookup``)."""

    table: Any = None
    """A dict (JSON-able, to serialize with the flow), or None when ``fn`` is given."""
    fn: Any = None
    key: Any = None
    how: str = "inner"
    cache_size: int | None = 10_000
    ttl: float | None = None

    keyed: ClassVar[bool] = False
    emits_keyed: ClassVar[bool] = False
    operator: ClassVar[str] = "lookup"

    def create(self, state: dict[str, Any]) -> Processor:
        """A lookup over ``state["cache"]``: lookup key -> ``(answer, fetched at)``."""
        return _Lookup(self, state)


@dataclass(frozen=True)
class KeyedLookupSpec(LookupSpec):
    """On a keyed stream: looks up ``key(value)`` (default: the stream's key) and emits
    ``(key, (value, found))``."""

    keyed: ClassVar[bool] = True
    emits_keyed: ClassVar[bool] = True


class _Lookup:
    def __init__(self, spec: LookupSpec, state: dict[str, Any]) -> None:
        self._spec = spec
        self._cache: OrderedDict[Any, tuple[Any, float]] = state.setdefault("cache", OrderedDict())

    def _find(self, wanted: Any, now: float) -> Any:
        spec = self._spec
        if spec.fn is None:
            return spec.table.get(wanted)
        cache = self._cache
        hit = cache.get(wanted)
        if hit is not None and (spec.ttl is None or now - hit[1] < spec.ttl):
            cache.move_to_end(wanted)
            return hit[0]
        found = spec.fn(wanted)
        if spec.cache_size:
            cache[wanted] = (found, now)
            cache.move_to_end(wanted)
            while len(cache) > spec.cache_size:
                cache.popitem(last=False)
        return found

    def process(self, event: Any, now: float) -> Iterable[Any] | None:
        spec = self._spec
        if spec.keyed:
            stream_key, value = event
            found = self._find(spec.key(value) if spec.key else stream_key, now)
            out = (stream_key, (value, found))
        else:
            found = self._find(spec.key(event) if spec.key else event, now)
            out = (event, found)
        if found is None and spec.how == "inner":
            return None
        return (out,)

    def tick(self, now: float) -> Iterable[Any] | None:
        return None

    def finish(self) -> Iterable[Any] | None:
        return None
