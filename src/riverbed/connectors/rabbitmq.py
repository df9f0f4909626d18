"""RabbitMQ: a queue source that acknowledges on checkpoint commit, and a sink whose
publishes are confirmed by the broker.

Built on aio-pika (the ``rabbitmq`` extra): riverbed's engine is asyncio, and acks must go
out on the consuming channel from the event loop while a read waits; pika's blocking
connection is neither asyncio nor thread-safe.

A queue has no positions to go back to: a message is either acknowledged (gone) or
delivered again after the consumer's connection closes. So the source acknowledges a
checkpoint's messages only once it is committed, and its position is the list of
``message_id``s it read and had not yet acknowledged at the checkpoint: a run that
resumes after dying between the commit and the ack drops (and acknowledges) those when
they are delivered again. With message ids on every message, state is exactly-once; a
message without one that is delivered again in that window is counted again
(at-least-once). Messages read after the checkpoint are delivered again and read again.
"""

from __future__ import annotations

import asyncio
import collections
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from riverbed.connectors._common import ConnectorError, Decode, Decoder, client, retry_async

__all__ = ["RabbitMQSink", "RabbitMQSource"]


def _pika(connector: str) -> Any:
    return client("aio_pika", "rabbitmq", connector)


def _address(url: str) -> str:
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    user = rest.partition("@")[0].partition(":")[0]
    return f"{scheme}://{user}:***@{rest.rpartition('@')[2]}"


async def _connect(url: str, connector: str, seconds: float) -> Any:
    """An aio-pika connection, retried for ``seconds``; a clear error after (wrong
    credentials at once: retrying does not fix them)."""
    aio_pika = _pika(connector)
    exceptions = aio_pika.exceptions

    async def once() -> Any:
        return await aio_pika.connect(url, timeout=3)

    try:
        return await retry_async(
            connector, once, (OSError, exceptions.AMQPConnectionError), seconds=seconds
        )
    except exceptions.ProbableAuthenticationError as error:
        raise ConnectorError(
            f"{connector}: RabbitMQ at {_address(url)} refused the credentials ({error}); "
            "check the user and password in the URL",
            connector=connector.partition("(")[0],
            address=_address(url),
        ) from error
    except (OSError, exceptions.AMQPConnectionError) as error:
        raise ConnectorError(
            f"{connector}: RabbitMQ at {_address(url)} is unreachable "
            f"({type(error).__name__}: {error}); retried for {seconds:g} s. Check that the "
            "server runs and the URL is right",
            connector=connector.partition("(")[0],
            address=_address(url),
        ) from error


class RabbitMQSource:
    """Consume queue ``queue``; acknowledge on checkpoint commit.

    Each message's body is decoded with ``decode`` (``"json"`` by default); one that
    cannot be is a dead letter with its raw bytes, and acknowledged with the others.
    ``prefetch`` bounds the messages delivered and not yet acknowledged: keep it above the
    events of one checkpoint interval (else reading pauses until the next checkpoint by
    time). ``declare=True`` declares the queue (durable) if it does not exist. Reads wait
    up to ``wait`` seconds; with ``idle_timeout``, the source ends once nothing came for
    that long. Connecting is retried for ``retry_seconds``; a connection lost mid-run
    fails the run naming the connector and the address (resume it: what was not
    acknowledged is delivered again).

    >>> source = RabbitMQSource("amqp://guest:guest@localhost/", "readings")
    >>> flow.source(source).key_by(sensor)  # doctest: +SKIP
    """

    __module__ = "riverbed.connectors"

    def __init__(
        self,
        url: str,
        queue: str,
        *,
        decode: Decode = "json",
        prefetch: int = 10_000,
        declare: bool = True,
        wait: float = 0.5,
        idle_timeout: float | None = None,
        retry_seconds: float = 30.0,
    ) -> None:
        self.url = url
        self.queue = queue
        self.decode = decode
        self.prefetch = prefetch
        self.declare = declare
        self.wait = wait
        self.idle_timeout = idle_timeout
        self.retry_seconds = retry_seconds
        Decoder(decode, repr(self))

    def __repr__(self) -> str:
        return f"RabbitMQSource({_address(self.url)!r}, {self.queue!r})"

    def partitions(self) -> Sequence[str]:
        """One partition: the queue."""
        return [self.queue]

    def open(self, partition: str, position: list[str | None] | None) -> _QueueReader:
        """A reader that drops (and acknowledges) the messages of ``position`` when they
        are delivered again: a committed checkpoint holds them."""
        return _QueueReader(self, position or [])


class _QueueReader:
    """Consumes a ``RabbitMQSource``'s queue; the position is the unacknowledged ids."""

    def __init__(self, source: RabbitMQSource, covered: list[str | None]) -> None:
        self.source = source
        self.name = repr(source)
        self.covered = {i for i in covered if i is not None}
        """Ids a committed checkpoint holds, perhaps not acknowledged before a crash."""
        self.decoder = Decoder(source.decode, self.name)
        self.unacked: collections.deque[tuple[Any, str | None]] = collections.deque()
        self.inbox: asyncio.Queue[Any] = asyncio.Queue()
        self.connection: Any = None
        self.idle_since = time.monotonic()

    async def _consume(self) -> None:
        self.connection = await _connect(self.source.url, self.name, self.source.retry_seconds)
        channel = await self.connection.channel()
        await channel.set_qos(prefetch_count=self.source.prefetch)
        if self.source.declare:
            queue = await channel.declare_queue(self.source.queue, durable=True)
        else:
            queue = await channel.get_queue(self.source.queue)
        await queue.consume(self.inbox.put)

    async def read(self, max_events: int) -> list[Any] | None:
        """The messages delivered since the last read (waiting up to ``wait`` for one)."""
        if self.connection is None:
            await self._consume()
        elif self.connection.is_closed:
            self._lost()
        try:
            first = await asyncio.wait_for(self.inbox.get(), self.source.wait)
        except TimeoutError:
            idle = self.source.idle_timeout
            if idle is not None and time.monotonic() - self.idle_since >= idle:
                return None
            return []
        self.idle_since = time.monotonic()
        messages = [first]
        while len(messages) < max_events and not self.inbox.empty():
            messages.append(self.inbox.get_nowait())
        return self._events(messages)

    def _lost(self) -> None:
        raise ConnectorError(
            f"{self.name}: the connection to RabbitMQ at {_address(self.source.url)} was "
            "lost; resume the run once the server is back (what was not acknowledged is "
            "delivered again)",
            connector="RabbitMQSource",
            address=_address(self.source.url),
        )

    def _events(self, messages: list[Any]) -> list[Any]:
        events = []
        for message in messages:
            ident = message.message_id
            self.unacked.append((message, ident))
            if ident is not None and ident in self.covered:
                self.covered.discard(ident)
                continue  # a committed checkpoint holds it: acknowledged with the next
            ok, value = self.decoder.one(message.body)
            if ok:
                events.append(value)
        return events

    def rejected(self) -> list[tuple[bytes, BaseException]]:
        """Messages that could not be decoded since last asked."""
        return self.decoder.rejected()

    def position(self) -> list[str | None]:
        """The ids of the messages read and not yet acknowledged."""
        return [ident for _, ident in self.unacked]

    async def committed(self, position: list[str | None]) -> None:
        """Acknowledge the messages of ``position`` (the oldest unacknowledged ones), all
        at once."""
        last = None
        for _ in range(min(len(position), len(self.unacked))):
            last = self.unacked.popleft()[0]
        if last is not None:
            await last.ack(multiple=True)

    async def close(self) -> None:
        """Close the connection (what is not acknowledged is delivered again)."""
        if self.connection is not None:
            connection, self.connection = self.connection, None
            await connection.close()


def _json(event: Any) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode()


class RabbitMQSink:
    """Publish each event to ``exchange`` (the default exchange: the queue named
    ``routing_key``), persistent, and wait for the broker's confirmation: at-least-once.

    A batch is published at once and each publish confirmed before ``write_batch``
    returns, so what a checkpoint covers is stored by the broker. After a crash, the
    events after the last checkpoint are published again. ``msg_id`` (a function of the
    event) sets each message's ``message_id``, which lets a ``RabbitMQSource`` reading
    the queue recognize the messages its checkpoint holds.

    >>> sink = RabbitMQSink("amqp://guest:guest@localhost/", "alerts")
    """

    __module__ = "riverbed.connectors"

    def __init__(
        self,
        url: str,
        routing_key: str,
        *,
        exchange: str = "",
        msg_id: Callable[[Any], Any] | None = None,
        encode: Callable[[Any], bytes] = _json,
        declare: bool = True,
        retry_seconds: float = 30.0,
    ) -> None:
        self.url = url
        self.routing_key = routing_key
        self.exchange_name = exchange
        self.msg_id = msg_id
        self.encode = encode
        self.declare = declare
        self.retry_seconds = retry_seconds
        self._connection: Any = None
        self._exchange: Any = None

    def __repr__(self) -> str:
        return f"RabbitMQSink({_address(self.url)!r}, {self.routing_key!r})"

    async def _open(self) -> Any:
        self._connection = await _connect(self.url, repr(self), self.retry_seconds)
        channel = await self._connection.channel(publisher_confirms=True)
        if self.declare and not self.exchange_name:
            await channel.declare_queue(self.routing_key, durable=True)
        if self.exchange_name:
            return await channel.get_exchange(self.exchange_name)
        return channel.default_exchange

    async def write_batch(self, events: list[Any]) -> None:
        """Publish ``events`` and wait until the broker confirmed each."""
        aio_pika = _pika("RabbitMQSink")
        if self._exchange is None:
            self._exchange = await self._open()
        persistent = aio_pika.DeliveryMode.PERSISTENT
        sends = []
        for event in events:
            ident = None if self.msg_id is None else str(self.msg_id(event))
            message = aio_pika.Message(
                self.encode(event), message_id=ident, delivery_mode=persistent
            )
            sends.append(self._exchange.publish(message, routing_key=self.routing_key))
        await asyncio.gather(*sends)

    async def close(self) -> None:
        """Close the connection."""
        if self._connection is not None:
            connection, self._connection = self._connection, None
            await connection.close()
