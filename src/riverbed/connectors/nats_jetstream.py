"""NATS JetStream: a durable pull consumer that acknowledges on checkpoint commit, and a
sink that publishes with a message id, for JetStream's de-duplication.

The source reads one stream as one partition through the durable consumer ``durable``
(acknowledgement policy "all": acknowledging a message acknowledges every one before it).
Its position is the stream sequence of the last message read. The checkpoint, not the
consumer, is the truth: when a reader opens, it (re)creates the consumer to deliver from
right after its position (a resume), or from the consumer's first unacknowledged message
(a new run). Delivery is then in stream order; a message delivered again while the run
holds it unacknowledged is dropped. After a crash, the resumed run reads again exactly
what came after its checkpoint: its state is exactly-once. A new run reads again what an
earlier one read but never acknowledged: at-least-once.

Needs the ``nats`` extra (nats-py): ``pip install 'riverbed[nats]'``.
"""

from __future__ import annotations

import asyncio
import collections
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from riverbed.connectors._common import ConnectorError, Decode, Decoder, client, retry_async

__all__ = ["JetStreamSink", "JetStreamSource"]

_EXTRA = "nats"


def _nats(connector: str) -> Any:
    return client("nats", _EXTRA, connector)


def _address(url: str) -> str:
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.rpartition('@')[2]}"


async def _connect(url: str, connector: str, seconds: float) -> Any:
    """A NATS connection, retried for ``seconds``; a clear error after."""
    nats = _nats(connector)
    transient = (OSError, nats.errors.NoServersError, asyncio.TimeoutError)

    async def quiet(error: Exception) -> None:
        """nats-py reports connection errors here too: they are raised (and logged) by
        the retries instead."""

    async def once() -> Any:
        # nats-py may try an unreachable server again and again by itself: bounded here.
        return await asyncio.wait_for(
            nats.connect(
                url,
                connect_timeout=2,
                max_reconnect_attempts=0,
                allow_reconnect=False,
                error_cb=quiet,
            ),
            timeout=2.5,
        )

    try:
        return await retry_async(connector, once, transient, seconds=seconds)
    except transient as error:
        raise ConnectorError(
            f"{connector}: NATS at {_address(url)} is unreachable ({type(error).__name__}: "
            f"{error}); retried for {seconds:g} s. Check that nats-server runs with "
            "JetStream (-js) and the URL is right",
            connector=connector.partition("(")[0],
            address=_address(url),
        ) from error


class JetStreamSource:
    """Read JetStream ``stream`` (``subject`` filters it) through durable pull consumer
    ``durable``; acknowledge on checkpoint commit.

    Each message's data is decoded with ``decode`` (``"json"`` by default); one that
    cannot be is a dead letter with its raw bytes. ``ack_wait`` (seconds) should exceed
    the run's checkpoint interval (else held messages are delivered again meanwhile, and
    dropped: traffic, not duplicates); ``max_ack_pending`` bounds the messages held
    between checkpoints. With ``idle_timeout``, the partition ends once nothing came for
    that long. Lost connections are retried for ``retry_seconds``, then the run fails
    naming the connector and the address.

    >>> source = JetStreamSource("nats://localhost:4222", "READINGS", durable="monitor")
    >>> flow.source(source).key_by(sensor)  # doctest: +SKIP
    """

    __module__ = "riverbed.connectors"

    def __init__(
        self,
        url: str,
        stream: str,
        *,
        durable: str,
        subject: str | None = None,
        decode: Decode = "json",
        fetch_timeout: float = 1.0,
        idle_timeout: float | None = None,
        ack_wait: float = 60.0,
        max_ack_pending: int = 100_000,
        retry_seconds: float = 30.0,
    ) -> None:
        self.url = url
        self.stream = stream
        self.durable = durable
        self.subject = subject
        self.decode = decode
        self.fetch_timeout = fetch_timeout
        self.idle_timeout = idle_timeout
        self.ack_wait = ack_wait
        self.max_ack_pending = max_ack_pending
        self.retry_seconds = retry_seconds
        Decoder(decode, repr(self))

    def __repr__(self) -> str:
        return f"JetStreamSource({_address(self.url)!r}, {self.stream!r}, durable={self.durable!r})"

    def partitions(self) -> Sequence[str]:
        """One partition: the stream."""
        return [self.stream]

    def open(self, partition: str, position: int | None) -> _ConsumerReader:
        """A reader delivering from right after stream sequence ``position``."""
        return _ConsumerReader(self, position)


class _ConsumerReader:
    """Reads through a ``JetStreamSource``'s consumer; the position is a stream sequence."""

    def __init__(self, source: JetStreamSource, position: int | None) -> None:
        self.source = source
        self.last = position
        self.name = repr(source)
        self.decoder = Decoder(source.decode, self.name)
        self.held: collections.deque[tuple[int, Any]] = collections.deque()
        """(stream sequence, message) read and not yet acknowledged, in order."""
        self.nc: Any = None
        self.sub: Any = None
        self.idle_since = time.monotonic()

    async def _subscribe(self) -> None:
        nats = _nats("JetStreamSource")
        api = nats.js.api
        self.nc = await _connect(self.source.url, self.name, self.source.retry_seconds)
        js = self.nc.jetstream()
        start = await self._start(js)
        config = api.ConsumerConfig(
            durable_name=self.source.durable,
            ack_policy=api.AckPolicy.ALL,
            ack_wait=self.source.ack_wait,
            max_ack_pending=self.source.max_ack_pending,
            filter_subject=self.source.subject,
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE if start else api.DeliverPolicy.ALL,
            opt_start_seq=start,
        )
        await js.add_consumer(self.source.stream, config)
        self.sub = await js.pull_subscribe_bind(self.source.durable, self.source.stream)

    async def _start(self, js: Any) -> int | None:
        """Where delivery starts: after the position, or at the existing consumer's first
        unacknowledged message; the consumer is deleted to be made again from there."""
        nats = _nats("JetStreamSource")
        try:
            info = await js.consumer_info(self.source.stream, self.source.durable)
        except nats.js.errors.NotFoundError:
            info = None
        if info is not None:
            await js.delete_consumer(self.source.stream, self.source.durable)
        if self.last is not None:
            return self.last + 1
        if info is not None and info.ack_floor is not None and info.ack_floor.stream_seq:
            return int(info.ack_floor.stream_seq) + 1
        return None

    async def read(self, max_events: int) -> list[Any] | None:
        """The next messages in stream order (waiting up to ``fetch_timeout``)."""
        nats = _nats("JetStreamSource")
        if self.sub is None:
            await self._subscribe()
        try:
            messages = await self.sub.fetch(max_events, timeout=self.source.fetch_timeout)
        except (TimeoutError, nats.errors.TimeoutError):  # before OSError: a subclass
            messages = []
        except (nats.errors.ConnectionClosedError, OSError) as error:
            raise ConnectorError(
                f"{self.name}: the connection to NATS at {_address(self.source.url)} was "
                f"lost ({error}); resume the run once the server is back",
                connector="JetStreamSource",
                address=_address(self.source.url),
            ) from error
        if not messages:
            idle = self.source.idle_timeout
            if idle is not None and time.monotonic() - self.idle_since >= idle:
                return None
            return []
        self.idle_since = time.monotonic()
        return self._events(messages)

    def _events(self, messages: list[Any]) -> list[Any]:
        events = []
        for message in messages:
            sequence = int(message.metadata.sequence.stream)
            if self.last is not None and sequence <= self.last:
                continue  # delivered again while held: read once already
            self.last = sequence
            self.held.append((sequence, message))
            ok, value = self.decoder.one(message.data)
            if ok:
                events.append(value)
        return events

    def rejected(self) -> list[tuple[bytes, BaseException]]:
        """Messages that could not be decoded since last asked."""
        return self.decoder.rejected()

    def position(self) -> int | None:
        """The stream sequence of the last message read."""
        return self.last

    async def committed(self, position: int | None) -> None:
        """Acknowledge every message up to ``position`` (one ack: the policy is "all")."""
        last = None
        while self.held and position is not None and self.held[0][0] <= position:
            last = self.held.popleft()[1]
        if last is not None:
            await last.ack()

    async def close(self) -> None:
        """Close the connection (what is held stays unacknowledged: delivered again)."""
        if self.nc is not None:
            nc, self.nc = self.nc, None
            await nc.close()


def _json(event: Any) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode()


class JetStreamSink:
    """Publish each event to ``subject`` and wait for JetStream's acknowledgement.

    With ``msg_id`` (a function of the event giving a stable id), each message carries it
    as ``Nats-Msg-Id``: JetStream drops a message whose id it saw within the stream's
    duplicate window (2 minutes by default), so events written again after a crash are
    stored once: exactly-once within that window, at-least-once beyond it. Without
    ``msg_id``: at-least-once. Events are encoded as JSON unless ``encode`` says otherwise.

    >>> sink = JetStreamSink("nats://localhost:4222", "alerts", msg_id=lambda e: e["id"])
    """

    __module__ = "riverbed.connectors"

    def __init__(
        self,
        url: str,
        subject: str,
        *,
        msg_id: Callable[[Any], Any] | None = None,
        encode: Callable[[Any], bytes] = _json,
        retry_seconds: float = 30.0,
    ) -> None:
        self.url = url
        self.subject = subject
        self.msg_id = msg_id
        self.encode = encode
        self.retry_seconds = retry_seconds
        self._nc: Any = None

    def __repr__(self) -> str:
        return f"JetStreamSink({_address(self.url)!r}, {self.subject!r})"

    async def write_batch(self, events: list[Any]) -> None:
        """Publish ``events`` (concurrently) and wait until JetStream stored each."""
        if self._nc is None:
            self._nc = await _connect(self.url, repr(self), self.retry_seconds)
        js = self._nc.jetstream()
        sends = []
        for event in events:
            headers = None
            if self.msg_id is not None:
                headers = {"Nats-Msg-Id": str(self.msg_id(event))}
            sends.append(js.publish(self.subject, self.encode(event), headers=headers))
        await asyncio.gather(*sends)

    async def close(self) -> None:
        """Close the connection."""
        if self._nc is not None:
            nc, self._nc = self._nc, None
            await nc.close()
