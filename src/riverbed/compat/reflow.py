"""REFlow's API on riverbed: flows of plain-Python stages deployed to a cluster of engines.

A REFlow flow is a graph of stages: an ``EventSource`` whose producer function returns up
to ``limit`` events per call, ``EventTransformer`` stages whose function returns a list of
events per event (``[]`` filters, several split), and an ``EventSink`` whose consumer
returns how many events of a batch it consumed. ``send_to`` wires a stage to the next, by a
routing policy; ``FlowCluster`` deploys the graph to its engines. Here the graph becomes an
``rb.Flow`` (``to_flow``) and the engines a riverbed runner (docs/compat.md)::

    REFlow                                 riverbed
    EventSource + producer_fn              rb.Producer(fn, state=init_fn, partitions=workers)
    EventTransformer + transform_fn        flat_map; with init_fn, key_by(worker).stateful
    EventSink + consumer_fn                a batch sink returning how many it consumed
    KeyBasedRoutingPolicy(key_fn)          the worker of rb.stable_hash(key_fn(event))
    engines 'tcp://...', 'ipc://...'       the local runner (one process; workers are lanes)
    engines 'ray', 'auto', 'ray://...'     rb.RayRunner, each stage with its workers as actors

A stage with ``init_fn`` has one state per worker, as in REFlow: a transformer's worker
keeps its state across events (checkpointed with the run), and each source worker has its
own producer state. ``max_workers=0`` means one worker per engine; ``n`` means at most
``n``. Every event is routed to one worker of each downstream stage.
"""

from __future__ import annotations

import abc
import asyncio
import inspect
import re
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import riverbed as rb

__all__ = [
    "EndOfStreamException",
    "EventSink",
    "EventSource",
    "EventTransformer",
    "FlowCluster",
    "FlowStage",
    "KeyBasedRoutingPolicy",
    "LoadBalancedRoutingPolicy",
    "LocalRoutingPolicy",
    "RoutingPolicy",
    "flow_connector_factory",
    "to_flow",
]

EndOfStreamException = rb.EndOfStream
"""What a producer function raises when its stream has ended (``rb.EndOfStream``)."""

InitFn = Callable[[], Any]
"""A stage's state factory: no arguments, returns the state (or an awaitable of it)."""

S = TypeVar("S", bound="FlowStage")


# -- routing policies ----------------------------------------------------------------------


class RoutingPolicy(abc.ABC):
    """How an event picks a worker of the next stage: ``worker(sender, event, workers)``
    returns an index in ``0 .. workers-1``, given the sending worker's index."""

    @abc.abstractmethod
    def worker(self, sender: int, event: Any, workers: int) -> int:
        """The worker of the next stage that gets ``event``."""


class LocalRoutingPolicy(RoutingPolicy):
    """The worker with the sender's index (in REFlow: the one on the sender's engine)."""

    def worker(self, sender: int, event: Any, workers: int) -> int:
        """The sender's own index, within the next stage's workers."""
        return sender % workers


class KeyBasedRoutingPolicy(RoutingPolicy):
    """Events with equal keys go to the same worker: ``key_fn(event)`` picks it.

    Unlike REFlow, which used Python's ``hash()`` (salted per process for strings and
    bytes, so two engines disagreed on a key's worker), the key is hashed with
    ``rb.stable_hash``: the same worker in every process, on every machine, in every run.
    """

    def __init__(self, key_fn: Callable[[Any], Any]) -> None:
        if not callable(key_fn):
            raise TypeError(f"KeyBasedRoutingPolicy takes a function, got {key_fn!r}")
        self.key_fn = key_fn

    def worker(self, sender: int, event: Any, workers: int) -> int:
        """The worker owning the event's key."""
        return rb.stable_hash(self.key_fn(event)) % workers


class LoadBalancedRoutingPolicy(RoutingPolicy):
    """Events are spread evenly over the next stage's workers, in turn."""

    def __init__(self) -> None:
        self.turn = 0

    def worker(self, sender: int, event: Any, workers: int) -> int:
        """The next worker in turn."""
        self.turn += 1
        return self.turn % workers


# -- stages ----------------------------------------------------------------------------------


class FlowStage(abc.ABC):
    """A stage of a flow: its state factory, how many workers it may have, what follows."""

    def __init__(self, init_fn: InitFn | None = None, max_workers: int = 0) -> None:
        if init_fn is not None and not callable(init_fn):
            raise TypeError(f"init_fn must be callable (a state factory), got {init_fn!r}")
        if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 0:
            raise ValueError(
                f"max_workers must be an int >= 0 (0: every engine), got {max_workers!r}"
            )
        self.init_fn = init_fn
        self.max_workers = max_workers
        self.downstream: list[tuple[FlowStage, RoutingPolicy]] = []

    @property
    def downstream_stages(self) -> list[FlowStage]:
        """The stages this one sends to, in ``send_to`` order."""
        return [stage for stage, _ in self.downstream]

    def send_to(self, next_stage: S, routing_policy: RoutingPolicy | None = None) -> S:
        """Send this stage's events to ``next_stage`` (by ``routing_policy``, by default
        ``LocalRoutingPolicy()``); returns ``next_stage`` to chain calls."""
        if not isinstance(next_stage, FlowStage) or isinstance(next_stage, EventSource):
            raise TypeError(f"send_to takes an EventTransformer or EventSink, got {next_stage!r}")
        if isinstance(self, EventSink):
            raise TypeError("an EventSink ends a flow: it cannot send_to another stage")
        policy = routing_policy if routing_policy is not None else LocalRoutingPolicy()
        if not isinstance(policy, RoutingPolicy):
            raise TypeError(f"routing_policy must be a RoutingPolicy, got {policy!r}")
        self.downstream.append((next_stage, policy))
        return next_stage

    @abc.abstractmethod
    def _function(self) -> Callable[..., Any]:
        """The user function this stage calls."""

    def _name(self) -> str:
        fn = self._function()
        name = getattr(fn, "__name__", type(fn).__name__)
        return re.sub(r"[^0-9A-Za-z_.-]+", "_", name).strip("_") or "stage"

    def _workers(self, engines: int) -> int:
        return min(self.max_workers, engines) if self.max_workers else engines


class EventSource(FlowStage):
    """The start of a flow: ``with_producer_fn(fn)``, ``fn(limit)`` or with ``init_fn``
    ``fn(state, limit)``, returns at most ``limit`` events, ``[]`` for nothing now, and
    raises ``EndOfStreamException`` at the end. Each worker has its own state, kept in
    the run's checkpoints (see ``rb.Producer``)."""

    def __init__(self, init_fn: InitFn | None = None, max_workers: int = 0) -> None:
        super().__init__(init_fn, max_workers)
        self.producer_fn: Callable[..., Any] | None = None

    def with_producer_fn(self, producer_fn: Callable[..., Any]) -> EventSource:
        """Set the producer function; returns this stage."""
        self.producer_fn = producer_fn
        return self

    def _function(self) -> Callable[..., Any]:
        if self.producer_fn is None:
            raise ValueError("this EventSource has no producer: call with_producer_fn(fn)")
        return self.producer_fn


class EventTransformer(FlowStage):
    """A stage between source and sink: ``with_transform_fn(fn)``, ``fn(event)`` or with
    ``init_fn`` ``fn(state, event)``, returns a list of events (``[]`` filters one out,
    several split it). ``expansion_factor`` is how many events one makes on average; REFlow
    sized its reads by it, riverbed's bounded batches hold memory down by themselves."""

    def __init__(
        self, expansion_factor: float = 1.0, init_fn: InitFn | None = None, max_workers: int = 0
    ) -> None:
        super().__init__(init_fn, max_workers)
        if isinstance(expansion_factor, bool) or not (
            isinstance(expansion_factor, int | float) and expansion_factor > 0
        ):
            raise ValueError(f"expansion_factor must be a number > 0, got {expansion_factor!r}")
        self.expansion_factor = expansion_factor
        self.transform_fn: Callable[..., Any] | None = None

    def with_transform_fn(self, transform_fn: Callable[..., Any]) -> EventTransformer:
        """Set the transform function; returns this stage."""
        self.transform_fn = transform_fn
        return self

    def _function(self) -> Callable[..., Any]:
        if self.transform_fn is None:
            raise ValueError("this EventTransformer has no function: call with_transform_fn(fn)")
        return self.transform_fn


class EventSink(FlowStage):
    """The end of a flow: ``with_consumer_fn(fn)``, ``fn(events)`` or with ``init_fn``
    ``fn(state, events)``, returns how many of ``events`` it consumed; the rest is offered
    again, in order (a riverbed batch sink that counts). Its state is made once."""

    def __init__(self, init_fn: InitFn | None = None, max_workers: int = 0) -> None:
        super().__init__(init_fn, max_workers)
        self.consumer_fn: Callable[..., Any] | None = None

    def with_consumer_fn(self, consumer_fn: Callable[..., Any]) -> EventSink:
        """Set the consumer function; returns this stage."""
        self.consumer_fn = consumer_fn
        return self

    def _function(self) -> Callable[..., Any]:
        if self.consumer_fn is None:
            raise ValueError("this EventSink has no consumer: call with_consumer_fn(fn)")
        return self.consumer_fn


def flow_connector_factory(init_fn: Callable[..., Any]) -> Callable[..., InitFn]:
    """A decorator for connections to outside services: ``factory(*args)`` gives an async
    ``init_fn`` that calls ``init_fn(*args)`` (awaited if it is async) when a worker starts.
    """

    def wrapper(*args: Any, **kwargs: Any) -> InitFn:
        async def inner() -> Any:
            made = init_fn(*args, **kwargs)
            return await made if inspect.isawaitable(made) else made

        return inner

    return wrapper


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


# -- the cluster -----------------------------------------------------------------------------


class FlowCluster:
    """The engines that flows are deployed to, as a riverbed runner.

    ``engine_addresses``: REFlow's engine addresses (``tcp://host:port``, ``ipc://...``,
    or ``local``) run on riverbed's local runner, in this process: each address is one
    engine, so a stage has up to that many workers (lanes, each with its own state). A Ray
    address (``ray`` for a local Ray instance or the one this process joined, ``auto``, or
    ``ray://host:port``) runs on ``rb.RayRunner``: each listed address is one engine of
    that cluster, and each stage runs its workers as Ray actors. ``store`` is where runs
    are recorded (riverbed's default store when not given; ``False`` for none). Other
    keywords are ``Flow.run``'s options for every job (``batch_size``,
    ``checkpoint_events``...).
    """

    def __init__(
        self, engine_addresses: Sequence[str], *, store: Any = None, **run_options: Any
    ) -> None:
        addresses = [engine_addresses] if isinstance(engine_addresses, str) else engine_addresses
        if not addresses or not all(isinstance(a, str) for a in addresses):
            raise ValueError(
                f"engine_addresses must be a non-empty list of str, got {engine_addresses!r}"
            )
        self.engine_addresses = list(addresses)
        self.store = store
        self.run_options = run_options
        self.ray_address = _ray_address(self.engine_addresses)
        self.deployed_jobs: dict[str, asyncio.Task[rb.RunResult]] = {}

    def runner(self, source: EventSource) -> rb.RayRunner | None:
        """The runner of ``source``'s flow: None for the local runner, or a RayRunner."""
        if self.ray_address is None:
            return None
        engines = len(self.engine_addresses)
        resources = {
            name: rb.StageResources(parallelism=count)
            for name, count in _worker_counts(source, engines).items()
        }
        address = None if self.ray_address == "ray" else self.ray_address
        return rb.RayRunner(address=address, parallelism=engines, stages=resources)

    async def deploy(self, source: EventSource, *, resume: str | None = None) -> str:
        """Start the flow that begins at ``source``; returns its job id (the run's id).
        ``resume``: the job id of a failed or cancelled run of the same flow, to go on from
        its last checkpoint."""
        flow = to_flow(source, engines=len(self.engine_addresses))
        options: dict[str, Any] = {"progress": False, **self.run_options}
        options["runner"] = self.runner(source)
        if self.store is not None:
            options["store"] = self.store
        if resume is not None:
            options["resume"] = job_id = resume
        else:
            options["run_id"] = job_id = str(uuid.uuid4())
        self.deployed_jobs[job_id] = asyncio.ensure_future(flow.arun(**options))
        await asyncio.sleep(0)  # let it start
        return job_id

    async def wait_for_completion(self, job_id: str, timeout_secs: float) -> bool:
        """True once the job has finished (a failed job raises its ``rb.RunFailedError``),
        False if it is still running after ``timeout_secs``."""
        job = self.deployed_jobs.get(job_id)
        if job is None:
            raise RuntimeError(f"No deployed job with id={job_id} exists")
        done, _ = await asyncio.wait([job], timeout=timeout_secs)
        if not done:
            return False
        job.result()
        return True

    def result(self, job_id: str) -> rb.RunResult:
        """The ``rb.RunResult`` of a finished job."""
        return self.deployed_jobs[job_id].result()

    async def request_shutdown(self) -> None:
        """Stop the jobs still running (each run is recorded CANCELLED, and resumable)."""
        running = [job for job in self.deployed_jobs.values() if not job.done()]
        for job in running:
            job.cancel()
        if running:
            await asyncio.wait(running)


def _ray_address(addresses: Sequence[str]) -> str | None:
    """The Ray cluster the addresses name, or None when they are local engines."""
    ray = {a for a in addresses if a in ("ray", "auto") or a.startswith("ray://")}
    if not ray:
        for address in addresses:
            if address != "local" and not re.match(r"^(tcp|ipc|inproc)://", address):
                raise ValueError(
                    f"engine address {address!r} is neither a local engine ('local', "
                    "'tcp://host:port', 'ipc://...') nor a Ray cluster ('ray', 'auto', "
                    "'ray://host:port')"
                )
        return None
    if len(ray) > 1 or len(ray) < len(set(addresses)):
        raise ValueError(
            f"engine addresses {list(addresses)} mix clusters: list one Ray address (as many "
            "times as it has engines) or local engines only"
        )
    return ray.pop()
