"""Routines: stages with named input slots and named output events, connected many to
many by (routine, event) -> (routine, slot), built into an ordinary workflow.

A routine is plain Python: for each slot, a handler taking the slot's parameters (a
dict) and returning what the routine emits, as ``(event, params)`` pairs (or None for
nothing). ``Routines`` collects routines and connections, then ``flow(entry)`` builds
the riverbed workflow that runs them from one entry routine:

- each routine is a ``flat_map`` stage named by the routine: it receives ``Message``s
  (a slot and its parameters) and emits ``Emission``s (the routine, an event, its
  parameters); its stage counters are the routine's statistics, its failure policy
  (``on_error``, ``retry``) the routine's error strategy;
- each connection is a ``flat_map`` stage (``SRC.EVENT-DST.SLOT``) that keeps the
  source's emissions of that event and makes them messages for the target's slot, with
  the connection's parameter renaming; a routine with several incoming connections reads
  them merged;
- the emissions of events connected nowhere are the workflow's output (``outputs``).

So ``rb.run(flow, params)`` records every routine call as a step (its emissions are the
step's outputs): the history of a run is its steps, and a failed or crashed run resumes
from the first routine not yet recorded. Only the routines reachable from the entry
are part of its flow. A workflow is a DAG: connections that make a cycle are refused
with the cycle named. This module builds; it runs nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from riverbed._errors import FlowDefinitionError
from riverbed._model.flow import Flow
from riverbed._model.policy import OnError, Retry
from riverbed._model.settings import StageOptions
from riverbed._model.streams import Stream

__all__ = ["Emission", "Message", "Routines"]


@dataclass(frozen=True)
class Message:
    """What reaches a routine: the ``slot`` it arrives at and its ``params``."""

    slot: str
    params: Mapping[str, Any]

    __module__ = "riverbed"


@dataclass(frozen=True)
class Emission:
    """What a routine emitted: the ``routine``, the ``event`` and its ``params``."""

    routine: str
    event: str
    params: Mapping[str, Any]

    __module__ = "riverbed"


@dataclass(frozen=True)
class _Routine:
    name: str
    slots: Mapping[str, Callable[[dict[str, Any]], Any]]
    events: tuple[str, ...]
    on_error: OnError | None
    retry: Retry | None


@dataclass(frozen=True)
class _Connection:
    source: str
    event: str
    target: str
    slot: str
    params: Mapping[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.source}.{self.event}-{self.target}.{self.slot}"


class _Call:
    """A routine's stage function: a message in, the routine's emissions out."""

    def __init__(self, routine: _Routine) -> None:
        self.routine = routine
        self.__name__ = routine.name

    def __call__(self, message: Message) -> list[Emission]:
        routine = self.routine
        handler = routine.slots.get(message.slot)
        if handler is None:
            raise LookupError(
                f"routine {routine.name!r} has no slot {message.slot!r}; its slots: "
                f"{sorted(routine.slots)}"
            )
        emitted = handler(dict(message.params))
        emissions = []
        for event, params in emitted or ():
            if event not in routine.events:
                raise LookupError(
                    f"routine {routine.name!r} emitted {event!r}, which it does not declare; "
                    f"its events: {list(routine.events)}"
                )
            emissions.append(Emission(routine.name, event, dict(params)))
        return emissions


class _Deliver:
    """A connection's stage function: an emission of its event in, a message out."""

    def __init__(self, connection: _Connection) -> None:
        self.connection = connection
        self.__name__ = connection.name

    def __call__(self, emission: Emission) -> list[Message]:
        if emission.event != self.connection.event:
            return []
        rename = self.connection.params
        params = {rename.get(key, key): value for key, value in emission.params.items()}
        return [Message(self.connection.slot, params)]


class _Enter:
    """The workflow's input (the entry's parameters) as a message for the entry slot."""

    def __init__(self, slot: str) -> None:
        self.slot = slot

    def __call__(self, params: Mapping[str, Any]) -> Message:
        if not isinstance(params, Mapping):
            raise TypeError(f"a routine's parameters are a dict, got {type(params).__name__}")
        return Message(self.slot, dict(params))


class _Loose:
    """The emissions of a routine's events that are connected nowhere."""

    def __init__(self, events: Iterable[str]) -> None:
        self.events = frozenset(events)

    def __call__(self, emission: Emission) -> list[Emission]:
        return [emission] if emission.event in self.events else []


class Routines:
    """Routines with slots and events, connected many to many, built into a workflow.

    >>> import riverbed as rb
    >>> net = rb.Routines("greet")
    >>> net.add("upper", {"text": lambda p: [("out", {"text": p["text"].upper()})]}, ["out"])
    >>> net.add("shout", {"text": lambda p: [("out", {"text": p["text"] + "!"})]}, ["out"])
    >>> net.connect("upper", "out", "shout", "text")
    >>> rb.run(net.flow("upper"), {"text": "hi"}, store=False).output.params
    {'text': 'HI!'}
    """

    __module__ = "riverbed"

    def __init__(
        self, name: str, *, on_error: OnError | None = None, retry: Retry | None = None
    ) -> None:
        Flow(name)  # checks the name now
        self.name = name
        self.on_error = on_error
        self.retry = retry
        self._routines: dict[str, _Routine] = {}
        self._connections: list[_Connection] = []

    def add(
        self,
        name: str,
        slots: Mapping[str, Callable[[dict[str, Any]], Any]],
        events: Sequence[str] = (),
        *,
        on_error: OnError | None = None,
        retry: Retry | None = None,
    ) -> None:
        """Add routine ``name``: ``slots`` maps each slot to its handler, ``events``
        names what it may emit; ``on_error`` / ``retry`` are its failure policy."""
        if name in self._routines:
            raise FlowDefinitionError(f"{self.name!r} has a routine {name!r} already")
        Flow(name)  # a routine's name is a stage name: the same characters
        bad = [slot for slot, handler in slots.items() if not callable(handler)]
        if not slots or bad:
            raise FlowDefinitionError(
                f"routine {name!r} needs slots mapped to callables; {bad or 'none given'}"
            )
        self._routines[name] = _Routine(name, dict(slots), tuple(events), on_error, retry)

    def connect(
        self,
        source: str,
        event: str,
        target: str,
        slot: str,
        params: Mapping[str, str] | None = None,
    ) -> None:
        """Send ``source``'s ``event`` to ``target``'s ``slot``; ``params`` renames the
        event's parameters (``{event_param: slot_param}``)."""
        for routine in (source, target):
            if routine not in self._routines:
                raise FlowDefinitionError(
                    f"{self.name!r} has no routine {routine!r}; it has {list(self._routines)}"
                )
        if event not in self._routines[source].events:
            raise FlowDefinitionError(
                f"routine {source!r} has no event {event!r}; its events: "
                f"{list(self._routines[source].events)}"
            )
        if slot not in self._routines[target].slots:
            raise FlowDefinitionError(
                f"routine {target!r} has no slot {slot!r}; its slots: "
                f"{list(self._routines[target].slots)}"
            )
        connection = _Connection(source, event, target, slot, dict(params or {}))
        if connection in self._connections:
            raise FlowDefinitionError(f"{connection.name} is connected already")
        self._connections.append(connection)

    def flow(self, entry: str, slot: str | None = None) -> Flow:
        """The workflow that starts at routine ``entry``: its input is the parameters
        given to ``entry``'s ``slot`` (the routine's one slot if not given)."""
        if entry not in self._routines:
            raise FlowDefinitionError(
                f"{self.name!r} has no routine {entry!r}; it has {list(self._routines)}"
            )
        slots = self._routines[entry].slots
        if slot is None and len(slots) != 1:
            raise FlowDefinitionError(
                f"routine {entry!r} has several slots {sorted(slots)}: name the entry slot"
            )
        entry_slot = slot if slot is not None else next(iter(slots))
        if entry_slot not in slots:
            raise FlowDefinitionError(f"routine {entry!r} has no slot {entry_slot!r}")
        return self._build(entry, entry_slot)

    def _build(self, entry: str, slot: str) -> Flow:
        flow = Flow(self.name, on_error=self.on_error, retry=self.retry)
        first = flow.input().map(_Enter(slot), name=f"{entry}.{slot}")
        incoming: dict[str, list[Stream]] = {entry: [first]}
        loose: list[Stream] = []
        for name in self._order(entry):
            routine = self._routines[name]
            streams = incoming[name]
            into = streams[0] if len(streams) == 1 else flow.merge(*streams, name=f"{name}.in")
            policy: StageOptions = {}
            if routine.on_error is not None:
                policy["on_error"] = routine.on_error
            if routine.retry is not None:
                policy["retry"] = routine.retry
            out = into.flat_map(_Call(routine), name=name, **policy)
            wired = set()
            for connection in self._connections:
                if connection.source == name:
                    stage = out.flat_map(_Deliver(connection), name=connection.name)
                    incoming.setdefault(connection.target, []).append(stage)
                    wired.add(connection.event)
            unwired = [event for event in routine.events if event not in wired]
            if unwired or not routine.events:
                loose.append(out.flat_map(_Loose(unwired), name=f"{name}.results"))
        (loose[0] if len(loose) == 1 else flow.merge(*loose, name="results")).output()
        return flow

    def _order(self, entry: str) -> list[str]:
        """The routines reachable from ``entry``, each after every routine that sends to
        it (a topological order, stable in adding order); a cycle is refused."""
        reachable = [entry]
        for name in reachable:
            for c in self._connections:
                if c.source == name and c.target not in reachable:
                    reachable.append(c.target)
        senders = {
            name: {
                c.source for c in self._connections if c.target == name and c.source in reachable
            }
            for name in reachable
        }
        order: list[str] = []
        while len(order) < len(reachable):
            ready = [n for n in reachable if n not in order and senders[n] <= set(order)]
            if not ready:
                cycle = [n for n in reachable if n not in order]
                raise FlowDefinitionError(
                    f"the connections of {self.name!r} make a cycle through routines "
                    f"{cycle}: a workflow runs each routine after those that send to it, "
                    "so its routines must form a DAG"
                )
            order.append(ready[0])
        return order
