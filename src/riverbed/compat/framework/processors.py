"""framework's processors: events, the context they submit to, ``AbstractProcessor``, and
the handler that calls a processor from a riverbed dispatch stage."""

from __future__ import annotations

import abc
from typing import Any

PHASE = "__PHASE__"
POISON = "__POISON__"


class Event:
    """A lightweight message: ``Event(name=..., **attrs)``; equal when of one type with
    equal attributes."""

    def __init__(self, name: str, **attrs: Any) -> None:
        self.name = name
        self.__dict__.update(attrs)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and vars(other) == vars(self)

    __hash__ = None  # type: ignore[assignment]  # mutable attributes: not hashable

    def __repr__(self) -> str:
        attrs = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({attrs})"


class ReactiveEvent(Event):
    """``ReactiveEvent(name="resolve", target=...)`` asks for a target's artifacts;
    ``ReactiveEvent(name="built", target=..., artifact=...)`` announces one."""


class Context:
    """What a processor's ``process`` gets: ``submit(event)`` emits an event, routed to
    the processors whose patterns match it."""

    def __init__(self) -> None:
        self.submitted: list[Any] = []

    def submit(self, event: Any) -> None:
        """Emit ``event`` downstream."""
        self.submitted.append(event)


class AbstractProcessor(abc.ABC):
    """A processor: implement ``process(self, context, event)`` with a ``match`` on the
    event (its ``case`` patterns route events to it). ``priority``: lower runs first."""

    priority: int = 0

    @abc.abstractmethod
    def process(self, context: Context, event: Any) -> None:
        """Handle one event; ``context.submit`` emits."""


class _Handler:
    """A processor as a riverbed dispatch handler."""

    def __init__(self, processor: AbstractProcessor) -> None:
        self.processor = processor
        self.__name__ = type(processor).__name__  # the handler's name in the stage's version

    def __call__(self, event: Any) -> list[Any]:
        context = Context()
        self.processor.process(context, event)
        return context.submitted

    def end_phase(self) -> list[Any]:
        return self(Event(name=PHASE))

    def close(self) -> None:
        self(Event(name=POISON))
