"""REFlow's stages and routing policies, as the seed's API shapes them."""

from __future__ import annotations

import abc
import inspect
import re
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import riverbed as rb

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

    FUNCTION: ClassVar[str]
    """The attribute holding the stage's function, set by ``with_<FUNCTION>(fn)``."""

    def _function(self) -> Callable[..., Any]:
        fn: Callable[..., Any] | None = getattr(self, self.FUNCTION)
        if fn is None:
            raise ValueError(
                f"this {type(self).__name__} has no function: call with_{self.FUNCTION}(fn)"
            )
        return fn

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

    FUNCTION = "producer_fn"

    def __init__(self, init_fn: InitFn | None = None, max_workers: int = 0) -> None:
        super().__init__(init_fn, max_workers)
        self.producer_fn: Callable[..., Any] | None = None

    def with_producer_fn(self, producer_fn: Callable[..., Any]) -> EventSource:
        """Set the producer function; returns this stage."""
        self.producer_fn = producer_fn
        return self


class EventTransformer(FlowStage):
    """A stage between source and sink: ``with_transform_fn(fn)``, ``fn(event)`` or with
    ``init_fn`` ``fn(state, event)``, returns a list of events (``[]`` filters one out,
    several split it). ``expansion_factor`` is how many events one makes on average; REFlow
    sized its reads by it, riverbed's bounded batches hold memory down by themselves."""

    FUNCTION = "transform_fn"

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


class EventSink(FlowStage):
    """The end of a flow: ``with_consumer_fn(fn)``, ``fn(events)`` or with ``init_fn``
    ``fn(state, events)``, returns how many of ``events`` it consumed; the rest is offered
    again, in order (a riverbed batch sink that counts). Its state is made once."""

    FUNCTION = "consumer_fn"

    def __init__(self, init_fn: InitFn | None = None, max_workers: int = 0) -> None:
        super().__init__(init_fn, max_workers)
        self.consumer_fn: Callable[..., Any] | None = None

    def with_consumer_fn(self, consumer_fn: Callable[..., Any]) -> EventSink:
        """Set the consumer function; returns this stage."""
        self.consumer_fn = consumer_fn
        return self


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
