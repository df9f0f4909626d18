"""HTTPSink against a real HTTP server of the test's own (the standard library's, on a
free port): JSON arrays of at most batch_size, retries with backoff on 503 and on a
connection refused, Retry-After, and a clear failure on a 4xx or when retries run out."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

import riverbed as rb
from riverbed.connectors import ConnectorError, HTTPSink


class Receiver(ThreadingHTTPServer):
    """Keeps what it is POSTed; answers ``script``'s codes first, then 200."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.bodies: list[Any] = []
        self.script: list[int] = []
        self.headers_seen: list[dict[str, str]] = []


class Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.headers_seen.append(dict(self.headers))
        code = self.server.script.pop(0) if self.server.script else 200
        if code == 200:
            self.server.bodies.append(json.loads(body))
        self.send_response(code)
        if code == 429:
            self.send_header("Retry-After", "0.2")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"no" if code >= 400 else b"ok")

    def log_message(self, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A running receiver, shut down after the test."""
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _url(server: Receiver) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/ingest"


def test_posts_json_arrays_of_at_most_batch_size(receiver: Receiver) -> None:
    """Every event arrives once, in arrays of at most batch_size, with the headers."""
    flow = rb.Flow("http-out")
    sink = HTTPSink(_url(receiver), batch_size=40, headers={"Authorization": "Bearer t"})
    flow.source(list(range(100))).sink(sink)
    flow.run(store=False, progress=False, batch_size=50)
    assert [len(body) for body in receiver.bodies] == [40, 10, 40, 10]
    assert [e for body in receiver.bodies for e in body] == list(range(100))
    assert receiver.headers_seen[0]["Authorization"] == "Bearer t"


def test_retries_503_and_429_with_backoff(receiver: Receiver) -> None:
    """503 and 429 (with Retry-After) are retried until the server takes the request."""
    import asyncio

    receiver.script = [503, 429, 503]
    sink = HTTPSink(_url(receiver), retry_seconds=20)
    asyncio.run(sink.write_batch([1, 2]))
    asyncio.run(sink.close())
    assert receiver.bodies == [[1, 2]]
    assert len(receiver.headers_seen) == 4


def test_a_4xx_fails_at_once_naming_the_url(receiver: Receiver) -> None:
    """A 400 is not retried: the run fails with the status and the URL."""
    receiver.script = [400]
    flow = rb.Flow("http-out")
    flow.source([1]).sink(HTTPSink(_url(receiver)), name="post")
    result = flow.run(store=False, progress=False, raise_on_failure=False)
    assert result.error is not None
    assert f"POST {_url(receiver)} failed (HTTP 400" in result.error.message
    assert len(receiver.headers_seen) == 1


def test_a_server_that_stays_away_fails_after_the_retries() -> None:
    """Connection refused, again and again: the sink gives up after retry_seconds with
    a clear error (it does not hang)."""
    import asyncio

    sink = HTTPSink("http://127.0.0.1:1/ingest", retry_seconds=1.0, timeout=1.0)
    started = time.monotonic()
    with pytest.raises(ConnectorError, match=r"POST http://127\.0\.0\.1:1/ingest failed"):
        asyncio.run(sink.write_batch([1]))
    assert time.monotonic() - started < 5
