"""HTTP: a sink that POSTs events as JSON arrays, with retries, backoff and a timeout.

Built on httpx (the ``http`` extra). A batch of the run is sent in requests of at most
``batch_size`` events each; a request that fails to connect, times out, or is answered
429 or 5xx is sent again with exponential backoff (honouring ``Retry-After``) for up to
``retry_seconds``; then the run fails naming the sink, the URL and the last answer. Any
other 4xx fails at once (sending it again would not help). At-least-once: after a crash,
the events after the last checkpoint are POSTed again, and a request whose answer was lost
is sent again; make the receiving end idempotent (each event carries what identifies it).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from riverbed.connectors._common import ConnectorError, backoff_delays, client

__all__ = ["HTTPSink"]

_RETRIED = {429, 500, 502, 503, 504}


def _json(events: list[Any]) -> bytes:
    return json.dumps(events, separators=(",", ":")).encode()


class HTTPSink:
    """POST events to ``url`` as JSON arrays of at most ``batch_size`` (at-least-once).

    ``headers`` go with every request (an ``Authorization``, say); ``timeout`` bounds each
    request (seconds); ``encode`` makes a request body of a list of events (a JSON array
    by default).

    >>> sink = HTTPSink("https://example.com/ingest", headers={"Authorization": "Bearer ..."})
    >>> flow.source(events).sink(sink)  # doctest: +SKIP
    """

    __module__ = "riverbed.connectors"

    def __init__(
        self,
        url: str,
        *,
        batch_size: int = 500,
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
        retry_seconds: float = 60.0,
        encode: Callable[[list[Any]], bytes] = _json,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"HTTPSink: batch_size must be at least 1, not {batch_size}")
        self.url = url
        self.batch_size = batch_size
        self.headers = {"Content-Type": "application/json", **(headers or {})}
        self.timeout = timeout
        self.retry_seconds = retry_seconds
        self.encode = encode
        self._client: Any = None

    def __repr__(self) -> str:
        return f"HTTPSink({self.url!r})"

    async def write_batch(self, events: list[Any]) -> None:
        """POST ``events``, ``batch_size`` at a time, each request until it succeeds."""
        httpx = client("httpx", "http", "HTTPSink")
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout, headers=self.headers)
        for start in range(0, len(events), self.batch_size):
            await self._post(self.encode(events[start : start + self.batch_size]))

    async def _post(self, body: bytes) -> None:
        httpx = client("httpx", "http", "HTTPSink")
        deadline = time.monotonic() + self.retry_seconds
        delays = iter(backoff_delays(self.retry_seconds, first=0.2, cap=10.0))
        while True:
            try:
                answer = await self._client.post(self.url, content=body)
            except httpx.TransportError as error:  # could not connect, timed out, cut off
                why = f"{type(error).__name__}: {error}"
                wait = None
            else:
                if answer.is_success:
                    return
                if answer.status_code not in _RETRIED:
                    raise self._failed(f"HTTP {answer.status_code}: {answer.text[:200]!r}", False)
                why = f"HTTP {answer.status_code}"
                wait = _retry_after(answer.headers.get("Retry-After"))
            delay = wait if wait is not None else next(delays, self.retry_seconds)
            if time.monotonic() + delay > deadline:
                raise self._failed(why, True)
            await asyncio.sleep(delay)

    def _failed(self, why: str, retried: bool) -> ConnectorError:
        tried = f"; retried for {self.retry_seconds:g} s" if retried else ""
        hint = (
            "check that the server runs and the URL is right"
            if retried
            else ("the server refused the request: check the URL, the headers and the body")
        )
        return ConnectorError(
            f"{self!r}: POST {self.url} failed ({why}){tried}. {hint[0].upper()}{hint[1:]}",
            connector="HTTPSink",
            address=self.url,
        )

    async def close(self) -> None:
        """Close the connections."""
        if self._client is not None:
            client_, self._client = self._client, None
            await client_.aclose()


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait by a ``Retry-After`` header of seconds (dates are ignored)."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
