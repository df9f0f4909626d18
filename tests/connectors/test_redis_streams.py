"""Redis Streams against the real server: round trips through both sinks and the source,
acknowledgement only after the checkpoint commits, a resume that acknowledges what its
checkpoint covers and reads the rest again, dead letters for undecodable entries, and
clear errors for a wrong address or a server that goes away."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import riverbed as rb
from riverbed.connectors import (
    ConnectorError,
    RedisStreamSink,
    RedisStreamSource,
    RedisStreamTransactionalSink,
)
from riverbed.testing import Capture
from tests.services import require_redis


@pytest.fixture
def redis_url() -> Iterator[str]:
    """The test server's URL; the streams a test made are deleted after it."""
    url = require_redis()
    import redis

    conn = redis.Redis.from_url(url)
    yield url
    for key in conn.scan_iter(match="rbtest-*"):
        conn.delete(key)
    conn.close()


def _name() -> str:
    return f"rbtest-{uuid.uuid4().hex[:10]}"


def _store(tmp_path: Path) -> rb.Store:
    return rb.open_store(f"sqlite:///{tmp_path}/runs.db")


def _read(url: str, stream: str, group: str, tmp_path: Path, **options: Any) -> Any:
    seen = Capture()
    flow = rb.Flow("redis-read")
    source = RedisStreamSource(url, stream, group=group, idle_timeout=0.3, block=0.1, **options)
    flow.source(source, name="read").sink(seen, name="out")
    result = flow.run(store=_store(tmp_path), progress=False, checkpoint_events=50, batch_size=20)
    return seen.items, result


def test_round_trip_exactly_once(redis_url: str, tmp_path: Path) -> None:
    """The transactional sink writes N events once; the source reads them back, exact, and
    acknowledges every one (nothing pending in the group)."""
    import redis

    stream = _name()
    events = [{"i": i, "key": f"k{i % 7}"} for i in range(500)]
    flow = rb.Flow("redis-write")
    flow.source(events, name="events").sink(
        RedisStreamTransactionalSink(redis_url, stream), name="out"
    )
    flow.run(store=_store(tmp_path), progress=False, checkpoint_events=100, batch_size=50)
    items, result = _read(redis_url, stream, "g", tmp_path)
    assert result.ok
    assert items == events
    info = redis.Redis.from_url(redis_url).xpending(stream, "g")
    assert info["pending"] == 0


def test_transactional_commit_is_idempotent(redis_url: str) -> None:
    """Committing a checkpoint's events twice (a resume) adds them once."""
    import redis

    stream = _name()
    sink = RedisStreamTransactionalSink(redis_url, stream)
    sink.write_batch([1, 2, 3])
    prepared = sink.prepare()
    sink.commit(f"{stream}/out/1", prepared)
    sink.commit(f"{stream}/out/1", prepared)
    sink.close()
    conn = redis.Redis.from_url(redis_url)
    assert conn.xlen(stream) == 3
    conn.delete(f"riverbed:sink:{stream}/out/1")


def test_plain_sink_round_trip(redis_url: str, tmp_path: Path) -> None:
    """The at-least-once sink XADDs as events come; read back exact (no crash here)."""
    stream = _name()
    flow = rb.Flow("redis-write")
    flow.source(list(range(300)), name="events").sink(RedisStreamSink(redis_url, stream))
    flow.run(store=False, progress=False, batch_size=64)
    items, _ = _read(redis_url, stream, "g", tmp_path)
    assert items == list(range(300))


def test_entries_are_acked_only_after_their_checkpoint(redis_url: str) -> None:
    """Read but not committed, entries stay pending; a reader resumed at the checkpoint's
    position acknowledges what it covers and reads the rest again."""
    import asyncio

    import redis

    stream = _name()
    conn = redis.Redis.from_url(redis_url)
    for i in range(10):
        conn.xadd(stream, {"data": json.dumps(i)})
    source = RedisStreamSource(redis_url, stream, group="g", block=0.1)

    async def read(reader: Any, count: int) -> list[Any]:
        got: list[Any] = []
        while len(got) < count:
            got += await reader.read(count - len(got))
        return got

    async def scenario() -> tuple[list[Any], list[Any], int]:
        first = source.open(stream, None)
        got = await read(first, 6)
        checkpoint = first.position()  # a checkpoint holds the first 6...
        more = await read(first, 4)  # ...the run reads on, then dies: nothing acked
        await first.close()
        assert got + more == list(range(10))
        pending_before = conn.xpending(stream, "g")["pending"]
        again = source.open(stream, checkpoint)
        replay = await read(again, 4)
        await again.committed(again.position())
        await again.close()
        return replay, [pending_before], conn.xpending(stream, "g")["pending"]

    replay, (pending_before,), pending_after = asyncio.run(scenario())
    assert pending_before == 10
    assert replay == [6, 7, 8, 9]
    assert pending_after == 0
    conn.close()


def test_undecodable_entries_are_dead_letters_and_acked(redis_url: str, tmp_path: Path) -> None:
    """An entry that is not JSON, or lacks the field, is a dead letter with its raw bytes;
    the run succeeds and nothing stays pending."""
    import redis

    stream = _name()
    conn = redis.Redis.from_url(redis_url)
    conn.xadd(stream, {"data": b"1"})
    conn.xadd(stream, {"data": b"{not json"})
    conn.xadd(stream, {"other": b"x"})
    conn.xadd(stream, {"data": b"2"})
    items, result = _read(redis_url, stream, "g", tmp_path)
    assert items == [1, 2]
    assert result.ok
    assert [d.event for d in result.dead_letters] == [b"{not json", b'{"other": "x"}']
    assert "no field 'data'" in result.dead_letters[1].message
    assert conn.xpending(stream, "g")["pending"] == 0
    conn.close()


def test_wrong_address_is_a_clear_error(tmp_path: Path) -> None:
    """A URL where no Redis listens fails the run after its retries, naming the connector
    and the address."""
    require_redis()
    seen = Capture()
    flow = rb.Flow("redis-read")
    source = RedisStreamSource("redis://127.0.0.1:1/0", "s", group="g", retry_seconds=0.5)
    flow.source(source, name="read").sink(seen)
    result = flow.run(store=False, progress=False, raise_on_failure=False)
    assert not result.ok
    assert result.error is not None
    assert "RedisStreamSource('redis://127.0.0.1:1/0', stream 's')" in result.error.message
    assert "unreachable" in result.error.message
    with pytest.raises(ConnectorError, match=r"127\.0\.0\.1:1"):
        RedisStreamSink("redis://127.0.0.1:1/0", "s", retry_seconds=0.3).write_batch([1])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_server_going_away_mid_run_fails_clearly_after_retries(tmp_path: Path) -> None:
    """A Redis server of the test's own, killed mid-run: the source retries with backoff,
    then the run fails naming the connector and address (it does not hang)."""
    require_redis()
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed: cannot start a server to stop")
    port = _free_port()
    server = subprocess.Popen(
        [binary, "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        url = f"redis://127.0.0.1:{port}/0"
        _wait_for(port)
        import redis

        redis.Redis.from_url(url).xadd("s", {"data": b"1"})
        seen: list[Any] = []

        def kill_server(event: Any) -> None:
            seen.append(event)
            server.kill()
            server.wait()

        flow = rb.Flow("redis-gone")
        source = RedisStreamSource(url, "s", group="g", block=0.1, retry_seconds=1.5)
        flow.source(source, name="read").sink(kill_server)
        started = time.monotonic()
        result = flow.run(store=False, progress=False, raise_on_failure=False)
        assert seen == [1]
        assert not result.ok
        assert result.error is not None
        assert f"127.0.0.1:{port}" in result.error.message
        assert "retried for 1.5 s" in result.error.message
        assert time.monotonic() - started < 20
    finally:
        server.kill()
        server.wait()


def _wait_for(port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"redis-server on port {port} did not start")
