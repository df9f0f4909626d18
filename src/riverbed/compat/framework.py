"""``framework``'s API on riverbed: match-routed processors, phases, reactive builders.

Change ``from framework.core import ...`` / ``from framework.reactive import ...`` to
``from riverbed.compat.framework import ...`` and the code runs on riverbed (docs/compat.md).
The names map onto riverbed's native forms; nothing here routes, joins or caches by itself:

- processors (``AbstractProcessor``) are the handlers of one ``Stream.dispatch`` stage:
  routed by the ``case`` patterns of ``process``'s ``match``, what they ``submit`` routed the
  same way, ``priority`` lower first, ``__PHASE__`` at each end of phase and ``__POISON__``
  at shutdown (delivered to every processor: one without a ``case`` for them ignores them);
- reactive builders (``ReactiveBuilder`` and the utilities) are ``rb.Builder`` stages that
  ``Flow.resolve`` wires from each submitted ``ReactiveEvent(name="resolve", target=...)``;
  every artifact reaches the processors as ``ReactiveEvent(name="built", ...)``;
- ``Collector``, ``Grouper``, ``StreamGrouper``, ``StreamSampler``, ``ReservoirSampler``,
  ``make_rendezvous`` and ``make_load_balancer`` are riverbed's ``group``, ``sample``,
  ``reservoir``, ``rendezvous`` (``rb.WaitForever`` / ``rb.MaxPending``) and ordered
  ``parallel_map`` (``gap="wait"`` / ``"skip"``) stages.

Where riverbed differs, on purpose:

- a builder's artifacts flow to the builders that require them inside the flow; a
  ``resolve`` that a processor submits while the pipeline runs is seen by processors but
  starts no builder (resolve before ``run()``);
- processors of one pipeline run one at a time, in one stage (framework runs different
  processors on ``max_workers`` threads): processors hold state without locks, and a
  checkpoint sees them between events. Parallelism is ``make_load_balancer``'s, on threads;
- rendezvous keys go through riverbed's stable hash, never Python's ``hash``,
  which is salted per process and would send one key to different places;
- ``workspace=`` keeps the runs, checkpoints and persisted artifacts in a riverbed store
  (SQLite in that directory) instead of RocksDB archives.
"""

from __future__ import annotations

import abc
import functools
import logging
import queue
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import riverbed as rb

__all__ = [
    "AbstractProcessor",
    "Collector",
    "Context",
    "Event",
    "Grouper",
    "LoadBalancer",
    "LoadBalancerCollector",
    "MaxPendingRendezvousKeys",
    "Pipeline",
    "ReactiveBuilder",
    "ReactiveEvent",
    "RendezvousPublisher",
    "RendezvousReceiver",
    "ReservoirSampler",
    "SkipAheadOnBacklog",
    "StreamGrouper",
    "StreamSampler",
    "WaitForRendezvousOrphans",
    "WaitForSequenceGaps",
    "caching",
    "make_load_balancer",
    "make_rendezvous",
    "parallelize",
    "retry",
    "timeit",
]

PHASE = "__PHASE__"
POISON = "__POISON__"
_log = logging.getLogger(__name__)


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


# -- reactive builders ----------------------------------------------------------------------


class _Provider(AbstractProcessor):
    """What a pipeline resolves from a target: it provides ``provides`` from the artifacts
    of ``requires``, as a riverbed builder (``as_builder``)."""

    def __init__(self, provides: str, requires: Iterable[str] = (), persist: bool = False) -> None:
        self.provides = provides
        self.requires = list(requires)
        self.persist = persist

    def process(self, context: Context, event: Any) -> None:
        """Providers run as riverbed stages, not as processors: nothing to do here."""

    @abc.abstractmethod
    def as_builder(self) -> rb.Builder:
        """The riverbed builder this provider is."""


class _StreamProvider(_Provider):
    """A provider that adds riverbed stages over its required streams (``_apply``)."""

    def as_builder(self) -> rb.Builder:
        """The riverbed builder: ``apply`` adds the provider's stages."""
        return rb.Builder(self.provides, apply=self._apply, requires=self.requires)

    @abc.abstractmethod
    def _apply(self, *streams: rb.Stream) -> rb.Stream:
        """The provider's stages on its required streams; the stream of its artifacts."""


class ReactiveBuilder(_Provider):
    """A builder of ``provides`` from the artifacts of ``requires``: ``build(context,
    *artifacts)`` yields artifacts (``"*name"`` spreads a tuple artifact into arguments);
    ``persist=True`` memoizes them in the store (``rb.Builder(persist=True)``)."""

    @abc.abstractmethod
    def build(self, context: Context, *artifacts: Any) -> Iterable[Any]:
        """Yield the artifacts built from one input."""

    def as_builder(self) -> rb.Builder:
        """The riverbed builder this one is."""
        build = self.build

        @functools.wraps(build)
        def call(*artifacts: Any) -> Iterable[Any]:
            return build(Context(), *artifacts)

        return rb.Builder(self.provides, call, requires=self.requires, persist=self.persist)


class _Utility(_StreamProvider):
    """A built-in utility: a riverbed operator over the merged required streams."""

    def _apply(self, *streams: rb.Stream) -> rb.Stream:
        return self._operate(rb.merge(*streams, name=f"{self.provides}.in"))

    @abc.abstractmethod
    def _operate(self, stream: rb.Stream) -> rb.Stream:
        """The utility's stage(s) on the merged stream."""


def _key_of(key: Any) -> Callable[[Any], Any]:
    """A key function from a callable, or an attribute / item name."""
    if callable(key):
        return key  # type: ignore[no-any-return]
    return functools.partial(_get, key)


def _get(name: Any, value: Any) -> Any:
    if isinstance(value, dict):
        return value[name]
    if isinstance(value, list | tuple) and isinstance(name, int):
        return value[name]
    return getattr(value, name)


def _everything(value: Any) -> None:
    """One group for all artifacts."""


class Collector(_Utility):
    """All artifacts of ``requires``, emitted as one list at the end of the phase
    (riverbed's ``group(until="end")`` under one key)."""

    def _operate(self, stream: rb.Stream) -> rb.Stream:
        grouped = stream.key_by(_everything, name=f"{self.provides}.all").group(
            until="end", name=self.provides
        )
        return cast(rb.KeyedStream, grouped).values(name=f"{self.provides}.list")


class Grouper(_Utility):
    """``(key, list)`` per key of the artifacts, at the end of the phase (``group``)."""

    def __init__(self, provides: str, requires: Iterable[str], key: Any) -> None:
        super().__init__(provides, requires)
        self.key = _key_of(key)

    def _operate(self, stream: rb.Stream) -> rb.Stream:
        keyed = stream.key_by(self.key, name=f"{self.provides}.key")
        return keyed.group(until="end", name=self.provides)


class StreamGrouper(Grouper):
    """``(key, list)`` of each run of one key, emitted when the key changes; the last one
    at the end of the phase (``group(until="key_change")``)."""

    def _operate(self, stream: rb.Stream) -> rb.Stream:
        keyed = stream.key_by(self.key, name=f"{self.provides}.key")
        return keyed.group(until="key_change", name=self.provides)


class StreamSampler(_Utility):
    """Each artifact kept with ``probability`` (``sample``; ``seed`` makes it repeatable)."""

    def __init__(
        self, provides: str, requires: Iterable[str], probability: float, seed: int = 0
    ) -> None:
        super().__init__(provides, requires)
        self.probability, self.seed = probability, seed

    def _operate(self, stream: rb.Stream) -> rb.Stream:
        return stream.sample(self.probability, seed=self.seed, name=self.provides)


class ReservoirSampler(_Utility):
    """A uniform sample of at most ``size`` artifacts, one list at the end of the phase
    (``reservoir``)."""

    def __init__(self, provides: str, requires: Iterable[str], size: int, seed: int = 0) -> None:
        super().__init__(provides, requires)
        self.size, self.seed = size, seed

    def _operate(self, stream: rb.Stream) -> rb.Stream:
        return stream.reservoir(self.size, seed=self.seed, name=self.provides)


# -- rendezvous -----------------------------------------------------------------------------


@dataclass(frozen=True)
class WaitForRendezvousOrphans:
    """Keys waiting for their other inputs wait for ever (``rb.WaitForever``)."""

    def native(self) -> Any:
        """riverbed's policy."""
        return rb.WaitForever()


@dataclass(frozen=True)
class MaxPendingRendezvousKeys:
    """At most ``max_pending`` keys wait; a new one evicts the oldest (``rb.MaxPending``)."""

    max_pending: int

    def native(self) -> Any:
        """riverbed's policy."""
        return rb.MaxPending(self.max_pending)


class RendezvousPublisher(_StreamProvider):
    """Joins the ``requires`` streams by key: as soon as every input has an artifact for a
    key, emits the tuple of their oldest (``rendezvous``)."""

    def __init__(
        self,
        provides: str,
        requires: Iterable[str],
        keys: Iterable[Any],
        orphan_policy: WaitForRendezvousOrphans | MaxPendingRendezvousKeys | None = None,
    ) -> None:
        super().__init__(provides, requires)
        self.keys = [_key_of(key) for key in keys]
        if len(self.keys) != len(self.requires) or len(self.requires) < 2:
            raise ValueError(
                f"make_rendezvous({provides!r}): give one key per requirement, and at least "
                f"two requirements; got {len(self.requires)} requires and {len(self.keys)} keys"
            )
        self.orphan_policy = orphan_policy or WaitForRendezvousOrphans()

    def _apply(self, *streams: rb.Stream) -> rb.Stream:
        keyed = [
            stream.key_by(key, name=f"{self.provides}.key{i}")
            for i, (stream, key) in enumerate(zip(streams, self.keys, strict=True))
        ]
        joined = keyed[0].rendezvous(
            *keyed[1:], orphans=self.orphan_policy.native(), name=self.provides
        )
        return joined.values(name=f"{self.provides}.rows")


class RendezvousReceiver(AbstractProcessor):
    """One input of a rendezvous; the publisher's riverbed stage takes its artifacts, so
    this processor only keeps framework's ``(publisher, *receivers)`` shape."""

    def __init__(self, publisher: RendezvousPublisher, index: int) -> None:
        self.publisher, self.index = publisher, index

    def process(self, context: Context, event: Any) -> None:
        """Nothing: the rendezvous stage receives the artifacts."""


def make_rendezvous(
    provides: str,
    requires: Iterable[str],
    keys: Iterable[Any],
    orphan_policy: WaitForRendezvousOrphans | MaxPendingRendezvousKeys | None = None,
) -> tuple[Any, ...]:
    """``(publisher, receiver_0, receiver_1, ...)`` joining ``requires`` by ``keys`` (one
    key function, attribute or item name per requirement) into ``provides``."""
    publisher = RendezvousPublisher(provides, requires, keys, orphan_policy)
    return (publisher, *(RendezvousReceiver(publisher, i) for i in range(len(publisher.requires))))


# -- load balancing -------------------------------------------------------------------------


@dataclass(frozen=True)
class WaitForSequenceGaps:
    """Results leave in input order; a slow one holds back those after it."""


@dataclass(frozen=True)
class SkipAheadOnBacklog:
    """Results leave in input order until ``max_buffered`` wait behind a slow one; then
    they go past it, and it follows when done (``parallel_map(gap="skip")``)."""

    max_buffered: int


class _Workers:
    """The worker instances of a load balancer, each used by one thread at a time."""

    def __init__(self, worker_class: Callable[..., Any], count: int, args: tuple[Any, ...]) -> None:
        self.worker_class, self.count, self.args = worker_class, count, args
        self._free: queue.SimpleQueue[Any] | None = None

    def __getstate__(self) -> dict[str, Any]:  # shipped to Ray or a checkpoint: no queue
        return {**vars(self), "_free": None}

    def __call__(self, artifact: Any) -> list[Any]:
        if self._free is None:
            self._free = queue.SimpleQueue()
            for _ in range(self.count):
                self._free.put(self.worker_class(*self.args))
        worker = self._free.get()
        try:
            return list(worker.build(Context(), artifact))
        finally:
            self._free.put(worker)


class LoadBalancer(_StreamProvider):
    """Builds ``provides`` from ``requires`` on ``num_workers`` instances of
    ``worker_class`` at once (riverbed's ``parallel_map`` on threads)."""

    def __init__(
        self,
        provides: str,
        requires: Iterable[str],
        worker_class: Callable[..., Any],
        num_workers: int,
        preserve_fifo: bool = True,
        gap_policy: WaitForSequenceGaps | SkipAheadOnBacklog | None = None,
    ) -> None:
        super().__init__(provides, requires)
        self.workers = _Workers(worker_class, num_workers, (provides, self.requires))
        self.preserve_fifo = preserve_fifo
        self.gap_policy = gap_policy or WaitForSequenceGaps()

    def _apply(self, *streams: rb.Stream) -> rb.Stream:
        gap = self.gap_policy
        skip = isinstance(gap, SkipAheadOnBacklog)
        results = rb.merge(*streams, name=f"{self.provides}.in").parallel_map(
            self.workers,
            workers=self.workers.count,
            ordered=self.preserve_fifo,
            gap="skip" if skip else "wait",
            max_buffered=gap.max_buffered if isinstance(gap, SkipAheadOnBacklog) else 1000,
            name=f"{self.provides}.workers",
        )
        return results.flat_map(_each, name=self.provides)


def _each(items: list[Any]) -> list[Any]:
    """A worker's artifacts, one by one."""
    return items


class LoadBalancerCollector(AbstractProcessor):
    """Reassembles worker results in input order: riverbed's ordered ``parallel_map`` does
    it, so this processor only keeps framework's shape."""

    def process(self, context: Context, event: Any) -> None:
        """Nothing: ordering happens in the parallel_map stage."""


def make_load_balancer(
    provides: str,
    requires: Iterable[str],
    worker_class: Callable[..., Any],
    num_workers: int,
    preserve_fifo: bool = True,
    gap_policy: WaitForSequenceGaps | SkipAheadOnBacklog | None = None,
) -> tuple[Any, ...]:
    """``(balancer, collector)``: ``num_workers`` instances of ``worker_class(provides,
    requires)`` build ``provides`` from ``requires`` in parallel; with ``preserve_fifo``
    their results leave in input order, gaps handled by ``gap_policy``."""
    if preserve_fifo is False and gap_policy is not None:
        raise ValueError("make_load_balancer: a gap_policy needs preserve_fifo=True")
    balancer = LoadBalancer(
        provides, requires, worker_class, num_workers, preserve_fifo, gap_policy
    )
    return (balancer, LoadBalancerCollector())


parallelize = make_load_balancer
"""framework's earlier name of ``make_load_balancer``."""


# -- decorators -----------------------------------------------------------------------------


def caching(process: Callable[..., Any]) -> Callable[..., Any]:
    """Cache what ``process(self, context, event)`` submits by the event's ``repr``: an
    equal event later is answered by submitting the cached events again, without a call.
    (For artifacts kept in the store across runs, use ``ReactiveBuilder(persist=True)``.)"""
    cache: dict[tuple[int, str], list[Any]] = {}

    @functools.wraps(process)
    def cached(self: Any, context: Context, event: Any) -> None:
        digest = (id(self), f"{type(event).__qualname__}:{event!r}")
        if digest not in cache:
            inner = Context()
            process(self, inner, event)
            cache[digest] = inner.submitted
        for out in cache[digest]:
            context.submit(out)

    return cached


def retry(attempts: int = 3, delay: float = 0.0) -> Callable[[Callable[..., Any]], Any]:
    """Call the decorated function again on an exception, up to ``attempts`` times in all,
    ``delay`` seconds apart. (riverbed's own form is a stage's ``retry=rb.Retry(...)``.)"""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def again(*args: Any, **kwargs: Any) -> Any:
            for attempt in range(1, attempts + 1):
                try:
                    return fn(*args, **kwargs)
                except Exception:  # any failure is retried, then raised
                    if attempt == attempts:
                        raise
                    time.sleep(delay)
            return None

        return again

    return decorate


def timeit(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Log how long each call of ``fn`` takes (logger ``riverbed.compat.framework``)."""

    @functools.wraps(fn)
    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            _log.info("%s took %.6f s", fn.__qualname__, time.perf_counter() - start)

    return timed


# -- the pipeline ---------------------------------------------------------------------------


def _drop(event: Any) -> None:
    """The pipeline's end: processors act by side effects and by what they submit."""


class _Announce:
    """An artifact of ``target`` as ``ReactiveEvent(name="built", ...)``."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __call__(self, artifact: Any) -> ReactiveEvent:
        return ReactiveEvent(name="built", target=self.target, artifact=artifact)


class Pipeline:
    """Processors and builders run as one riverbed flow: ``submit`` events, then ``run()``.

    ``strict_interest_inference=True`` routes only by inferred ``match`` patterns (and a
    processor whose patterns cannot be inferred is an error when the flow is built);
    otherwise such a processor gets the events no other processor wants. ``max_workers``
    is accepted for compatibility (see the module docstring). ``workspace=Path(...)`` keeps
    runs and persisted artifacts in a store in that directory; ``store=`` names one directly.
    """

    def __init__(
        self,
        processors: Iterable[AbstractProcessor],
        strict_interest_inference: bool = False,
        max_workers: int | None = None,
        workspace: Path | str | None = None,
        *,
        name: str = "framework-pipeline",
        store: Any = None,
    ) -> None:
        self.processors = list(processors)
        self.strict = strict_interest_inference
        self.max_workers = max_workers
        self.name = name
        self.store = store
        if workspace is not None:
            Path(workspace).mkdir(parents=True, exist_ok=True)
            self.store = self.store or f"sqlite:///{Path(workspace).resolve() / 'riverbed.db'}"
        self.events: list[Any] = []
        self._handlers = [
            rb.Handler(_Handler(p), priority=getattr(p, "priority", 0), match=type(p).process)
            for p in self._plain()
        ]
        if self.strict and self._handlers:  # a processor strict routing cannot read: now
            rb.Flow(name).source([]).dispatch(*self._handlers, strict=True)

    def _plain(self) -> list[AbstractProcessor]:
        skip = (_Provider, RendezvousReceiver, LoadBalancerCollector)
        return [p for p in self.processors if not isinstance(p, skip)]

    def _builders(self) -> list[_Provider]:
        return [p for p in self.processors if isinstance(p, _Provider)]

    def submit(self, event: Any) -> int:
        """Queue ``event`` for the next ``run()``; return how many processors it reaches."""
        self.events.append(event)
        wants = [handler.wants(event) for handler in self._handlers]
        count = sum(1 for w in wants if w)
        if not count and not self.strict:
            count = sum(1 for w in wants if w is None)
        if _is_resolve(event) and any(b.provides == event.target for b in self._builders()):
            count += 1
        return count

    def flow(self) -> rb.Flow:
        """The riverbed flow of the submitted events through the processors."""
        flow = rb.Flow(self.name)
        builders = [b.as_builder() for b in self._builders()]
        streams: dict[str, rb.Stream] = {}
        for event in self.events:
            if _is_resolve(event) and event.target not in streams:
                streams.update(flow.resolve(event.target, builders))
        inputs = [flow.source(list(self.events), name="submitted")]
        for target, stream in streams.items():
            inputs.append(stream.map(_Announce(target), name=f"{target}.built"))
        merged = rb.merge(*inputs, name="events") if len(inputs) > 1 else inputs[0]
        if self._handlers:
            merged = merged.dispatch(*self._handlers, strict=self.strict, name="processors")
        merged.sink(_drop, name="end")
        return flow

    def run(self, **options: Any) -> rb.RunResult:
        """Run every submitted event to quiescence, the phases, then shutdown; return the
        run's result. ``options`` go to ``Flow.run`` (e.g. ``resume=RUN``)."""
        if self.store is not None:
            options.setdefault("store", self.store)
        options.setdefault("progress", False)
        result = self.flow().run(**options)
        self.events = []
        return result


def _is_resolve(event: Any) -> bool:
    return isinstance(event, ReactiveEvent) and event.name == "resolve"
