"""Sources and sinks that a flow served over HTTP declares (``riverbed serve``,
docs/serve.md): ``rb.http(name)`` is a source fed by ``POST /events/{name}``, and
``rb.reply()`` the sink whose events answer the calls of a replying source.

The HTTP service and the run share the process and its event loop: the service offers
decoded JSON to the source (``HTTPSource.offer``), bounded by the source's capacity, and
awaits what it gets back: the run's commit of a checkpoint holding the events (a durable
accept), or each call's answer, matched by its correlation id. Nothing here knows HTTP.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from riverbed._errors import SourceError

__all__ = ["Accepted", "HTTPSource", "Reply", "ReplySink", "Request", "SourceFullError", "http"]

logger = logging.getLogger("riverbed")


class SourceFullError(SourceError):
    """An HTTP source holds as many events as its capacity: the flow is behind (the
    service answers 429 with Retry-After)."""


class SourceClosedError(SourceError):
    """An HTTP source has no open reader: its run has not started, or has ended (the
    service answers 503 with Retry-After)."""


@dataclass(frozen=True)
class Request:
    """One call to a replying HTTP source: the flow's event. ``reply(answer)`` makes the
    event that ``rb.reply()`` sends back to the caller.

    >>> rb.Request("c1", {"x": 1}).reply(2)
    Reply(id='c1', body=2)
    """

    id: str
    """The correlation id: the answer goes to the call that has it."""
    body: Any
    """The JSON the caller sent (decoded: dicts, lists, str, numbers, bools, None)."""

    __module__ = "riverbed"

    def reply(self, body: Any) -> Reply:
        """The answer ``body`` (JSON-able) to this call."""
        return Reply(self.id, body)


@dataclass(frozen=True)
class Reply:
    """The answer to the call ``id``, for ``rb.reply()``: ``body`` becomes the JSON of the
    HTTP response."""

    id: str
    body: Any

    __module__ = "riverbed"


_answers: dict[str, asyncio.Future[Any]] = {}
"""The calls waiting for their answer in this process, by correlation id: the HTTP
service and the run share the process, and a reply sink answers the calls of any replying
source."""


@dataclass
class Accepted:
    """What the service awaits of events it offered: ``last``, the position of the last
    one (the run's checkpoint holding it makes them durable), and each call's answer."""

    last: int
    durable: asyncio.Future[None] | None = None
    answers: list[asyncio.Future[Any]] = field(default_factory=list)


class HTTPSource:
    """A source fed over HTTP by ``POST /events/{name}`` of ``riverbed serve``: one
    partition, its events the JSON values posted (or ``rb.Request``s, for a ``reply``
    source), bounded by ``capacity`` events waiting to be read. See ``rb.http``."""

    __module__ = "riverbed"

    def __init__(
        self, name: str, *, reply: bool = False, capacity: int = 10_000, timeout: float = 30.0
    ) -> None:
        if not isinstance(name, str) or not name.replace("-", "").replace("_", "").isalnum():
            raise ValueError(
                f"an HTTP source's name is its URL path (/events/NAME): letters, digits, '-' "
                f"and '_', got {name!r}"
            )
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"capacity must be an int >= 1 (events), got {capacity!r}")
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise ValueError(f"timeout must be a number of seconds > 0, got {timeout!r}")
        self.name = name
        self.reply = reply
        self.capacity = capacity
        self.timeout = float(timeout)
        self._reader: _HTTPReader | None = None

    def partitions(self) -> Sequence[str]:
        return ["0"]

    def open(self, partition: str, position: Any | None) -> _HTTPReader:
        self._reader = _HTTPReader(self, int(position or 0))
        return self._reader

    @property
    def ready(self) -> bool:
        """True while a run reads the source (offers are taken)."""
        return self._reader is not None and not self._reader.closed

    def offer(self, events: list[Any], *, durable: bool = False) -> Accepted:
        """Queue ``events`` for the run; ``SourceClosedError`` if no run reads the source,
        ``SourceFullError`` if they do not fit its capacity. Call on the run's event loop.
        ``durable``: ``Accepted.durable`` completes once a checkpoint holding them is
        committed."""
        reader = self._reader
        if reader is None or reader.closed:
            raise SourceClosedError(f"HTTP source {self.name!r} is not read by a running flow")
        return reader.offer(events, durable=durable)

    def abandon(self, reason: str) -> None:
        """The run reading this source has ended: what still waits for its answer or its
        checkpoint fails with ``SourceError(reason)`` (the service answers 503)."""
        if self._reader is not None:
            self._reader.fail_calls(reason)
            self._reader.fail_durable(reason)

    def end(self) -> None:
        """No more events: the reader ends its stream once it has handed out what it
        holds (the service is stopping)."""
        if self._reader is not None:
            self._reader.ending = True
            self._reader.wake()

    def __repr__(self) -> str:
        return f"rb.http({self.name!r}{', reply=True' if self.reply else ''})"


class _HTTPReader:
    """The one partition of an HTTP source: a bounded queue of offered events; positions
    count the events offered since the run began (resumed: since its first attempt)."""

    def __init__(self, source: HTTPSource, start: int) -> None:
        self.source = source
        self.offered = self.read_to = start
        self.queue: collections.deque[Any] = collections.deque()
        self.durable: collections.deque[tuple[int, asyncio.Future[None]]] = collections.deque()
        self.calls: set[asyncio.Future[Any]] = set()
        """The calls offered that wait for their answer."""
        self.closed = self.ending = False
        self._ready = asyncio.Event()

    def offer(self, events: list[Any], *, durable: bool) -> Accepted:
        if len(self.queue) + len(events) > self.source.capacity:
            raise SourceFullError(
                f"HTTP source {self.source.name!r} holds {len(self.queue)} events waiting "
                f"for the flow (capacity {self.source.capacity}): retry later"
            )
        loop = asyncio.get_running_loop()
        accepted = Accepted(self.offered + len(events))
        if self.source.reply:
            calls = [Request(uuid.uuid4().hex, body) for body in events]
            for call in calls:
                waiting = _answers[call.id] = loop.create_future()
                # A call given up (timed out) waits no more: its answer will be dropped.
                waiting.add_done_callback(functools.partial(_given_up, call.id))
                waiting.add_done_callback(self.calls.discard)
                self.calls.add(waiting)
                accepted.answers.append(waiting)
            events = calls
        if durable:
            accepted.durable = loop.create_future()
            self.durable.append((accepted.last, accepted.durable))
        self.queue.extend(events)
        self.offered = accepted.last
        self.wake()
        return accepted

    def wake(self) -> None:
        self._ready.set()

    async def read(self, max_events: int) -> list[Any] | None:
        while not self.queue:
            if self.ending or self.closed:
                return None
            self._ready.clear()
            await self._ready.wait()
        count = min(max_events, len(self.queue))
        self.read_to += count
        return [self.queue.popleft() for _ in range(count)]

    def position(self) -> int:
        return self.read_to

    def committed(self, position: int) -> None:
        """A checkpoint holding what was read up to ``position`` is committed: the offers
        it covers are durable."""
        while self.durable and self.durable[0][0] <= position:
            _, done = self.durable.popleft()
            if not done.done():
                done.set_result(None)

    def close(self) -> None:
        self.closed = True
        self.fail_durable(f"the run reading HTTP source {self.source.name!r} stopped")
        self.queue.clear()

    def fail_durable(self, reason: str) -> None:
        """The offers waiting for a checkpoint will not get one: they fail with ``reason``."""
        for _, done in self.durable:
            if not done.done():
                done.set_exception(SourceClosedError(reason))
        self.durable.clear()

    def fail_calls(self, reason: str) -> None:
        """The calls waiting for an answer will not get one: they fail with ``reason``."""
        for waiting in list(self.calls):
            if not waiting.done():
                waiting.set_exception(SourceClosedError(reason))


def answer(reply: Reply) -> None:
    """Send ``reply`` to the call waiting for it; one that waits no more (timed out, or
    made before a restart) is dropped, logged."""
    waiting = _answers.pop(reply.id, None)
    if waiting is None:
        logger.debug("reply to call %s: nobody waits for it (timed out?)", reply.id)
        return
    loop = waiting.get_loop()
    try:
        here = asyncio.get_running_loop() is loop
    except RuntimeError:  # a sink called in a thread of its own
        here = False
    if here:  # the local runner's sinks run on the loop: no wake-up of it needed
        _settle(waiting, reply.body)
    else:
        loop.call_soon_threadsafe(_settle, waiting, reply.body)


def _settle(waiting: asyncio.Future[Any], body: Any) -> None:
    if not waiting.done():
        waiting.set_result(body)


def _given_up(call: str, waiting: asyncio.Future[Any]) -> None:
    if waiting.cancelled():
        _answers.pop(call, None)


class ReplySink:
    """The sink answering calls of replying HTTP sources: takes ``rb.Reply`` events (made
    by ``Request.reply``), or ``(request, answer)`` pairs. See ``rb.reply``."""

    __module__ = "riverbed"

    def write_batch(self, events: list[Any]) -> None:
        for event in events:
            answer(_as_reply(event))

    def __repr__(self) -> str:
        return "rb.reply()"


def _as_reply(event: Any) -> Reply:
    if isinstance(event, Reply):
        return event
    if isinstance(event, tuple) and len(event) == 2 and isinstance(event[0], Request | str):
        call = event[0].id if isinstance(event[0], Request) else event[0]
        return Reply(call, event[1])
    raise TypeError(
        f"rb.reply() takes rb.Reply events (request.reply(answer)) or (request, answer) "
        f"pairs, got {type(event).__name__}: {event!r:.80}"
    )


def http(
    name: str, *, reply: bool = False, capacity: int = 10_000, timeout: float = 30.0
) -> HTTPSource:
    """A source fed by ``POST /events/{name}`` when the flow runs as a service
    (``riverbed serve``, docs/serve.md). Its events are the JSON values posted (one value,
    or each element of an array), decoded, never unpickled.

    ``reply=True``: each value is an ``rb.Request`` (``.id``, ``.body``) and the HTTP call
    waits for the flow's answer (``rb.reply()``) for ``timeout`` seconds (then 504).
    ``capacity``: events waiting for the flow past which the service answers 429.

    >>> flow = rb.Flow("orders")
    >>> flow.source(rb.http("orders")).sink(print)
    """
    return HTTPSource(name, reply=reply, capacity=capacity, timeout=timeout)


def reply() -> ReplySink:
    """The sink that answers the calls of replying HTTP sources (``rb.http(name,
    reply=True)``): its events are ``request.reply(answer)`` (or ``(request, answer)``
    pairs); each answer is the JSON response of the call with the request's id.

    >>> flow = rb.Flow("double")
    >>> flow.source(rb.http("double", reply=True)).map(lambda r: r.reply(r.body * 2)).sink(
    ...     rb.reply()
    ... )
    """
    return ReplySink()


for _public in (http, reply):
    _public.__module__ = "riverbed"
