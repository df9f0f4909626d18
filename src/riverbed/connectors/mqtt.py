"""MQTT: a QoS 1 source with a persistent session that acknowledges on checkpoint commit,
and a QoS 1 sink.

Built on paho-mqtt (the ``mqtt`` extra), which can hold back a QoS 1 message's PUBACK until
told (``manual_ack``), with MQTT 5 so that the client can raise *Receive Maximum* (how
many unacknowledged messages the broker sends it) to 65,535.

The source connects with a fixed client id, ``clean_start=False`` and a session that
outlives the connection (``session_expiry`` seconds), subscribes with QoS 1, and
acknowledges each message only once a checkpoint holding it is committed. The broker keeps
what it could not deliver while the run was down, and sends again the messages that were
not acknowledged, flagged DUP, under their packet ids. The position is the packet ids read
and not yet acknowledged: a resumed run drops (and acknowledges) the DUP messages its
checkpoint holds. State is exactly-once within what the broker keeps for the session:
MQTT brokers bound it (Mosquitto queues at most ``max_queued_messages``, 1,000 by default,
per offline session, and drops what comes beyond).
"""

from __future__ import annotations

import asyncio
import collections
import json
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

from riverbed.connectors._common import ConnectorError, Decode, Decoder, client

__all__ = ["MQTTSink", "MQTTSource"]


def _paho(connector: str) -> Any:
    return client("paho.mqtt.client", "mqtt", connector)


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 1883


def _make_client(connector: str, client_id: str, *, manual_ack: bool) -> Any:
    mqtt = _paho(connector)
    return mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5,
        manual_ack=manual_ack,
    )


def _connect(paho: Any, url: str, connector: str, properties: Any, timeout: float) -> None:
    """Connect ``paho`` (its loop started) and wait for the broker's CONNACK."""
    host, port = _host_port(url)
    done = threading.Event()
    outcome: list[Any] = []

    def on_connect(c: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        outcome.append(reason)
        done.set()

    paho.on_connect = on_connect
    try:
        paho.connect(host, port, clean_start=False, properties=properties)
    except OSError as error:
        raise ConnectorError(
            f"{connector}: MQTT broker at {host}:{port} is unreachable ({error}). Check "
            "that it runs and the URL is right",
            connector=connector.partition("(")[0],
            address=f"{host}:{port}",
        ) from error
    paho.loop_start()
    if not done.wait(timeout) or outcome[0].is_failure:
        paho.loop_stop()
        why = outcome[0] if outcome else f"no answer in {timeout:g} s"
        raise ConnectorError(
            f"{connector}: MQTT broker at {host}:{port} refused the connection ({why})",
            connector=connector.partition("(")[0],
            address=f"{host}:{port}",
        )


class MQTTSource:
    """Subscribe to ``topics`` with QoS 1 in a persistent session; acknowledge on
    checkpoint commit.

    ``client_id`` names the session (the broker keeps it ``session_expiry`` seconds after
    the connection ends): keep it the same across runs. Payloads are decoded with
    ``decode`` (``"json"``); one that cannot be is a dead letter with its raw bytes. Reads
    wait up to ``wait`` seconds; with ``idle_timeout``, the source ends once nothing came
    for that long. A lost connection fails the run naming the connector and the broker.

    >>> source = MQTTSource("mqtt://localhost:1883", "sensors/#", client_id="monitor")
    >>> flow.source(source).key_by(sensor)  # doctest: +SKIP
    """

    __module__ = "riverbed.connectors"

    def __init__(
        self,
        url: str,
        topics: str | Sequence[str],
        *,
        client_id: str,
        decode: Decode = "json",
        session_expiry: int = 7 * 24 * 3600,
        wait: float = 0.5,
        idle_timeout: float | None = None,
        connect_timeout: float = 10.0,
    ) -> None:
        self.url = url
        self.topics = [topics] if isinstance(topics, str) else list(topics)
        self.client_id = client_id
        self.decode = decode
        self.session_expiry = session_expiry
        self.wait = wait
        self.idle_timeout = idle_timeout
        self.connect_timeout = connect_timeout
        Decoder(decode, repr(self))

    def __repr__(self) -> str:
        return f"MQTTSource({self.url!r}, {self.topics!r}, client_id={self.client_id!r})"

    def partitions(self) -> Sequence[str]:
        """One partition: the session."""
        return [self.client_id]

    def open(self, partition: str, position: list[int] | None) -> _SessionReader:
        """A reader that drops (and acknowledges) the DUP messages of packet ids
        ``position``: a committed checkpoint holds them."""
        return _SessionReader(self, position or [])


class _SessionReader:
    """Reads an ``MQTTSource``'s session; the position is the unacknowledged packet ids."""

    def __init__(self, source: MQTTSource, covered: list[int]) -> None:
        self.source = source
        self.name = repr(source)
        self.covered = set(covered)
        self.decoder = Decoder(source.decode, self.name)
        self.unacked: collections.deque[int] = collections.deque()
        self.inbox: asyncio.Queue[Any] = asyncio.Queue()
        self.paho: Any = None
        self.lost: Any = None
        self.idle_since = time.monotonic()

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Connect and subscribe (blocking: run in a worker thread); messages go to the
        inbox on ``loop``."""
        mqtt = _paho("MQTTSource")
        paho = _make_client("MQTTSource", self.source.client_id, manual_ack=True)
        properties = mqtt.Properties(mqtt.PacketTypes.CONNECT)
        properties.SessionExpiryInterval = self.source.session_expiry
        properties.ReceiveMaximum = 65535
        paho.on_message = lambda c, u, message: loop.call_soon_threadsafe(
            self.inbox.put_nowait, message
        )

        def on_disconnect(c: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
            self.lost = reason

        _connect(paho, self.source.url, self.name, properties, self.source.connect_timeout)
        paho.on_disconnect = on_disconnect
        for topic in self.source.topics:
            paho.subscribe(topic, qos=1)
        self.paho = paho

    async def read(self, max_events: int) -> list[Any] | None:
        """The messages arrived since the last read (waiting up to ``wait`` for one)."""
        if self.paho is None:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, self._start, loop)
        if self.lost is not None:
            host, port = _host_port(self.source.url)
            raise ConnectorError(
                f"{self.name}: the connection to the MQTT broker at {host}:{port} was lost "
                f"({self.lost}); resume the run once it is back (what was not acknowledged "
                "is sent again)",
                connector="MQTTSource",
                address=f"{host}:{port}",
            )
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

    def _events(self, messages: list[Any]) -> list[Any]:
        events = []
        for message in messages:
            self.unacked.append(message.mid)
            if message.dup and message.mid in self.covered:
                self.covered.discard(message.mid)
                continue  # a committed checkpoint holds it: acknowledged with the next
            ok, value = self.decoder.one(message.payload)
            if ok:
                events.append(value)
        return events

    def rejected(self) -> list[tuple[bytes, BaseException]]:
        """Payloads that could not be decoded since last asked."""
        return self.decoder.rejected()

    def position(self) -> list[int]:
        """The packet ids of the messages read and not yet acknowledged."""
        return list(self.unacked)

    def committed(self, position: list[int]) -> None:
        """PUBACK the messages of ``position`` (the oldest unacknowledged ones)."""
        for _ in range(min(len(position), len(self.unacked))):
            self.paho.ack(self.unacked.popleft(), 1)

    def close(self) -> None:
        """Disconnect once the broker has read the acknowledgements sent (the session
        stays: what is not acknowledged is sent again)."""
        if self.paho is not None:
            paho, self.paho = self.paho, None
            if self.lost is None:
                _fence(paho, self.source.connect_timeout)
            _disconnect(paho)


def _json(event: Any) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode()


class MQTTSink:
    """Publish each event to ``topic`` (or ``topic(event)``) with QoS 1, waiting until the
    broker acknowledged each: at-least-once (MQTT has no de-duplication; after a crash,
    the events after the last checkpoint are published again).

    >>> sink = MQTTSink("mqtt://localhost:1883", lambda e: f"alerts/{e['sensor']}")
    """

    __module__ = "riverbed.connectors"

    def __init__(
        self,
        url: str,
        topic: str | Callable[[Any], str],
        *,
        encode: Callable[[Any], bytes] = _json,
        client_id: str = "",
        retain: bool = False,
        timeout: float = 30.0,
    ) -> None:
        self.url = url
        self.topic = topic
        self.encode = encode
        self.client_id = client_id
        self.retain = retain
        self.timeout = timeout
        self._paho: Any = None

    def __repr__(self) -> str:
        return f"MQTTSink({self.url!r}, {self.topic!r})"

    def write_batch(self, events: list[Any]) -> None:
        """Publish ``events`` and wait for every PUBACK."""
        if self._paho is None:
            paho = _make_client("MQTTSink", self.client_id, manual_ack=False)
            _connect(paho, self.url, repr(self), None, self.timeout)
            self._paho = paho
        sent = []
        for event in events:
            topic = self.topic(event) if callable(self.topic) else self.topic
            sent.append(self._paho.publish(topic, self.encode(event), qos=1, retain=self.retain))
        deadline = time.monotonic() + self.timeout
        for info in sent:
            info.wait_for_publish(max(0.0, deadline - time.monotonic()))
            if not info.is_published():
                host, port = _host_port(self.url)
                raise ConnectorError(
                    f"{self!r}: the MQTT broker at {host}:{port} did not acknowledge a "
                    f"publish within {self.timeout:g} s",
                    connector="MQTTSink",
                    address=f"{host}:{port}",
                )

    def close(self) -> None:
        """Disconnect."""
        if self._paho is not None:
            paho, self._paho = self._paho, None
            _disconnect(paho)


def _fence(paho: Any, timeout: float) -> None:
    """Wait until the broker has read every packet ``paho`` sent so far.

    PUBACKs have no answer, and a broker reads a connection's packets in order, so the
    answer (UNSUBACK) to an UNSUBSCRIBE of a filter no one holds, sent after them, says
    they were read. Without it, a reader of the same session connecting at once takes the
    session over and the broker drops this connection with PUBACKs still unread: their
    messages came back to the next run as if never acknowledged."""
    answered: set[int] = set()
    change = threading.Condition()

    def on_unsubscribe(c: Any, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        with change:
            answered.add(mid)
            change.notify_all()

    paho.on_unsubscribe = on_unsubscribe
    with change:  # held, so that the answer cannot come before we wait for it
        mid = paho.unsubscribe(f"riverbed/fence/{uuid.uuid4().hex}")[1]
        change.wait_for(lambda: mid in answered, timeout)


def _disconnect(paho: Any, timeout: float = 5.0) -> None:
    """Disconnect ``paho`` and stop its network thread only once the broker connection is
    closed: packets queued before (PUBACKs) are written first. Stopping the thread at once
    could drop them."""
    closed = threading.Event()
    paho.on_disconnect = lambda *args: closed.set()
    paho.disconnect()
    closed.wait(timeout)
    paho.loop_stop()
