"""NATS JetStream against the real server: a round trip through the sink and the durable
pull consumer, acknowledgement after commit, a resume that reads exactly what came after
its checkpoint, de-duplication by message id, dead letters, and a clear error for a
wrong address."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import riverbed as rb
from riverbed.connectors import JetStreamSink, JetStreamSource
from riverbed.testing import Capture
from tests.services import require_nats


async def _admin(url: str, work: Any) -> Any:
    import nats

    nc = await nats.connect(url)
    try:
        return await work(nc.jetstream())
    finally:
        await nc.close()


@pytest.fixture
def stream(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A stream of the test's own (subject ``<name>.in``), deleted after it."""
    url = require_nats()
    name = f"RBTEST_{uuid.uuid4().hex[:10]}"

    async def make(js: Any) -> None:
        await js.add_stream(name=name, subjects=[f"{name}.>"])

    asyncio.run(_admin(url, make))
    yield url, name

    async def drop(js: Any) -> None:
        await js.delete_stream(name)

    asyncio.run(_admin(url, drop))


def _publish(url: str, subject: str, payloads: list[bytes]) -> None:
    async def send(js: Any) -> None:
        for payload in payloads:
            await js.publish(subject, payload)

    asyncio.run(_admin(url, send))


def _read(url: str, name: str, tmp_path: Path) -> Any:
    seen = Capture()
    flow = rb.Flow("nats-read")
    source = JetStreamSource(url, name, durable="reader", fetch_timeout=0.2, idle_timeout=0.5)
    flow.source(source, name="read").sink(seen, name="out")
    store = rb.open_store(f"sqlite:///{tmp_path}/runs.db")
    result = flow.run(store=store, progress=False, checkpoint_events=50, batch_size=20)
    return seen.items, result


def _ack_floor(url: str, name: str) -> int:
    async def info(js: Any) -> int:
        return int((await js.consumer_info(name, "reader")).ack_floor.stream_seq)

    return asyncio.run(_admin(url, info))  # type: ignore[no-any-return]


def test_round_trip_with_message_ids(stream: tuple[str, str], tmp_path: Path) -> None:
    """The sink publishes N events (twice: the ids de-duplicate); the source reads them
    back once, exact, and acknowledges all of them."""
    url, name = stream
    events = [{"id": i, "key": i % 5} for i in range(300)]
    for _ in range(2):  # a replay after a crash sends the same ids again
        flow = rb.Flow("nats-write")
        sink = JetStreamSink(url, f"{name}.in", msg_id=lambda e: e["id"])
        flow.source(events, name="events").sink(sink, name="out")
        flow.run(store=False, progress=False, batch_size=64)
    items, result = _read(url, name, tmp_path)
    assert result.ok
    assert items == events
    assert _ack_floor(url, name) == 300


def test_resume_reads_exactly_after_the_checkpoint(stream: tuple[str, str]) -> None:
    """A reader that read on past its checkpoint and died: a reader opened at the
    checkpoint's position gets exactly what came after it, at once (no ack wait)."""
    url, name = stream
    _publish(url, f"{name}.in", [json.dumps(i).encode() for i in range(10)])
    source = JetStreamSource(url, name, durable="reader", fetch_timeout=0.2)

    async def read(reader: Any, count: int) -> list[Any]:
        got: list[Any] = []
        while len(got) < count:
            got += await reader.read(count - len(got))
        return got

    async def scenario() -> list[Any]:
        first = source.open(name, None)
        assert await read(first, 4) == [0, 1, 2, 3]
        await first.committed(first.position())  # checkpoint at 4, acked
        checkpoint = first.position()
        assert await read(first, 6) == [4, 5, 6, 7, 8, 9]
        await first.close()  # dies holding 5..10 unacknowledged
        again = source.open(name, checkpoint)
        replay = await read(again, 6)
        await again.committed(again.position())
        await again.close()
        return replay

    assert asyncio.run(scenario()) == [4, 5, 6, 7, 8, 9]
    assert _ack_floor(url, name) == 10


def test_undecodable_messages_are_dead_letters(stream: tuple[str, str], tmp_path: Path) -> None:
    """A message that is not JSON is a dead letter with its raw bytes, and acknowledged."""
    url, name = stream
    _publish(url, f"{name}.in", [b"1", b"\xff{", b"2"])
    items, result = _read(url, name, tmp_path)
    assert items == [1, 2]
    assert [d.event for d in result.dead_letters] == [b"\xff{"]
    assert _ack_floor(url, name) == 3


def test_wrong_address_is_a_clear_error() -> None:
    """A URL where no NATS listens fails the run naming the connector and the address."""
    require_nats()
    flow = rb.Flow("nats-read")
    source = JetStreamSource("nats://127.0.0.1:1", "S", durable="d", retry_seconds=0.5)
    flow.source(source, name="read").sink(Capture())
    result = flow.run(store=False, progress=False, raise_on_failure=False)
    assert not result.ok
    assert result.error is not None
    assert "NATS at nats://127.0.0.1:1 is unreachable" in result.error.message
    assert "JetStreamSource" in result.error.message
