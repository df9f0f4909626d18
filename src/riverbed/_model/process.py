"""Processors: the operators with memory and time (windows, joins, collecting, sampling...).

A ``PROCESS`` stage carries a *spec*: a frozen dataclass that describes the operator (its
settings and the user's functions). For each run, the runner asks the spec to ``create`` a
``Processor`` over a state dict that the runner owns: the processor keeps *everything* it
must remember in that dict (per-key entries, timers, watermarks), in plain picklable values,
so that a checkpoint is a pickle of the dict and a resume hands the same dict back.

The runner calls, always from one task, never concurrently:

- ``process(event, now)`` for each event (``(key, value)`` pairs when the spec is keyed);
  ``now`` is processing time (the run's clock, seconds since the epoch, read once per batch);
- ``tick(now)`` every ``spec.tick`` seconds, also when no events come (processing-time
  timers: session gaps, collecting by time, expiry), if ``spec.tick`` is not None;
- ``finish()`` once when every input has ended (not when the run is stopped): flush what is
  still open.

Each returns the events to emit downstream (an iterable, or None for none). A call that
raises is the stage's error on that event, handled by the stage's policy; a processor must
therefore change its state only after the user's functions it calls have returned.

The model knows nothing of runners: a spec is data, a processor is plain logic, and both can
be tested without running a flow (``riverbed.testing.drive`` does it).
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Iterable
from typing import Any, ClassVar, Protocol, runtime_checkable

__all__ = ["DROPPED_KEYS", "Processor", "ProcessorSpec", "dropped", "spec_callables"]

DROPPED_KEYS = ("late_dropped", "orphans_dropped")
"""Entries of a processor's state dict where it counts the events it drops by its own
rules (late events of a window, rendezvous orphans evicted by their policy): the runner
shows their sum as the stage's ``dropped`` counter."""


def dropped(state: dict[str, Any]) -> int:
    """What a processor over ``state`` dropped by its own rules so far."""
    return sum(int(state.get(key, 0)) for key in DROPPED_KEYS)


@runtime_checkable
class Processor(Protocol):
    """The per-run logic of a ``PROCESS`` stage; see the module docstring."""

    def process(self, event: Any, now: float) -> Iterable[Any] | None:
        """Take one event; return what to emit now."""
        ...

    def tick(self, now: float) -> Iterable[Any] | None:
        """Processing time moved on to ``now``; return what is due."""
        ...

    def finish(self) -> Iterable[Any] | None:
        """Every input has ended; return what is left to emit."""
        ...


class ProcessorSpec(abc.ABC):
    """Base of the frozen dataclasses that describe a processor.

    Subclasses are ``@dataclass(frozen=True)``; their fields are JSON-able values or
    callables (serialized by import reference and fingerprinted into the stage's version).
    """

    keyed: ClassVar[bool] = True
    """True if the stage reads a keyed stream and gets ``(key, value)`` pairs."""
    emits_keyed: ClassVar[bool] = True
    """True if what it emits is ``(key, output)`` pairs (a keyed stream)."""
    operator: ClassVar[str] = "process"
    """The operator's name: the stage's default name and its kind in listings."""

    @property
    def tick(self) -> float | None:
        """Seconds between ``Processor.tick`` calls, or None if the processor has no
        processing-time timers."""
        return None

    @abc.abstractmethod
    def create(self, state: dict[str, Any]) -> Processor:
        """A processor for one run over ``state`` (empty, or restored from a checkpoint)."""


def spec_callables(spec: Any) -> dict[str, Any]:
    """The callable fields of a spec (functions and classes), by field name: for versions,
    JSON and messages."""
    if not dataclasses.is_dataclass(spec):
        return {}
    values = {field.name: getattr(spec, field.name) for field in dataclasses.fields(spec)}
    return {name: value for name, value in values.items() if callable(value)}
