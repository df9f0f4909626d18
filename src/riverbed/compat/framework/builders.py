"""framework's providers: reactive builders, the collecting and sampling utilities, the
rendezvous and the load balancer, each an ``rb.Builder`` over riverbed operators."""

from __future__ import annotations

import abc
import functools
import queue
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast

import riverbed as rb
from riverbed.compat.framework.processors import AbstractProcessor, Context

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
