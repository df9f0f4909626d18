"""Reactive builders: stages that say what they provide and what they require, wired into a
flow on demand from a target.

``flow.resolve(target, builders)`` walks the builders' ``requires`` from ``target``, refuses
a target no builder provides and a dependency cycle (naming them), and adds one stage per
builder needed, dependencies first, each once however many builders require it:

- a builder with no requirements is a ``flat_map`` over one trigger event: ``fn()``'s
  artifacts go downstream as ``fn`` yields them;
- with one requirement, a ``flat_map`` over that target's stream: ``fn(artifact)`` once per
  artifact (``fn(*artifact)`` when the requirement is written ``"*name"``: a tuple artifact
  spread into positional arguments);
- with several, a combining stage first (``CombineSpec``: every new artifact of one input
  with each artifact the others have had so far), then ``fn(a, b, ...)`` per combination;
- ``apply=`` instead of ``fn``: a function from the required streams to the provided one,
  so that any operator (``reservoir``, ``rendezvous``, ``parallel_map``...) can be a builder.

``persist=True`` is the step cache (``cache=True``) on the builder's stage: its artifacts
are memoized in the store by the stage's version and the input's digest, so a later run
replays them without calling ``fn``. Each builder is one stage however many builders
require its target, and a ``DistinctSpec`` stage before it drops an input it has already
had (by the digest of its pickle), so ``fn`` runs once per distinct input.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import itertools
import pickle
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from riverbed._errors import CycleError, FlowDefinitionError
from riverbed._model.ops.joins import MAX_INPUTS, tag_of
from riverbed._model.process import Processor, ProcessorSpec
from riverbed._model.stages import StageKind
from riverbed._model.streams import Stream

if TYPE_CHECKING:
    from riverbed._model.flow import Flow

__all__ = ["Builder", "CombineSpec", "DistinctSpec", "resolve"]


@dataclass(frozen=True)
class Builder:
    """What a reactive builder provides and requires, and how it builds: ``fn(*inputs)``
    returning an iterable of artifacts (a generator streams them), or ``apply(*streams)``
    returning the provided stream. ``persist=True`` memoizes its artifacts in the store.

    >>> import riverbed as rb
    >>> def double(x):
    ...     yield x * 2
    >>> rb.Builder("doubles", double, requires=["numbers"]).requires
    ('numbers',)
    """

    provides: str
    fn: Callable[..., Iterable[Any]] | None = None
    requires: Sequence[str] = field(default=())
    persist: bool = False
    apply: Callable[..., Stream] | None = None

    __module__ = "riverbed"

    def __post_init__(self) -> None:
        if isinstance(self.requires, str):
            raise FlowDefinitionError(
                f"builder of {self.provides!r}: requires must be a list of target names, "
                f"got the string {self.requires!r} (write [{self.requires!r}])"
            )
        object.__setattr__(self, "requires", tuple(self.requires))
        if (self.fn is None) == (self.apply is None):
            raise FlowDefinitionError(
                f"builder of {self.provides!r}: give exactly one of fn= and apply="
            )

    @property
    def targets(self) -> tuple[str, ...]:
        """The required target names, without their ``*``."""
        return tuple(name.lstrip("*") for name in self.requires)


def resolve(flow: Flow, target: str, builders: Iterable[Builder]) -> dict[str, Stream]:
    """The stream of every target ``target`` depends on (itself included), by target name,
    each added to ``flow`` once (see the module docstring)."""
    providers: dict[str, Builder] = {}
    for builder in builders:
        if not isinstance(builder, Builder):
            raise FlowDefinitionError(f"resolve: builders must be rb.Builder, got {builder!r:.60}")
        if builder.provides in providers:
            raise FlowDefinitionError(f"resolve: two builders provide {builder.provides!r}")
        providers[builder.provides] = builder
    built = flow._built  # what earlier resolves of this flow added: built once
    streams: dict[str, Stream] = {}
    for name in _order(target, providers):
        if name not in built:
            builder = providers[name]
            built[name] = _stage(flow, builder, [built[t] for t in builder.targets])
        streams[name] = built[name]
    return streams


def _order(target: str, providers: dict[str, Builder]) -> list[str]:
    """The targets ``target`` needs, dependencies first; missing providers and cycles are
    FlowDefinitionError and CycleError."""
    done: list[str] = []
    path: list[str] = []

    def visit(name: str, wanted_by: str | None) -> None:
        if name in done:
            return
        if name in path:
            cycle = " -> ".join([*path[path.index(name) :], name])
            raise CycleError(f"resolve: the builders' requirements form a cycle: {cycle}")
        if name not in providers:
            who = f" (required by the builder of {wanted_by!r})" if wanted_by else ""
            raise FlowDefinitionError(
                f"resolve: no builder provides {name!r}{who}; the builders provide "
                f"{sorted(providers)}"
            )
        path.append(name)
        for need in providers[name].targets:
            visit(need, name)
        path.pop()
        done.append(name)

    visit(target, None)
    return done


def _stage(flow: Flow, builder: Builder, inputs: list[Stream]) -> Stream:
    name = re.sub(r"[^0-9A-Za-z_.-]+", "_", builder.provides) or "builder"
    if builder.apply is not None:
        made = builder.apply(*inputs)
        if not isinstance(made, Stream):
            raise FlowDefinitionError(
                f"builder of {builder.provides!r}: apply= must return the stream it made from "
                f"the required streams, got {made!r:.60}"
            )
        return made
    assert builder.fn is not None  # __post_init__ saw to it
    stars = tuple(r.startswith("*") for r in builder.requires)
    call = _caller(builder.fn, stars)
    if not inputs:
        trigger = flow.source([None], name=f"{name}.trigger")
        return trigger.flat_map(call, name=name, cache=builder.persist)
    if len(inputs) == 1:
        distinct = inputs[0].process(DistinctSpec(), name=f"{name}.distinct")
        return distinct.flat_map(call, name=name, cache=builder.persist)
    if len(inputs) > MAX_INPUTS:
        raise FlowDefinitionError(f"builder of {builder.provides!r}: at most {MAX_INPUTS} requires")
    keyed = [s.key_by(_no_key, name=f"{name}.key{i}") for i, s in enumerate(inputs)]
    tagged = [
        k._then(StageKind.MAP, tag_of(i), f"{name}.in{i}", {}, keyed=True)
        for i, k in enumerate(keyed)
    ]
    merged = tagged[0].merge(*tagged[1:], name=f"{name}.inputs")
    combined = merged.process(CombineSpec(inputs=len(inputs)), name=f"{name}.combine")
    combined = combined.process(DistinctSpec(), name=f"{name}.distinct")
    return combined.flat_map(call, name=name, cache=builder.persist)


def _no_key(value: Any) -> None:
    """Every artifact under one key: a builder combines all of its inputs' artifacts."""


def _caller(fn: Callable[..., Iterable[Any]], stars: tuple[bool, ...]) -> Callable[[Any], Any]:
    """The function a builder's stage calls with one input (``None``, an artifact, or a
    combination tuple): it spreads the input into ``fn``'s arguments. It carries ``fn`` as
    ``__wrapped__``, so the stage's version (and its cache) follows ``fn``'s code."""

    def call(value: Any) -> Iterable[Any]:
        if not stars:
            args: tuple[Any, ...] = ()
        elif len(stars) == 1:
            args = (value,)
        else:
            args = tuple(value)
        spread: list[Any] = []
        for star, arg in zip(stars, args, strict=True):
            spread.extend(arg if star else (arg,))
        return fn(*spread) or ()

    functools.update_wrapper(call, fn)
    call.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter("value", inspect.Parameter.POSITIONAL_ONLY)]
    )
    return call


@dataclass(frozen=True)
class CombineSpec(ProcessorSpec):
    """Per key, every new value of one input with each value the other inputs have had so
    far: ``(key, (index, value))`` in, ``(v0, v1, ...)`` out (unkeyed)."""

    inputs: int = 2

    keyed: ClassVar[bool] = True
    emits_keyed: ClassVar[bool] = False
    operator: ClassVar[str] = "combine"

    def create(self, state: dict[str, Any]) -> Processor:
        """A combiner over ``state["seen"]``: key -> one list of values per input."""
        return _Combiner(self.inputs, state)


class _Combiner:
    def __init__(self, inputs: int, state: dict[str, Any]) -> None:
        self._inputs = inputs
        self._seen: dict[Any, list[list[Any]]] = state.setdefault("seen", {})

    def process(self, event: Any, now: float) -> Iterable[Any] | None:
        key, (index, value) = event
        lists = self._seen.setdefault(key, [[] for _ in range(self._inputs)])
        others = [[value] if i == index else values for i, values in enumerate(lists)]
        lists[index].append(value)
        return list(itertools.product(*others))

    def tick(self, now: float) -> Iterable[Any] | None:
        return None

    def finish(self) -> Iterable[Any] | None:
        return None


@dataclass(frozen=True)
class DistinctSpec(ProcessorSpec):
    """Each input once: an event whose pickle's digest was seen already is dropped (an
    event that cannot be pickled always passes)."""

    keyed: ClassVar[bool] = False
    emits_keyed: ClassVar[bool] = False
    operator: ClassVar[str] = "distinct"

    def create(self, state: dict[str, Any]) -> Processor:
        """A filter over ``state["seen"]``: the digests of the inputs so far."""
        return _Distinct(state)


class _Distinct:
    def __init__(self, state: dict[str, Any]) -> None:
        self._seen: set[str] = state.setdefault("seen", set())

    def process(self, event: Any, now: float) -> Iterable[Any] | None:
        try:
            digest = hashlib.sha256(pickle.dumps(event, protocol=5)).hexdigest()
        except Exception:  # noqa: BLE001 - any error of a user's __reduce__: let it pass
            return (event,)
        if digest in self._seen:
            return None
        self._seen.add(digest)
        return (event,)

    def tick(self, now: float) -> Iterable[Any] | None:
        return None

    def finish(self) -> Iterable[Any] | None:
        return None
