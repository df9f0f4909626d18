"""The source protocol, and the adapters that make lists, iterables, async iterables and
generator functions into sources.

A source has named partitions. Each partition is read by a reader that returns batches and
reports a position after each one; opening a partition at a position resumes right after it.
That is what durable checkpoints store, and how a partitioned source spreads over workers.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import itertools
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Iterable, Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

from riverbed._errors import SourceError
from riverbed._model import callables
from riverbed._model.producers import Producer, is_producer_function

__all__ = ["PartitionReader", "Source"]


@runtime_checkable
class PartitionReader(Protocol):
    """Reads one partition of a source, batch by batch.

    ``read`` returns a list of up to ``max_events`` events (an empty list when nothing is
    available right now: the engine asks again a little later), or ``None`` at end of
    stream. It may be a coroutine function. ``position`` is where the reader stands after
    the last batch it returned: a JSON-able value that ``Source.open`` accepts to resume.

    Two optional methods (see docs/sources-and-sinks.md): ``committed(position)`` is
    called once a checkpoint holding ``position`` for this partition is committed (a
    broker source acknowledges there what it read up to it; it may be a coroutine
    function); ``rejected()`` returns the ``(raw, error)`` pairs the reader could not
    decode since last asked, which the run keeps as dead letters of the source.
    """

    def read(self, max_events: int) -> list[Any] | Awaitable[list[Any] | None] | None:
        """The next batch, ``[]`` for "nothing yet", or ``None`` at end of stream."""
        ...

    def position(self) -> Any:
        """A JSON-able position to resume right after the last batch read."""
        ...

    def close(self) -> Awaitable[None] | None:
        """Release what the reader holds. Called once, also after errors. May be a
        coroutine function."""
        ...


@runtime_checkable
class Source(Protocol):
    """A connector's input: named partitions, each opened at a resumable position.

    >>> class Numbers:
    ...     def partitions(self): return ["0"]
    ...     def open(self, partition, position): return NumbersReader(position or 0)
    """

    def partitions(self) -> Sequence[str]:
        """The names of the partitions, stable across runs."""
        ...

    def open(self, partition: str, position: Any | None) -> PartitionReader:
        """A reader for ``partition``, starting after ``position`` (None: the beginning)."""
        ...


# Set after the bodies, where a Protocol would count it a member.
PartitionReader.__module__ = Source.__module__ = "riverbed"


class _IteratorReader:
    """Reads a sync iterator; the position is the number of events read so far."""

    def __init__(self, iterator: Iterator[Any], start: int) -> None:
        self._iterator = iterator
        self._count = start
        if start:
            # Skip what was read before; consume() idiom from itertools' recipes.
            collections.deque(itertools.islice(iterator, start), maxlen=0)

    def read(self, max_events: int) -> list[Any] | None:
        batch = list(itertools.islice(self._iterator, max_events))
        if not batch:
            return None
        self._count += len(batch)
        return batch

    def pull(self, max_events: int) -> Iterator[Any]:
        """Up to ``max_events`` events as a lazy iterator, for a runner that consumes them
        one by one as they are made (no batch list: each event is still in the CPU's
        cache when it is processed). The runner reports how many it took with ``pulled``.
        """
        return itertools.islice(self._iterator, max_events)

    def pulled(self, count: int) -> None:
        """Account for ``count`` events taken through ``pull``."""
        self._count += count

    def position(self) -> int:
        return self._count

    def close(self) -> None:
        close = getattr(self._iterator, "close", None)
        if close is not None:
            close()


class _AsyncIteratorReader:
    """Reads an async iterator. A pump task pulls events into a buffer as they come, so a
    batch holds whatever arrived since the last read: low latency, and batches under load."""

    def __init__(self, iterator: AsyncIterator[Any], start: int) -> None:
        self._iterator = iterator
        self._skip = start
        self._count = start
        self._buffer: collections.deque[Any] = collections.deque()
        self._ready = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._done = False
        self._error: BaseException | None = None
        self._pump: asyncio.Task[None] | None = None
        self._limit = 1

    async def _run_pump(self) -> None:
        try:
            async for event in self._iterator:
                if self._skip:
                    self._skip -= 1
                    continue
                self._buffer.append(event)
                self._ready.set()
                if len(self._buffer) >= self._limit:
                    self._room.clear()
                    await self._room.wait()
        except Exception as error:  # noqa: BLE001 - the user's iterator: handed to the reader
            self._error = error
        finally:
            self._done = True
            self._ready.set()

    async def read(self, max_events: int) -> list[Any] | None:
        self._limit = max_events
        if self._pump is None:
            self._pump = asyncio.get_running_loop().create_task(self._run_pump())
        while not self._buffer and not self._done:
            self._ready.clear()
            await self._ready.wait()
        if self._error is not None:
            raise self._error
        if not self._buffer:
            return None
        count = min(max_events, len(self._buffer))
        batch = [self._buffer.popleft() for _ in range(count)]
        self._count += count
        self._room.set()
        return batch

    def position(self) -> int:
        return self._count

    async def close(self) -> None:
        # Stop the pump, then close the generator so that its clean-up (a finally, an
        # async with) runs now rather than at garbage collection.
        if self._pump is not None and not self._pump.done():
            self._pump.cancel()
            await asyncio.wait([self._pump])
        aclose = getattr(self._iterator, "aclose", None)
        if aclose is not None:
            await aclose()


class IterableSource:
    """One partition over a list, an iterable or an async iterable.

    A list (or any re-iterable collection) can be read by many runs; a one-shot iterator
    (a generator object) by one run only, which ``open`` checks.
    """

    def __init__(self, items: Iterable[Any] | AsyncIterable[Any]) -> None:
        self.items = items
        self._one_shot = isinstance(items, Iterator | AsyncIterator)
        self._opened = False

    def partitions(self) -> Sequence[str]:
        return ["0"]

    def open(self, partition: str, position: Any | None) -> PartitionReader:
        if self._one_shot and self._opened:
            raise SourceError(
                f"this source reads a one-shot iterator ({type(self.items).__name__}) that an "
                "earlier run consumed; pass a list, or a generator function (not its result)"
            )
        self._opened = True
        start = int(position or 0)
        if isinstance(self.items, AsyncIterable):
            return _AsyncIteratorReader(aiter(self.items), start)
        return _IteratorReader(iter(self.items), start)

    def __repr__(self) -> str:
        return f"IterableSource({type(self.items).__name__})"


class FunctionSource:
    """One partition over what a zero-argument function returns, called anew for each run:
    a generator function, an async generator function, or any function returning an
    iterable or async iterable."""

    def __init__(self, function: Any) -> None:
        self.function = function

    def partitions(self) -> Sequence[str]:
        return ["0"]

    def open(self, partition: str, position: Any | None) -> PartitionReader:
        produced = self.function()
        if inspect.isawaitable(produced) and not isinstance(produced, AsyncIterable):
            close = getattr(produced, "close", None)
            if close is not None:  # else Python warns "coroutine ... was never awaited"
                close()
            raise SourceError(
                f"source function {getattr(self.function, '__name__', self.function)!r} is a "
                "coroutine function; make it an async generator (use 'yield') or return an "
                "async iterable"
            )
        if not isinstance(produced, Iterable | AsyncIterable):
            raise SourceError(
                f"source function {getattr(self.function, '__name__', self.function)!r} "
                f"returned {type(produced).__name__}, not an iterable; make it yield events"
            )
        return IterableSource(produced).open(partition, position)

    def __repr__(self) -> str:
        return f"FunctionSource({callables.describe(self.function)})"


def is_source(obj: Any) -> bool:
    """True if ``obj`` keeps the source protocol (has ``partitions`` and ``open``)."""
    return callable(getattr(obj, "partitions", None)) and callable(getattr(obj, "open", None))


def as_source(obj: Any) -> Source:
    """Make any of the accepted source shapes into a ``Source``; TypeError otherwise."""
    if is_source(obj):
        return obj  # type: ignore[no-any-return]
    if isinstance(obj, str | bytes):
        raise TypeError(
            f"a {type(obj).__name__} is not a source (it would yield characters); "
            "wrap it in a list, or read a file with a generator function"
        )
    if isinstance(obj, Iterable | AsyncIterable):
        return IterableSource(obj)
    if is_producer_function(obj):
        return Producer(obj)
    if callable(obj):
        _check_source_function(obj)
        if inspect.iscoroutinefunction(obj):
            raise TypeError(
                f"{callables.describe(obj)} is a coroutine function (async def without "
                "yield), which returns one value, not a stream of events; make it an async "
                "generator (use 'yield')"
            )
        return FunctionSource(obj)
    raise TypeError(
        f"cannot read events from {type(obj).__name__}: give a list or other iterable, an "
        "async iterable, a generator function, or an object with partitions() and open()"
    )


def _check_source_function(fn: Any) -> None:
    """A TypeError for a function that needs arguments riverbed does not give a source."""
    target = callables.unwrap(fn)
    if not inspect.isfunction(target) or inspect.isgeneratorfunction(target):
        return
    try:
        inspect.signature(fn).bind()
    except TypeError:
        pass
    except ValueError:
        return
    else:
        return
    params = ", ".join(inspect.signature(fn).parameters)
    raise TypeError(
        f"{callables.describe(fn)} takes ({params}): a source function takes no arguments "
        "(a generator function) or one, the limit of a producer; for a producer of "
        "(state, limit), give its state's factory: rb.Producer(fn, state=Factory)"
    )
