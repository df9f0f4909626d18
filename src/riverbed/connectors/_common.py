"""What every connector shares: decoding at the boundary (``decode=``), importing a client
library with an error that names the extra to install, and retrying with backoff.

Everything a connector reads from a file or the network arrives as bytes and is decoded
here, as bytes, text, JSON or msgpack, or by the user's own function; it is never
unpickled. A message that cannot be decoded is not an error of the run: the reader keeps
it with its error and hands it over through ``rejected()`` (see ``riverbed.Source``), and
the runner stores it as a dead letter of the source, its raw bytes as the event.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Literal, TypeVar

from riverbed import RiverbedError

__all__ = ["ConnectorError", "Decode", "DecodeError", "Decoder", "backoff_delays", "client"]

logger = logging.getLogger("riverbed.connectors")

Decode = Literal["bytes", "text", "json", "msgpack"] | Callable[[bytes], Any]
"""How a connector decodes what it reads: a name, or a function of the raw bytes."""

T = TypeVar("T")


class DecodeError(RiverbedError, ValueError):
    """A message could not be decoded; kept as a dead letter with its raw bytes."""

    __module__ = "riverbed.connectors"

    def __init__(self, message: str, *, connector: str, raw: bytes) -> None:
        super().__init__(message)
        self.connector = connector
        self.raw = raw


class ConnectorError(RiverbedError, RuntimeError):
    """A connector could not reach or use its server: the message names the connector,
    the address and what to do."""

    __module__ = "riverbed.connectors"

    def __init__(self, message: str, *, connector: str, address: str) -> None:
        super().__init__(message)
        self.connector = connector
        self.address = address


def client(module: str, extra: str, connector: str) -> Any:
    """Import a connector's client library, or raise an ImportError naming the extra."""
    try:
        return importlib.import_module(module)
    except ImportError as missing:
        raise ImportError(
            f"{connector} needs the {module.split('.')[0]!r} package, which comes with "
            f"riverbed's {extra!r} extra: pip install 'riverbed[{extra}]'"
        ) from missing


def _msgpack(raw: bytes) -> Any:
    msgpack = client("msgpack", "msgpack", "decode='msgpack'")
    return msgpack.unpackb(raw, raw=False, strict_map_key=False)


_NAMED: dict[str, Callable[[bytes], Any]] = {
    "bytes": bytes,
    "text": lambda raw: raw.decode("utf-8"),
    "json": json.loads,
    "msgpack": _msgpack,
}


class Decoder:
    """Decodes raw messages for one reader and keeps those it could not decode.

    >>> decoder = Decoder("json", "example")
    >>> decoder.decode([b'{"a": 1}', b"{oops"])
    [{'a': 1}]
    >>> [(raw, type(error).__name__) for raw, error in decoder.rejected()]
    [(b'{oops', 'DecodeError')]
    """

    def __init__(self, decode: Decode, connector: str) -> None:
        if isinstance(decode, str):
            if decode not in _NAMED:
                raise ValueError(
                    f"{connector}: decode={decode!r} is not one of {sorted(_NAMED)}; "
                    "or pass a function of the raw bytes"
                )
            self.name: str = decode
            self.function = _NAMED[decode]
        elif callable(decode):
            self.name = str(getattr(decode, "__name__", repr(decode)))
            self.function = decode
        else:
            raise TypeError(f"{connector}: decode= takes a name or a function, not {decode!r}")
        self.connector = connector
        self._rejected: list[tuple[bytes, BaseException]] = []

    def one(self, raw: bytes) -> tuple[bool, Any]:
        """``(True, value)``, or ``(False, None)`` with ``raw`` kept as rejected."""
        try:
            return True, self.function(raw)
        except Exception as error:  # noqa: BLE001 - any failure to decode makes a dead letter
            self.reject(raw, error)
            return False, None

    def reject(self, raw: bytes, error: BaseException) -> None:
        """Keep ``raw`` as undecodable because of ``error``."""
        what = f"{type(error).__name__}: {error}"
        message = f"{self.connector}: could not decode {raw[:60]!r} as {self.name}: {what}"
        failure = DecodeError(message, connector=self.connector, raw=raw)
        failure.__cause__ = error
        self._rejected.append((raw, failure))

    def decode(self, raws: list[bytes]) -> list[Any]:
        """The decoded values of ``raws``; those that fail are kept as rejected."""
        out = []
        for raw in raws:
            ok, value = self.one(raw)
            if ok:
                out.append(value)
        return out

    def rejected(self) -> list[tuple[bytes, BaseException]]:
        """What could not be decoded since last asked (see the module docstring)."""
        rejected, self._rejected = self._rejected, []
        return rejected


def backoff_delays(total: float, first: float = 0.1, cap: float = 5.0) -> list[float]:
    """Exponential delays with jitter, adding up to about ``total`` seconds."""
    delays: list[float] = []
    delay = first
    while sum(delays) < total:
        delays.append(min(cap, delay) * random.uniform(0.5, 1.0))
        delay *= 2
    return delays


def _delays(seconds: float) -> Iterator[float | None]:
    """The pauses between tries for ``seconds`` in all, counted from the first try: None
    once the time is up (the last error then propagates)."""
    deadline = time.monotonic() + seconds
    for delay in backoff_delays(seconds):
        if time.monotonic() + delay > deadline:
            break
        yield delay
    yield None


def retry_sync(
    what: str,
    call: Callable[[], T],
    transient: tuple[type[BaseException], ...],
    *,
    seconds: float,
) -> T:
    """``call()``, tried again with backoff for ``seconds`` while it raises
    ``transient``; then the last error propagates."""
    for delay in _delays(seconds):
        try:
            return call()
        except transient as error:
            if delay is None:
                raise
            logger.warning("%s: %s; trying again in %.1f s", what, error, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


async def retry_async(
    what: str,
    call: Callable[[], Awaitable[T]],
    transient: tuple[type[BaseException], ...],
    *,
    seconds: float,
) -> T:
    """``await call()``, tried again with backoff for ``seconds`` while it raises
    ``transient``; then the last error propagates."""
    for delay in _delays(seconds):
        try:
            return await call()
        except transient as error:
            if delay is None:
                raise
            logger.warning("%s: %s; trying again in %.1f s", what, error, delay)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")
