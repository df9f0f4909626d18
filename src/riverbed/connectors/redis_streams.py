"""Redis Streams: a consumer-group source that acknowledges on checkpoint commit, and
sinks that XADD (at-least-once, or exactly once per checkpoint through a Lua script).

The source reads each stream as one partition, as consumer ``consumer`` of group
``group`` (created if missing). Its position is the id of the last entry read; entries
are acknowledged (XACK) only once a checkpoint holding them is committed. After a crash,
the entries read but not acknowledged wait in the group's pending list: a resumed run
acknowledges those its checkpoint covers and reads the rest again, so its state is
exactly-once. A new run (not a resume) reads the pending entries again too: at-least-once.

Needs the ``redis`` extra (redis-py): ``pip install 'riverbed[redis]'``.
"""

from __future__ import annotations

import collections
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from riverbed.connectors._common import (
    ConnectorError,
    Decode,
    Decoder,
    client,
    retry_async,
    retry_sync,
)

__all__ = ["RedisStreamSink", "RedisStreamSource", "RedisStreamTransactionalSink"]

_EXTRA = "redis"


def _redis(connector: str) -> Any:
    return client("redis", _EXTRA, connector)


def _address(url: str) -> str:
    """``url`` without its password, for messages."""
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.rpartition('@')[2]}"


def _id(entry_id: str) -> tuple[int, int]:
    """An entry id (``"1700000000000-3"``) as a comparable pair."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisStreamSource:
    """Read Redis streams as consumer ``consumer`` of group ``group``; XACK on checkpoint.

    Each entry's field ``field`` is decoded with ``decode`` (``"json"`` by default;
    ``field=None`` gives every field as a dict of decoded values). An entry that cannot be
    decoded is a dead letter with its raw bytes, and acknowledged like the others. The
    group is created at ``start`` (``"0"``: the stream's beginning; ``"$"``: new entries
    only) if it does not exist. Reads wait up to ``block`` seconds for new entries; with
    ``idle_timeout``, a partition ends once nothing came for that many seconds (a run that
    drains a stream, then stops). A lost connection is retried with backoff for
    ``retry_seconds``, then the run fails naming the connector and the address.

    >>> source = RedisStreamSource("redis://localhost:6379", "clicks", group="counts")
    >>> flow.source(source).key_by(page)  # doctest: +SKIP
    """

    __module__ = "riverbed.connectors"

    def __init__(
        self,
        url: str,
        streams: str | Sequence[str],
        *,
        group: str,
        consumer: str = "riverbed",
        field: str | None = "data",
        decode: Decode = "json",
        start: str = "0",
        block: float = 1.0,
        idle_timeout: float | None = None,
        retry_seconds: float = 30.0,
    ) -> None:
        self.url = url
        self.streams = [streams] if isinstance(streams, str) else list(streams)
        if not self.streams:
            raise ValueError("RedisStreamSource: name at least one stream")
        self.group = group
        self.consumer = consumer
        self.field = field
        self.decode = decode
        self.start = start
        self.block = block
        self.idle_timeout = idle_timeout
        self.retry_seconds = retry_seconds
        Decoder(decode, repr(self))  # checks decode= now, not at the first message

    def __repr__(self) -> str:
        return f"RedisStreamSource({_address(self.url)!r}, {self.streams!r}, group={self.group!r})"

    def partitions(self) -> Sequence[str]:
        """One partition per stream."""
        return list(self.streams)

    def open(self, partition: str, position: str | None) -> _StreamReader:
        """A reader of stream ``partition``, after entry id ``position``."""
        return _StreamReader(self, partition, position)


class _StreamReader:
    """Reads one stream of a ``RedisStreamSource``; the position is the last entry id."""

    def __init__(self, source: RedisStreamSource, stream: str, position: str | None) -> None:
        self.source = source
        self.stream = stream
        self.last = position
        self.name = f"RedisStreamSource({_address(source.url)!r}, stream {stream!r})"
        self.decoder = Decoder(source.decode, self.name)
        self.unacked: collections.deque[str] = collections.deque()
        self.cursor = position or "0"
        """Where the pending entries are read from; ``">"`` once they are all read."""
        self.redis: Any = None
        self.idle_since = time.monotonic()

    async def _connect(self) -> Any:
        redis = _redis("RedisStreamSource")
        conn = redis.asyncio.from_url(self.source.url)
        try:
            await conn.xgroup_create(
                self.stream, self.source.group, self.source.start, mkstream=True
            )
        except redis.ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise
        if self.last is not None:
            await self._ack_covered(conn, self.last)
        return conn

    async def _ack_covered(self, conn: Any, position: str) -> None:
        """Acknowledge this consumer's pending entries up to ``position``: the checkpoint
        resumed from covers them (the run died before it could acknowledge them)."""
        while True:
            pending = await conn.xpending_range(
                self.stream,
                self.source.group,
                "-",
                position,
                1000,
                consumername=self.source.consumer,
            )
            if not pending:
                return
            await conn.xack(self.stream, self.source.group, *[p["message_id"] for p in pending])

    async def _call(self, what: Callable[[], Any]) -> Any:
        redis = _redis("RedisStreamSource")

        async def once() -> Any:
            if self.redis is None:
                self.redis = await self._connect()
            try:
                return await what()
            except (redis.ConnectionError, redis.TimeoutError):
                await self._drop()
                raise

        try:
            return await retry_async(
                self.name,
                once,
                (redis.ConnectionError, redis.TimeoutError),
                seconds=self.source.retry_seconds,
            )
        except (redis.ConnectionError, redis.TimeoutError) as error:
            raise ConnectorError(
                f"{self.name}: Redis at {_address(self.source.url)} is unreachable "
                f"({error}); retried for {self.source.retry_seconds:g} s. Check that the "
                "server runs and the URL is right",
                connector="RedisStreamSource",
                address=_address(self.source.url),
            ) from error

    async def read(self, max_events: int) -> list[Any] | None:
        """The next entries: first this consumer's pending ones after the position, then
        new ones (waiting up to ``block`` seconds)."""
        pending = self.cursor != ">"
        block = None if pending else int(self.source.block * 1000)
        answer = await self._call(
            lambda: self.redis.xreadgroup(
                self.source.group,
                self.source.consumer,
                {self.stream: self.cursor},
                count=max_events,
                block=block,
            )
        )
        entries = answer[0][1] if answer else []
        if pending and not entries:
            self.cursor = ">"
        if not entries:
            idle = self.source.idle_timeout
            if idle is not None and time.monotonic() - self.idle_since >= idle and not pending:
                return None
            return []
        self.idle_since = time.monotonic()
        return self._events(entries, pending)

    def _events(self, entries: list[Any], pending: bool) -> list[Any]:
        events = []
        for entry_id, fields in entries:
            key = _text(entry_id)
            self.unacked.append(key)
            self.last = key
            if pending:
                self.cursor = key
            ok, value = self._decoded(fields)
            if ok:
                events.append(value)
        return events

    def _decoded(self, fields: dict[bytes, bytes]) -> tuple[bool, Any]:
        field = self.source.field
        if field is None:
            values = {}
            for name, raw in fields.items():
                ok, value = self.decoder.one(raw)
                if not ok:
                    return False, None
                values[_text(name)] = value
            return True, values
        found = fields.get(field.encode())
        if found is None:
            missing = KeyError(f"no field {field!r} (fields: {sorted(map(_text, fields))})")
            self.decoder.reject(
                json.dumps({_text(k): _text(v) for k, v in fields.items()}).encode(), missing
            )
            return False, None
        return self.decoder.one(found)

    def rejected(self) -> list[tuple[bytes, BaseException]]:
        """Entries that could not be decoded since last asked."""
        return self.decoder.rejected()

    def position(self) -> str | None:
        """The id of the last entry read."""
        return self.last

    async def committed(self, position: str | None) -> None:
        """XACK the entries read up to ``position``: a committed checkpoint holds them."""
        if position is None:
            return
        upto = _id(position)
        done = []
        while self.unacked and _id(self.unacked[0]) <= upto:
            done.append(self.unacked.popleft())
        for start in range(0, len(done), 1000):
            await self._ack(done[start : start + 1000])

    async def _ack(self, ids: list[str]) -> None:
        await self._call(lambda: self.redis.xack(self.stream, self.source.group, *ids))

    async def _drop(self) -> None:
        if self.redis is not None:
            conn, self.redis = self.redis, None
            await conn.aclose()

    async def close(self) -> None:
        """Close the connection."""
        await self._drop()


def _encoder(encode: Callable[[Any], bytes | str] | None) -> Callable[[Any], bytes | str]:
    return encode or (lambda event: json.dumps(event, separators=(",", ":")))


class RedisStreamSink:
    """XADD each event to ``stream``, as field ``field`` (JSON by default): at-least-once.

    Events are written as they come, pipelined per batch; after a crash, the events since
    the last checkpoint are written again (duplicates). For exactly once, use
    ``RedisStreamTransactionalSink``. ``maxlen`` caps the stream (approximately).

    >>> flow.source(events).sink(RedisStreamSink("redis://localhost", "out"))  # doctest: +SKIP
    """

    __module__ = "riverbed.connectors"

    def __init__(
        self,
        url: str,
        stream: str,
        *,
        field: str = "data",
        encode: Callable[[Any], bytes | str] | None = None,
        maxlen: int | None = None,
        retry_seconds: float = 30.0,
    ) -> None:
        self.url = url
        self.stream = stream
        self.field = field
        self.encode = _encoder(encode)
        self.maxlen = maxlen
        self.retry_seconds = retry_seconds
        self._redis: Any = None

    def __repr__(self) -> str:
        return f"RedisStreamSink({_address(self.url)!r}, {self.stream!r})"

    def write_batch(self, events: list[Any]) -> None:
        """XADD ``events`` in one pipeline (retried through a short outage)."""
        redis = _redis("RedisStreamSink")
        encoded = [self.encode(event) for event in events]

        def send() -> None:
            if self._redis is None:
                self._redis = redis.Redis.from_url(self.url)
            pipe = self._redis.pipeline(transaction=False)
            for value in encoded:
                pipe.xadd(self.stream, {self.field: value}, maxlen=self.maxlen, approximate=True)
            pipe.execute()

        _sync_call(self, send, self.retry_seconds)

    def close(self) -> None:
        """Close the connection."""
        if self._redis is not None:
            self._redis.close()


# Adds the entries only if the checkpoint's marker is new: atomic in Redis (a script runs
# alone), so a commit repeated after a crash adds nothing.
_COMMIT = """
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1]) == false then return 0 end
for i = 3, #ARGV do redis.call('XADD', KEYS[1], '*', ARGV[2], ARGV[i]) end
return #ARGV - 2
"""


class RedisStreamTransactionalSink:
    """XADD events to ``stream`` exactly once, at checkpoints (a ``TransactionalSink``).

    The events of a checkpoint are added in one Lua script together with a marker key
    (``riverbed:sink:<run>/<stage>/<checkpoint>``, kept ``marker_ttl`` seconds, a week by
    default): a resumed run commits that checkpoint again, and the marker makes it add
    nothing. Events appear when their checkpoint commits.

    >>> sink = RedisStreamTransactionalSink("redis://localhost", "out")  # doctest: +SKIP
    """

    __module__ = "riverbed.connectors"

    def __init__(
        self,
        url: str,
        stream: str,
        *,
        field: str = "data",
        encode: Callable[[Any], bytes | str] | None = None,
        marker_ttl: int = 7 * 24 * 3600,
        retry_seconds: float = 30.0,
    ) -> None:
        self.url = url
        self.stream = stream
        self.field = field
        self.encode = _encoder(encode)
        self.marker_ttl = marker_ttl
        self.retry_seconds = retry_seconds
        self._buffer: list[bytes | str] = []
        self._redis: Any = None

    def __repr__(self) -> str:
        return f"RedisStreamTransactionalSink({_address(self.url)!r}, {self.stream!r})"

    def write_batch(self, events: list[Any]) -> None:
        """Keep ``events`` (encoded) until their checkpoint."""
        self._buffer.extend(self.encode(event) for event in events)

    def prepare(self) -> list[bytes | str]:
        """The events kept since the last checkpoint."""
        prepared, self._buffer = self._buffer, []
        return prepared

    def commit(self, key: str, prepared: list[bytes | str]) -> None:
        """Add ``prepared`` to the stream unless checkpoint ``key`` was committed before."""
        redis = _redis("RedisStreamTransactionalSink")

        def send() -> None:
            if self._redis is None:
                self._redis = redis.Redis.from_url(self.url)
            marker = f"riverbed:sink:{key}"
            self._redis.eval(
                _COMMIT, 2, self.stream, marker, self.marker_ttl, self.field, *prepared
            )

        _sync_call(self, send, self.retry_seconds)

    def close(self) -> None:
        """Close the connection."""
        if self._redis is not None:
            self._redis.close()


def _sync_call(sink: Any, send: Callable[[], None], seconds: float) -> None:
    """``send()``, retried through a short outage, then a ``ConnectorError``."""
    redis = _redis(type(sink).__name__)
    transient = (redis.ConnectionError, redis.TimeoutError)
    try:
        retry_sync(repr(sink), send, transient, seconds=seconds)
    except transient as error:
        raise ConnectorError(
            f"{sink!r}: Redis at {_address(sink.url)} is unreachable ({error}); retried "
            f"for {seconds:g} s. Check that the server runs and the URL is right",
            connector=type(sink).__name__,
            address=_address(sink.url),
        ) from error
