"""The nodes of a flow: one frozen ``Stage`` per source, transform and sink.

A stage is data: its kind, its user callable(s), where its input comes from, and its
failure policy. Runners read stages; nothing changes them after they are made.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from riverbed._model.policy import OnError, Retry
from riverbed._records.kinds import StageKind as StageKind  # declared with the records

DEFAULT_PORT = "out"


@dataclass(frozen=True)
class KindTraits:
    """What the planner, the runners and the checks need to know of a stage kind, kept
    in one table (``TRAITS``) rather than in sets scattered where each is used."""

    one_to_one: bool = False
    """Exactly one output per input on the happy path: counting its inputs counts its
    outputs, which lets fused loops skip a counter per event."""
    cacheable: bool = False
    """``cache=True`` may memoize it: its outputs depend on the input event alone (no
    state, no side effect)."""
    per_key_state: bool = False
    """It keeps state per key (a keyed stream's ``stateful``, ``fold``, ``reduce``) and
    takes ``(key, value)`` pairs."""
    keeps_state: bool = False
    """It has state a checkpoint saves (per key, or a processor's own)."""


TRAITS: Mapping[StageKind, KindTraits] = {
    StageKind.SOURCE: KindTraits(),
    StageKind.MAP: KindTraits(one_to_one=True, cacheable=True),
    StageKind.FLAT_MAP: KindTraits(cacheable=True),
    StageKind.FILTER: KindTraits(cacheable=True),
    StageKind.INSPECT: KindTraits(one_to_one=True),
    StageKind.KEY_BY: KindTraits(one_to_one=True, cacheable=True),
    StageKind.STATEFUL: KindTraits(per_key_state=True, keeps_state=True),
    StageKind.FOLD: KindTraits(per_key_state=True, keeps_state=True),
    StageKind.BRANCH: KindTraits(cacheable=True),
    StageKind.ROUTE: KindTraits(cacheable=True),
    StageKind.MERGE: KindTraits(one_to_one=True),
    StageKind.PROCESS: KindTraits(keeps_state=True),
    StageKind.SINK: KindTraits(),
}

ONE_TO_ONE = frozenset(kind for kind, traits in TRAITS.items() if traits.one_to_one)
CACHEABLE = frozenset(kind for kind, traits in TRAITS.items() if traits.cacheable)
PER_KEY_STATE = frozenset(kind for kind, traits in TRAITS.items() if traits.per_key_state)
KEEPS_STATE = frozenset(kind for kind, traits in TRAITS.items() if traits.keeps_state)


class SinkMode(enum.Enum):
    """How a sink's target is called."""

    EVENT = "event"
    """``target(event)`` once per event."""
    BATCH = "batch"
    """``target(list_of_events)`` once per batch."""
    OBJECT = "object"
    """``target.write_batch(list_of_events)``, and ``target.close()`` at the end if it has one."""

    __module__ = "riverbed"


@dataclass(frozen=True)
class Port:
    """One output of a stage: most have just ``out``; branch and route have several."""

    stage: str
    name: str = DEFAULT_PORT

    __module__ = "riverbed"

    def __str__(self) -> str:
        return self.stage if self.name == DEFAULT_PORT else f"{self.stage}.{self.name}"


@dataclass(frozen=True)
class Stage:
    """One node of a flow. Made by the builder methods of ``Flow`` and ``Stream``."""

    name: str
    kind: StageKind
    inputs: tuple[Port, ...] = ()
    fn: Any = None
    """The main callable; for a source, the source; for a sink, its target."""
    method: Any = None
    """STATEFUL with a class: the method called as ``method(instance, value)``."""
    initial: Any = None
    """STATEFUL with a function, FOLD: a zero-argument factory of the starting state."""
    outputs: tuple[str, ...] = (DEFAULT_PORT,)
    """The names of this stage's output ports (empty for sinks)."""
    keyed: bool = False
    """True when the events this stage emits are ``(key, value)`` pairs."""
    sink_mode: SinkMode | None = None
    running: bool = False
    """FOLD: emit the accumulator on every event instead of once at end of stream."""
    concurrency: int | None = None
    """Async callables: how many calls may be in flight at once."""
    on_error: OnError | None = None
    retry: Retry | None = None
    timeout: float | None = None
    cache: bool = False
    """Memoize the stage's outputs in the store's step cache, by stage version and a digest
    of the input event: a re-run, or another run, never recomputes them."""
    reads: tuple[str, ...] = ()
    """Workflows: the context keys this step reads, each written by a step before it (or
    given with the input: ``flow.input(keys=...)``); checked when the flow is built."""
    writes: tuple[str, ...] = ()
    """Workflows: the context keys this step adds; no key is written twice on one path."""

    __module__ = "riverbed"

    @property
    def is_source(self) -> bool:
        """True for sources."""
        return self.kind is StageKind.SOURCE

    @property
    def is_sink(self) -> bool:
        """True for sinks."""
        return self.kind is StageKind.SINK
