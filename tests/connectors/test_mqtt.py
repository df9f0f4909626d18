"""MQTT against the real broker (Mosquitto): a persistent QoS 1 session that keeps what
comes while the run is down, PUBACK only after the checkpoint commits, messages not
acknowledged sent again (DUP) to the next run and those a checkpoint holds dropped, dead
letters, and a clear error for a wrong address."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import riverbed as rb
from riverbed.connectors import MQTTSink, MQTTSource
from riverbed.testing import Capture
from tests.services import require_mqtt


def _names() -> tuple[str, str]:
    tag = uuid.uuid4().hex[:10]
    return f"rbtest/{tag}", f"rbtest-{tag}"


async def _read(reader: Any, count: int) -> list[Any]:
    got: list[Any] = []
    while len(got) < count:
        got += await reader.read(count - len(got))
    return got


def _session(url: str, topic: str, client_id: str) -> MQTTSource:
    """A source whose session exists (subscribed once), so the broker keeps messages."""
    source = MQTTSource(url, f"{topic}/#", client_id=client_id, wait=0.2)

    async def subscribe() -> None:
        reader = source.open(client_id, None)
        assert await reader.read(10) == []
        reader.close()

    asyncio.run(subscribe())
    return source


def _forget(url: str, client_id: str) -> None:
    """End the session (a clean start that expires at once)."""
    import paho.mqtt.client as mqtt

    paho = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    paho.connect("127.0.0.1", int(url.rsplit(":", 1)[1]), clean_start=True)
    paho.loop_start()
    paho.disconnect()
    paho.loop_stop()


def test_round_trip_through_a_persistent_session(tmp_path: Path) -> None:
    """Published (QoS 1) while no run reads, N events are kept for the session and read
    back by the next run, exact, and acknowledged (nothing comes again)."""
    url = require_mqtt()
    topic, client_id = _names()
    source = _session(url, topic, client_id)
    events = [{"id": i, "sensor": f"s{i % 3}"} for i in range(300)]
    writer = rb.Flow("mqtt-write")
    writer.source(events).sink(MQTTSink(url, lambda e: f"{topic}/{e['sensor']}"))
    writer.run(store=False, progress=False, batch_size=50)
    seen = Capture()
    reader = rb.Flow("mqtt-read")
    source.idle_timeout = 0.5
    reader.source(source, name="read").sink(seen)
    store = rb.open_store(f"sqlite:///{tmp_path}/runs.db")
    result = reader.run(store=store, progress=False, checkpoint_events=50, batch_size=20)
    assert result.ok
    assert sorted(seen.items, key=lambda e: e["id"]) == events

    async def nothing_more() -> list[Any]:
        again = source.open(client_id, None)
        got = await again.read(10)
        again.close()
        return got

    assert asyncio.run(nothing_more()) == []
    _forget(url, client_id)


def test_unacknowledged_messages_come_back_and_covered_ones_are_dropped() -> None:
    """A reader that dies holding its messages: the broker sends them again (DUP). A
    reader resumed at a checkpoint drops the ones that checkpoint holds."""
    url = require_mqtt()
    topic, client_id = _names()
    source = _session(url, topic, client_id)
    MQTTSink(url, f"{topic}/x").write_batch(list(range(10)))

    async def scenario() -> list[Any]:
        first = source.open(client_id, None)
        assert await _read(first, 10) == list(range(10))
        checkpoint = first.position()[:4]  # a checkpoint committed after the 4th...
        first.close()  # ...and the run died before acknowledging anything
        again = source.open(client_id, checkpoint)
        replay = await _read(again, 6)
        again.committed(again.position())
        again.close()
        third = source.open(client_id, None)
        rest = await third.read(10)
        third.close()
        assert rest == []
        return replay

    assert asyncio.run(scenario()) == [4, 5, 6, 7, 8, 9]
    _forget(url, client_id)


def test_undecodable_payloads_are_dead_letters(tmp_path: Path) -> None:
    """A payload that is not JSON is a dead letter with its raw bytes."""
    url = require_mqtt()
    topic, client_id = _names()
    source = _session(url, topic, client_id)
    MQTTSink(url, f"{topic}/x", encode=lambda b: b).write_batch([b"1", b"{no", b"2"])
    seen = Capture()
    flow = rb.Flow("mqtt-read")
    source.idle_timeout = 0.5
    flow.source(source, name="read").sink(seen)
    result = flow.run(store=rb.open_store(f"sqlite:///{tmp_path}/r.db"), progress=False)
    assert seen.items == [1, 2]
    assert [d.event for d in result.dead_letters] == [b"{no"]
    _forget(url, client_id)


def test_wrong_address_is_a_clear_error() -> None:
    """A URL where no broker listens fails the run naming the connector and address."""
    require_mqtt()
    flow = rb.Flow("mqtt-read")
    flow.source(MQTTSource("mqtt://127.0.0.1:1", "t", client_id="x"), name="read").sink(Capture())
    result = flow.run(store=False, progress=False, raise_on_failure=False)
    assert result.error is not None
    assert "MQTT broker at 127.0.0.1:1 is unreachable" in result.error.message
    assert "MQTTSource" in result.error.message
