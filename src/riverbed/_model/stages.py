"""The nodes of a flow: one frozen ``Stage`` per source, transform and sink.

A stage is data: its kind, its user callable(s), where its input comes from, and its
failure policy. Runners read stages; nothing changes them after they are made.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from riverbed._errors import FlowDefinitionError
from riverbed._model.policy import OnError, Retry
from riverbed._records.kinds import StageKind as StageKind  # declared with the records

DEFAULT_PORT = "out"


@dataclass(frozen=True)
class KindTraits:
    """What the planner, the runners and the checks need to know of how a stage kind
    behaves (part of its entry in ``KINDS``)."""

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
    """One node of a flow. Made by the builder methods of ``Flow`` and ``Stream``.

    This record holds what every kind has; the kinds with settings of their own have
    their own records: ``StatefulStage``, ``FoldStage`` and ``SinkStage`` (``KINDS`` says
    which record each kind uses). Making a ``Stage`` of one of those kinds is refused."""

    name: str
    kind: StageKind
    inputs: tuple[Port, ...] = ()
    fn: Any = None
    """The main callable; for a source, the source; for a sink, its target."""
    outputs: tuple[str, ...] = (DEFAULT_PORT,)
    """The names of this stage's output ports (empty for sinks)."""
    keyed: bool = False
    """True when the events this stage emits are ``(key, value)`` pairs."""
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
    queue: str | None = None
    """Workflows: the named queue whose workers run this step, as a run of its own (a step
    run); None: the workflow's own run runs it. Not part of the stage's version: where a
    step runs does not change what it computes."""

    __module__ = "riverbed"

    def __post_init__(self) -> None:
        spec = KINDS[self.kind]
        if type(self) is not spec.record:
            record = spec.record.__name__
            raise FlowDefinitionError(
                f"stage {self.name!r}: a {self.kind.value} stage ({spec.description}) is a "
                f"{record}, not a {type(self).__name__}: make it with riverbed.{record}(...)",
                stage=self.name,
            )

    @property
    def is_source(self) -> bool:
        """True for sources."""
        return self.kind is StageKind.SOURCE

    @property
    def is_sink(self) -> bool:
        """True for sinks."""
        return self.kind is StageKind.SINK

    @property
    def function(self) -> Any:
        """The user callable the stage is about, for names and messages: ``fn``, or the
        method of a stateful class."""
        return self.fn

    @property
    def called(self) -> Any:
        """What riverbed calls per event (or per batch): ``function``, or a sink
        object's ``write_batch``."""
        return self.function

    def callables(self) -> dict[str, Any]:
        """The stage's user callables by field name, ``fn`` first: what its JSON form
        refers to by import path and what its version fingerprints."""
        return {"fn": self.fn}

    def kind_settings(self) -> dict[str, Any]:
        """This kind's own settings, JSON-ready, those set only (a flow document leaves
        the defaults out)."""
        return {}

    @classmethod
    def kind_fields_from(
        cls, data: Mapping[str, Any], resolve: Callable[[Any], Any]
    ) -> dict[str, Any]:
        """This kind's own fields from a stage's JSON form (``kind_settings`` and the
        callables beyond ``fn``, which ``resolve`` turns back into objects)."""
        return {}


@dataclass(frozen=True)
class KeyedStateStage(Stage):
    """What the per-key state kinds (``StatefulStage``, ``FoldStage``) share."""

    initial: Any = None
    """A zero-argument factory of a key's starting state; ``None``: a stateful function
    starts from ``None``, ``reduce`` from the key's first value."""

    __module__ = "riverbed"

    @classmethod
    def kind_fields_from(
        cls, data: Mapping[str, Any], resolve: Callable[[Any], Any]
    ) -> dict[str, Any]:
        """``initial``."""
        return {"initial": resolve(data.get("initial"))}


@dataclass(frozen=True)
class StatefulStage(KeyedStateStage):
    """A keyed stream's ``stateful``: ``fn`` is a class (one instance per key, ``method``
    called per event) or a function of ``(state, value)`` starting from ``initial()``."""

    method: Any = None
    """With a class: the method called as ``method(instance, value)``."""

    __module__ = "riverbed"

    @property
    def function(self) -> Any:
        """The method with a class, else the function."""
        return self.method if self.method is not None else self.fn

    def callables(self) -> dict[str, Any]:
        """``fn``, then ``method`` and ``initial`` where set."""
        named = {"fn": self.fn, "method": self.method, "initial": self.initial}
        return {field: value for field, value in named.items() if value is not None}

    @classmethod
    def kind_fields_from(
        cls, data: Mapping[str, Any], resolve: Callable[[Any], Any]
    ) -> dict[str, Any]:
        """``initial`` and ``method``."""
        return super().kind_fields_from(data, resolve) | {"method": resolve(data.get("method"))}


@dataclass(frozen=True)
class FoldStage(KeyedStateStage):
    """A keyed stream's ``fold`` or ``reduce``: ``acc = fn(acc, value)`` per key,
    starting from ``initial()`` (``reduce``: from the key's first value)."""

    running: bool = False
    """Emit the accumulator on every event instead of once at end of stream."""

    __module__ = "riverbed"

    def callables(self) -> dict[str, Any]:
        """``fn``, then ``initial`` where set."""
        return {"fn": self.fn} | ({"initial": self.initial} if self.initial is not None else {})

    def kind_settings(self) -> dict[str, Any]:
        """``running`` when set."""
        return {"running": True} if self.running else {}

    @classmethod
    def kind_fields_from(
        cls, data: Mapping[str, Any], resolve: Callable[[Any], Any]
    ) -> dict[str, Any]:
        """``initial`` and ``running``."""
        return super().kind_fields_from(data, resolve) | {"running": data.get("running", False)}


@dataclass(frozen=True)
class SinkStage(Stage):
    """The end of a stream: ``fn`` is the target, called as ``sink_mode`` says."""

    outputs: tuple[str, ...] = ()
    sink_mode: SinkMode | None = None
    """How the target is called; ``None`` when made: ``OBJECT`` for an object with
    ``write_batch``, else ``EVENT``."""

    __module__ = "riverbed"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.sink_mode is None:
            from riverbed._model.sinks import is_sink_object

            mode = SinkMode.OBJECT if is_sink_object(self.fn) else SinkMode.EVENT
            object.__setattr__(self, "sink_mode", mode)

    @property
    def mode(self) -> SinkMode:
        """``sink_mode``, always set once the record is made."""
        assert self.sink_mode is not None
        return self.sink_mode

    @property
    def called(self) -> Any:
        """``write_batch`` of a sink object, else the callable."""
        if self.sink_mode is SinkMode.OBJECT:
            return getattr(self.fn, "write_batch", None)
        return self.fn

    def kind_settings(self) -> dict[str, Any]:
        """``sink_mode``, always."""
        return {"sink_mode": self.mode.value}

    @classmethod
    def kind_fields_from(
        cls, data: Mapping[str, Any], resolve: Callable[[Any], Any]
    ) -> dict[str, Any]:
        """``sink_mode``, when given (else taken from the target)."""
        return {"sink_mode": SinkMode(data["sink_mode"])} if "sink_mode" in data else {}


@dataclass(frozen=True)
class KindSpec:
    """Everything the model, the planner and the runners know of one stage kind, in one
    table (``KINDS``) rather than in sets and branches scattered where each is used."""

    record: type[Stage]
    """The record class its stages are."""
    traits: KindTraits
    description: str
    """What it does, in a phrase: for listings and messages."""


def _kind(record: type[Stage], description: str, **traits: bool) -> KindSpec:
    return KindSpec(record, KindTraits(**traits), description)


KINDS: Mapping[StageKind, KindSpec] = {
    StageKind.SOURCE: _kind(Stage, "where events come from"),
    StageKind.MAP: _kind(Stage, "one output per event", one_to_one=True, cacheable=True),
    StageKind.FLAT_MAP: _kind(Stage, "any number of outputs per event", cacheable=True),
    StageKind.FILTER: _kind(Stage, "keeps the events it accepts", cacheable=True),
    StageKind.INSPECT: _kind(Stage, "sees each event and passes it on", one_to_one=True),
    StageKind.KEY_BY: _kind(
        Stage, "pairs each event with its key", one_to_one=True, cacheable=True
    ),
    StageKind.STATEFUL: _kind(StatefulStage, "per-key state", per_key_state=True, keeps_state=True),
    StageKind.FOLD: _kind(FoldStage, "per-key accumulator", per_key_state=True, keeps_state=True),
    StageKind.BRANCH: _kind(Stage, "splits events by a predicate", cacheable=True),
    StageKind.ROUTE: _kind(Stage, "sends each event to named outputs", cacheable=True),
    StageKind.MERGE: _kind(Stage, "joins streams into one", one_to_one=True),
    StageKind.PROCESS: _kind(Stage, "an operator's processor", keeps_state=True),
    StageKind.SINK: _kind(SinkStage, "where events end"),
}

ONE_TO_ONE = frozenset(kind for kind, spec in KINDS.items() if spec.traits.one_to_one)
CACHEABLE = frozenset(kind for kind, spec in KINDS.items() if spec.traits.cacheable)
PER_KEY_STATE = frozenset(kind for kind, spec in KINDS.items() if spec.traits.per_key_state)
KEEPS_STATE = frozenset(kind for kind, spec in KINDS.items() if spec.traits.keeps_state)
