"""RabbitMQ against the real server: a round trip through the confirmed sink and the
source, acknowledgement only after the checkpoint commits, a resume that drops what its
checkpoint holds, dead letters, and clear errors for a wrong address or credentials."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import riverbed as rb
from riverbed.connectors import RabbitMQSink, RabbitMQSource
from riverbed.testing import Capture
from tests.services import require_rabbitmq


async def _admin(url: str, work: Any) -> Any:
    import aio_pika

    connection = await aio_pika.connect(url)
    try:
        return await work(await connection.channel())
    finally:
        await connection.close()


@pytest.fixture
def queue() -> Iterator[tuple[str, str]]:
    """A durable queue of the test's own, deleted after it."""
    url = require_rabbitmq()
    name = f"rbtest-{uuid.uuid4().hex[:10]}"
    yield url, name

    async def drop(channel: Any) -> None:
        await channel.queue_delete(name)

    asyncio.run(_admin(url, drop))


def _counts(url: str, name: str) -> int:
    async def depth(channel: Any) -> int:
        declared = await channel.declare_queue(name, durable=True, passive=True)
        return int(declared.declaration_result.message_count)

    return asyncio.run(_admin(url, depth))  # type: ignore[no-any-return]


def _read(url: str, name: str, tmp_path: Path) -> Any:
    seen = Capture()
    flow = rb.Flow("rabbit-read")
    source = RabbitMQSource(url, name, wait=0.2, idle_timeout=0.5)
    flow.source(source, name="read").sink(seen, name="out")
    store = rb.open_store(f"sqlite:///{tmp_path}/runs.db")
    result = flow.run(store=store, progress=False, checkpoint_events=50, batch_size=20)
    return seen.items, result


def test_round_trip(queue: tuple[str, str], tmp_path: Path) -> None:
    """The sink publishes N events, each confirmed; the source reads them back, exact,
    and acknowledges all of them (the queue is empty after)."""
    url, name = queue
    events = [{"id": i, "key": i % 5} for i in range(300)]
    flow = rb.Flow("rabbit-write")
    flow.source(events, name="events").sink(RabbitMQSink(url, name, msg_id=lambda e: e["id"]))
    flow.run(store=False, progress=False, batch_size=64)
    assert _counts(url, name) == 300
    items, result = _read(url, name, tmp_path)
    assert result.ok
    assert items == events
    assert _counts(url, name) == 0


def test_unacknowledged_messages_come_back_and_covered_ones_are_dropped(
    queue: tuple[str, str],
) -> None:
    """A reader that dies holds its messages unacknowledged: they are delivered again. A
    reader resumed at a checkpoint drops the ones that checkpoint holds."""
    url, name = queue
    asyncio.run(_publish(url, name, 10))
    source = RabbitMQSource(url, name, wait=0.2)

    async def read(reader: Any, count: int) -> list[Any]:
        got: list[Any] = []
        while len(got) < count:
            got += await reader.read(count - len(got))
        return got

    async def scenario() -> list[Any]:
        first = source.open(name, None)
        assert await read(first, 10) == list(range(10))
        checkpoint = first.position()[:4]  # a checkpoint committed after the 4th...
        await first.close()  # ...and the run died before acknowledging anything
        again = source.open(name, checkpoint)
        replay = await read(again, 6)
        await again.committed(again.position())
        await again.close()
        return replay

    assert asyncio.run(scenario()) == [4, 5, 6, 7, 8, 9]
    assert _counts(url, name) == 0


async def _publish(url: str, name: str, count: int, body: Any = None) -> None:
    import aio_pika

    async def send(channel: Any) -> None:
        await channel.declare_queue(name, durable=True)
        for i in range(count):
            payload = body if body is not None else str(i).encode()
            message = aio_pika.Message(payload, message_id=f"m{i}")
            await channel.default_exchange.publish(message, routing_key=name)

    await _admin(url, send)


def test_undecodable_messages_are_dead_letters(queue: tuple[str, str], tmp_path: Path) -> None:
    """A body that is not JSON is a dead letter with its raw bytes, and acknowledged."""
    url, name = queue
    asyncio.run(_publish(url, name, 2, body=b"{nope"))
    items, result = _read(url, name, tmp_path)
    assert items == []
    assert [d.event for d in result.dead_letters] == [b"{nope", b"{nope"]
    assert _counts(url, name) == 0


def test_wrong_address_or_credentials_are_clear_errors() -> None:
    """No server at the address, or wrong credentials: the run fails naming the
    connector and the address (the password never shown)."""
    require_rabbitmq()
    for url, says in [
        ("amqp://guest:guest@127.0.0.1:1/", "is unreachable"),
        ("amqp://guest:wrong@127.0.0.1:5672/", "refused the credentials"),
    ]:
        flow = rb.Flow("rabbit-read")
        flow.source(RabbitMQSource(url, "q", retry_seconds=0.5), name="read").sink(Capture())
        result = flow.run(store=False, progress=False, raise_on_failure=False)
        assert result.error is not None
        assert says in result.error.message
        assert "RabbitMQSource('amqp://guest:***@127.0.0.1" in result.error.message
        assert "wrong" not in result.error.message
