"""A REFlow graph (a source and what it sends to) as an ``rb.Flow``: one riverbed stage
per REFlow stage, each with its workers, routed by the stage's policy."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import riverbed as rb
from riverbed.compat.reflow.stages import (
    EventSink,
    EventSource,
    EventTransformer,
    FlowStage,
    InitFn,
    LocalRoutingPolicy,
    RoutingPolicy,
)

# -- the graph as an rb.Flow ---------------------------------------------------------------


def to_flow(source: EventSource, *, engines: int = 1, name: str | None = None) -> rb.Flow:
    """The ``rb.Flow`` of the graph that starts at ``source``, with ``engines`` engines
    (each stage has ``max_workers`` of them, or all).

    Where a transformer keeps state per worker, events travel as ``(worker, event)``
    pairs: the worker of the stage that made them, which routing policies and the state of
    the next stage's workers need. Where none does, which worker takes an event changes
    nothing a stage can see, and events travel as they are (riverbed spreads the work)."""
    if not isinstance(source, EventSource):
        raise TypeError(f"a flow starts at an EventSource, got {source!r}")
    order = _in_order(source)
    names = _stage_names(order)
    flow = rb.Flow(name or "reflow." + names[id(source)])
    graph = _Graph(flow, order, engines)
    for stage in order:
        graph.add(stage, names[id(stage)])
    return flow


def _worker_counts(source: EventSource, engines: int) -> dict[str, int]:
    """Per riverbed stage that runs a REFlow stage's workers, how many (for Ray)."""
    order = _in_order(source)
    names = _stage_names(order)
    counts: dict[str, int] = {}
    for stage in order:
        for suffix in ("", ".route", ".lane", ".out"):
            counts[names[id(stage)] + suffix] = stage._workers(engines)
    return counts


def _in_order(source: FlowStage) -> list[FlowStage]:
    """Every stage reachable from ``source``, each after all that send to it."""
    seen: list[FlowStage] = []
    done: set[int] = set()

    def visit(stage: FlowStage, path: tuple[int, ...]) -> None:
        if id(stage) in path:
            raise ValueError("the flow's stages send to each other in a loop")
        if id(stage) in done:
            return
        for nxt in stage.downstream_stages:
            visit(nxt, (*path, id(stage)))
        done.add(id(stage))
        seen.append(stage)

    visit(source, ())
    return seen[::-1]


def _stage_names(order: Sequence[FlowStage]) -> dict[int, str]:
    names: dict[int, str] = {}
    taken: set[str] = set()
    for stage in order:
        base = stage._name()
        unique, number = base, 1
        while unique in taken:
            number += 1
            unique = f"{base}_{number}"
        taken.add(unique)
        names[id(stage)] = unique
    return names


class _Graph:
    """Adds a REFlow graph's stages to a flow, each after those that send to it."""

    def __init__(self, flow: rb.Flow, order: Sequence[FlowStage], engines: int) -> None:
        self.flow = flow
        self.order = order
        self.engines = engines
        self.made: dict[int, rb.Stream] = {}
        self.laned = any(isinstance(s, EventTransformer) and s.init_fn for s in order)
        """Whether events carry their worker (some transformer keeps state per worker)."""

    def add(self, stage: FlowStage, name: str) -> None:
        """Add ``stage`` as riverbed stages named after ``name``."""
        workers = stage._workers(self.engines)
        fn = stage._function()
        if isinstance(stage, EventSource):
            producer = rb.Producer(fn, state=stage.init_fn, partitions=workers)
            source = _WorkerSource(producer) if self.laned else producer
            self.made[id(stage)] = self.flow.source(source, name=name)
            return
        stream = self._input(stage, name, workers)
        if isinstance(stage, EventSink):
            asynchronous = _is_async(fn) or _is_async(stage.init_fn)
            sink = (_AsyncConsumer if asynchronous else _Consumer)(fn, stage.init_fn, self.laned)
            stream.sink(sink, name=name)
        elif not self.laned:
            self.made[id(stage)] = stream.flat_map(fn, name=name)
        elif stage.init_fn is None:
            self.made[id(stage)] = stream.flat_map(_Transform(fn), name=name)
        else:
            self.made[id(stage)] = self._stateful(stream, fn, stage.init_fn, name)

    def _input(self, stage: FlowStage, name: str, workers: int) -> rb.Stream:
        """The stream of what the stages sending to ``stage`` send it, routed."""
        edges = []
        senders = [(up, p) for up in self.order for nxt, p in up.downstream if nxt is stage]
        for n, (up, policy) in enumerate(senders):
            stream = self.made[id(up)]
            unchanged = isinstance(policy, LocalRoutingPolicy) and workers >= up._workers(
                self.engines
            )
            if self.laned and not unchanged:  # the local policy keeps the sender's index
                route = _Route(policy, workers)
                stream = stream.map(route, name=f"{name}.route" + (f"_{n}" if n else ""))
            edges.append(stream)
        return edges[0] if len(edges) == 1 else self.flow.merge(*edges, name=f"{name}.in")

    @staticmethod
    def _stateful(stream: rb.Stream, fn: Callable[..., Any], init: InitFn, name: str) -> rb.Stream:
        """A transformer with one state per worker: keyed by the worker's index."""
        step: Any = _StateStep(fn)
        initial: Any = init
        if _is_async(fn) or _is_async(init):
            step, initial = _AsyncStateStep(fn, init), _Unmade
        keyed = stream.key_by(_worker_of, name=f"{name}.lane")
        return keyed.stateful(step, initial=initial, name=name).flat_map(_each, name=f"{name}.out")


def _is_async(fn: Any) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - the method itself
    )


class _WorkerSource:
    """A producer's events as ``(worker, event)`` pairs: its partition is its worker."""

    def __init__(self, producer: rb.Producer) -> None:
        self.producer = producer
        self.__name__ = producer.__name__

    def partitions(self) -> Sequence[str]:
        return self.producer.partitions()

    def open(self, partition: str, position: Any | None) -> _WorkerReader:
        return _WorkerReader(int(partition), self.producer.open(partition, position))


class _WorkerReader:
    def __init__(self, worker: int, reader: Any) -> None:
        self.worker = worker
        self.reader = reader

    def read(self, limit: int) -> list[Any] | Awaitable[list[Any] | None] | None:
        batch = self.reader.read(limit)
        if inspect.isawaitable(batch):
            return self._tagged_later(batch)
        return None if batch is None else [(self.worker, event) for event in batch]

    async def _tagged_later(self, pending: Awaitable[list[Any] | None]) -> list[Any] | None:
        batch = await pending
        return None if batch is None else [(self.worker, event) for event in batch]

    def position(self) -> Any:
        return self.reader.position()

    def close(self) -> None:
        self.reader.close()


class _Route:
    """An edge: the worker of the next stage that each ``(sender, event)`` goes to."""

    def __init__(self, policy: RoutingPolicy, workers: int) -> None:
        self.policy = policy
        self.workers = workers

    def __call__(self, pair: tuple[int, Any]) -> tuple[int, Any]:
        sender, event = pair
        return self.policy.worker(sender, event, self.workers), event


class _Transform:
    """A stateless transformer: ``fn(event)``'s list, each with the worker's index."""

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn

    def __call__(self, pair: tuple[int, Any]) -> list[tuple[int, Any]]:
        worker, event = pair
        return [(worker, out) for out in self.fn(event)]


def _worker_of(pair: tuple[int, Any]) -> int:
    return pair[0]


def _each(keyed: tuple[int, list[Any]]) -> list[tuple[int, Any]]:
    worker, outs = keyed
    return [(worker, out) for out in outs]


class _StateStep:
    """A transformer with state, one per worker: ``fn(state, event)``."""

    def __init__(self, fn: Callable[[Any, Any], Any]) -> None:
        self.fn = fn

    def __call__(self, state: Any, pair: tuple[int, Any]) -> tuple[Any, list[Any]]:
        return state, list(self.fn(state, pair[1]))


class _Unmade:
    """A worker's state before its async ``init_fn`` ran."""


class _AsyncStateStep:
    """As ``_StateStep``, with an async function or state factory."""

    def __init__(self, fn: Callable[[Any, Any], Any], init_fn: InitFn) -> None:
        self.fn = fn
        self.init_fn = init_fn

    async def __call__(self, state: Any, pair: tuple[int, Any]) -> tuple[Any, list[Any]]:
        if isinstance(state, _Unmade):
            state = await _awaited(self.init_fn())
        return state, list(await _awaited(self.fn(state, pair[1])))


class _Consumer:
    """A sink's consumer as a riverbed batch sink that returns how many it consumed."""

    def __init__(self, fn: Callable[..., Any], init_fn: InitFn | None, laned: bool) -> None:
        self.fn = fn
        self.init_fn = init_fn
        self.laned = laned
        self.state: Any = _Unmade()

    def write_batch(self, pairs: list[Any]) -> Any:
        events = [event for _, event in pairs] if self.laned else pairs
        if self.init_fn is None:
            return self.fn(events)
        if isinstance(self.state, _Unmade):
            self.state = self.init_fn()
        return self.fn(self.state, events)


class _AsyncConsumer(_Consumer):
    """As ``_Consumer``, with an async consumer or state factory (a connection)."""

    async def write_batch(self, pairs: list[Any]) -> Any:
        events = [event for _, event in pairs] if self.laned else pairs
        if self.init_fn is None:
            return await _awaited(self.fn(events))
        if isinstance(self.state, _Unmade):
            self.state = await _awaited(self.init_fn())
        return await _awaited(self.fn(self.state, events))


async def _awaited(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value
