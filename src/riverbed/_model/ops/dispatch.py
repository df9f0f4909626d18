"""Match routing: one stage holding a set of handlers that route events among themselves.

``Stream.dispatch(*handlers)`` adds one processor stage. Each handler says what it wants by
the ``case`` patterns of its ``match`` on the event (``interests.py``); an event reaches the
handlers whose patterns can match it, and every event a handler returns is routed the same
way (and also emitted downstream), so a set of handlers forms a flow of its own without
wiring, cycles included. Work waits in one queue ordered by handler priority (lower first)
then arrival, so where several handlers are ready the lower priority runs first.

An input event is handled to quiescence inside one ``process`` call: a checkpoint never
falls in the middle of a cascade. A cascade deeper than ``max_depth`` (events caused by
events caused by ... the input) is the stage's error on that input: a cycle that does not
end.

Phases: when every input has ended, the stage is quiescent (its upstream drained, its queue
empty) and ends a phase: every handler with ``end_phase()`` is called (lowest priority
first) and what it returns is routed; phases repeat while a phase emitted anything (a
collector's flush may fill the next collector), at most ``max_phases``. Then the shutdown
signal: every handler with ``close()`` is called, to release what it holds.

Handlers live in the stage's state dict (a class is made ``Class()`` once per run; a
function or instance is used as given), so a checkpoint pickles them with what they hold.
"""

from __future__ import annotations

import collections
import functools
import heapq
import inspect
import reprlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from riverbed._errors import FlowDefinitionError
from riverbed._model.callables import describe, short_name
from riverbed._model.ops.interests import Interest, InterestsUnknown, handler_function, interests
from riverbed._model.process import Processor, ProcessorSpec

__all__ = ["DispatchSpec", "Handler", "HandlerSet", "Route", "build_routes"]


@dataclass(frozen=True)
class Handler:
    """A handler of ``Stream.dispatch`` with its settings: ``target`` (a function, a class
    or an instance, called with each event it wants), ``priority`` (lower runs first where
    several are ready) and ``match`` (the function whose ``match`` statement says what it
    wants, when that is not ``target``'s own: e.g. an adapter around another object).

    >>> import riverbed as rb
    >>> def greet(event):
    ...     match event:
    ...         case ("greet", who):
    ...             yield f"hello {who}"
    >>> rb.Handler(greet, priority=1).priority
    1
    """

    target: Any
    priority: int = 0
    match: Callable[..., Any] | None = None

    __module__ = "riverbed"

    def wants(self, event: Any) -> bool | None:
        """Whether one of the handler's ``case`` patterns can match ``event``; ``None`` when
        what it wants cannot be inferred (see docs/routing.md)."""
        found = _known_interests(handler_function(self.match or self.target))
        return None if found is None else any(i.accepts(event) for i in found)


@functools.lru_cache(maxsize=1024)
def _known_interests(fn: Callable[..., Any]) -> tuple[Interest, ...] | None:
    try:
        return interests(fn)
    except InterestsUnknown:
        return None


@dataclass(frozen=True)
class Route:
    """One handler of a dispatch stage as built: its target, priority, name, and what it
    wants (``None``: not inferable, so it gets the events no other handler wants)."""

    target: Any
    priority: int
    name: str
    interests: tuple[Interest, ...] | None

    def wants(self, event: Any) -> bool:
        """True if one of the handler's patterns can match ``event``."""
        return self.interests is not None and any(i.accepts(event) for i in self.interests)


@dataclass(frozen=True)
class HandlerSet:
    """The routes of a dispatch stage; its ``repr`` names each handler's code and patterns,
    so that the stage's version is the same in every process."""

    routes: tuple[Route, ...]

    def __repr__(self) -> str:
        parts = []
        for route in self.routes:
            wants = "?" if route.interests is None else "|".join(map(str, route.interests))
            parts.append(f"{route.name}@{route.priority}:{wants}")
        return f"HandlerSet({', '.join(parts)})"


@dataclass(frozen=True)
class DispatchSpec(ProcessorSpec):
    """Handlers routed by their ``match`` patterns (``Stream.dispatch``)."""

    handlers: HandlerSet = HandlerSet(())
    max_depth: int = 1000
    max_phases: int = 100

    keyed: ClassVar[bool] = False
    emits_keyed: ClassVar[bool] = False
    operator: ClassVar[str] = "dispatch"

    def create(self, state: dict[str, Any]) -> Processor:
        """A dispatcher over ``state["handlers"]`` (the live handlers, made on first use)."""
        return _Dispatcher(self, state)


class _Dispatcher:
    def __init__(self, spec: DispatchSpec, state: dict[str, Any]) -> None:
        self._spec = spec
        self._routes = spec.handlers.routes
        if "handlers" not in state:
            state["handlers"] = [
                r.target() if inspect.isclass(r.target) else r.target for r in self._routes
            ]
        self._live: list[Any] = state["handlers"]
        self._fallback = [i for i, r in enumerate(self._routes) if r.interests is None]
        self._table = _Table(self._routes)
        self._uniform = len({route.priority for route in self._routes}) == 1
        self._order = sorted(range(len(self._routes)), key=lambda i: self._routes[i].priority)

    def _receivers(self, event: Any) -> list[int]:
        try:
            key = self._table.key(event)
            return self._table.cache[key]
        except (KeyError, TypeError):  # not seen yet, or a part of the key is unhashable
            pass
        found = [i for i, route in enumerate(self._routes) if route.wants(event)]
        found = found or self._fallback
        self._table.remember(event, found)
        return found

    def _cascade(self, seeds: Iterable[tuple[int, Any]], depth: int) -> list[Any]:
        """Handle ``seeds`` (handler index, event) and all they cause, to quiescence, in
        order of priority, then arrival (a plain FIFO when all priorities are equal)."""
        pending: Any
        if self._uniform:
            pending = collections.deque()
            push, pop = pending.append, pending.popleft
        else:
            pending = []
            push = functools.partial(heapq.heappush, pending)
            pop = functools.partial(heapq.heappop, pending)
        routes, count = self._routes, 0
        for index, event in seeds:
            push((routes[index].priority, count, depth, index, event))
            count += 1
        emitted: list[Any] = []
        while pending:
            _, _, level, index, event = pop()
            for out in self._call(self._live[index], event):
                if level >= self._spec.max_depth:
                    raise RecursionError(self._too_deep(index, out))
                emitted.append(out)
                for receiver in self._receivers(out):
                    push((routes[receiver].priority, count, level + 1, receiver, out))
                    count += 1
        return emitted

    def _call(self, handler: Any, event: Any) -> Iterable[Any]:
        out = handler(event)
        return () if out is None else list(out)

    def _too_deep(self, index: int, event: Any) -> str:
        return (
            f"dispatch: handler {self._routes[index].name} emitted {reprlib.repr(event)} at depth "
            f"{self._spec.max_depth} (events caused by events ... caused by one input): "
            "handlers that keep answering each other without end form a cycle; end it, or "
            "raise max_depth= if the chain is finite but long"
        )

    def process(self, event: Any, now: float) -> Iterable[Any] | None:
        return self._cascade(((i, event) for i in self._receivers(event)), 0)

    def tick(self, now: float) -> Iterable[Any] | None:
        return None

    def finish(self) -> Iterable[Any] | None:
        emitted: list[Any] = []
        for _ in range(self._spec.max_phases):
            phase = self._end_phase()
            if not phase:
                break
            emitted.extend(phase)
        else:
            raise RuntimeError(
                f"dispatch: still emitting after {self._spec.max_phases} phases; a handler "
                "whose end_phase() always emits never lets the run end (raise max_phases= "
                "if it needs more)"
            )
        for index in self._order:
            close = getattr(self._live[index], "close", None)
            if callable(close):
                close()
        return emitted

    def _end_phase(self) -> list[Any]:
        emitted: list[Any] = []
        for index in self._order:
            end_phase = getattr(self._live[index], "end_phase", None)
            if not callable(end_phase):
                continue
            outs = list(end_phase() or ())
            emitted.extend(outs)
            seeds = [(r, out) for out in outs for r in self._receivers(out)]
            emitted.extend(self._cascade(seeds, 1))
        return emitted


def build_routes(handlers: tuple[Any, ...], *, strict: bool, where: str) -> HandlerSet:
    """The routes of ``handlers`` (targets or ``Handler``s), their interests inferred;
    ``strict`` makes a handler without inferable interests a ``FlowDefinitionError``."""
    if not handlers:
        raise FlowDefinitionError(f"{where}: give at least one handler")
    routes = []
    for item in handlers:
        handler = item if isinstance(item, Handler) else Handler(item)
        if not callable(handler.target):
            raise FlowDefinitionError(
                f"{where}: a handler must be a function, a class or an object with "
                f"__call__(event), got {handler.target!r:.60}"
            )
        if isinstance(handler.priority, bool) or not isinstance(handler.priority, int):
            raise FlowDefinitionError(f"{where}: a handler's priority must be an int")
        fn = handler_function(handler.match or handler.target)
        try:
            wants: tuple[Interest, ...] | None = interests(fn)
        except InterestsUnknown as why:
            if strict:
                raise FlowDefinitionError(
                    f"{where}: strict routing, but what handler {describe(fn)} wants cannot "
                    f"be inferred: {why}. Give it a `match` on its event with a `case` per "
                    "kind of event it takes, or pass strict=False (it then gets the events "
                    "no other handler wants)"
                ) from None
            wants = None
        name = short_name(handler.target)
        routes.append(Route(handler.target, handler.priority, name, wants))
    return HandlerSet(tuple(routes))


_MISSING = object()


class _Table:
    """The receivers already computed, by what the patterns can look at: the event's type,
    the attributes and sequence items they compare, and the event itself if some pattern is
    a literal. Two events equal in all that go to the same handlers, so the patterns are
    evaluated once per distinct key, not once per event."""

    LIMIT = 10_000
    """Keys kept at most: past it the table starts again (attributes of many values)."""

    def __init__(self, routes: tuple[Route, ...]) -> None:
        found = [i for r in routes for i in (r.interests or ())]
        self.attrs = tuple(dict.fromkeys(a for i in found if i.kind == "class" for a, _ in i.attrs))
        self.items = tuple(
            dict.fromkeys(n for i in found if i.kind == "sequence" for n, _ in i.attrs)
        )
        self.literal = any(i.kind in ("value", "identity") for i in found)
        self.cache: dict[Any, list[int]] = {}
        self.sequence_types: dict[type, bool] = {}

    def key(self, event: Any) -> Any:
        """What decides the receivers of ``event`` (unhashable for some events: the
        lookup then raises TypeError)."""
        cls = type(event)
        sequence = self.sequence_types.get(cls)
        if sequence is None:  # an ABC check is slow: once per type
            sequence = issubclass(cls, Sequence) and not issubclass(cls, str | bytes | bytearray)
            self.sequence_types[cls] = sequence
        key: tuple[Any, ...] = (cls, *[getattr(event, a, _MISSING) for a in self.attrs])
        if sequence:
            size = len(event)
            key += (size, *[event[n] if n < size else _MISSING for n in self.items])
        if self.literal:
            key += (event,)
        return key

    def remember(self, event: Any, receivers: list[int]) -> None:
        """Keep ``receivers`` for the key of ``event``, if it has one."""
        if len(self.cache) >= self.LIMIT:
            self.cache.clear()
        try:
            self.cache[self.key(event)] = receivers
        except TypeError:  # unhashable: computed anew each time
            return
