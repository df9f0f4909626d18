"""``Changes``: the changes to a store's runs that this process heard of, by topic, which
waiters wait on (``RunChanges`` in the store protocol), shared by every store object of
one database in the process.

A store bumps a topic when it queues, releases, transitions or commits a run itself; the
PostgreSQL store also when its listener hears another process's change (``NOTIFY``). One
object per database in a process, so that a worker and a workflow holding two store
objects of one SQLite file hear each other.

Topics are counted in a fixed number of buckets, by hash: memory stays bounded however
many step runs come and go, and two topics sharing a bucket only cost a waiter a look
at the store for nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import zlib
from collections.abc import Callable, Collection

__all__ = ["Changes", "changes_of"]

_BUCKETS = 1024


_Waiter = tuple[frozenset[int], asyncio.AbstractEventLoop, "asyncio.Future[None]"]
"""A coroutine waiting: the buckets of its topics, its loop, the future it awaits."""


def _buckets(topics: Collection[str]) -> frozenset[int]:
    return frozenset(zlib.crc32(topic.encode()) % _BUCKETS for topic in topics)


class Changes:
    """Counts of changes by topic, and their waiters: threads (``wait``) and event loops'
    coroutines (``wait_async``)."""

    def __init__(self) -> None:
        self._counts = [0] * _BUCKETS
        self._everything = 0
        """Changes to every topic at once (a change whose topic is not known)."""
        self._changed = threading.Condition()
        self._futures: list[_Waiter] = []
        self.waiting = 0
        """Waiters waiting now."""
        self.last_wait = time.monotonic()
        """When a waiter last began to wait (``time.monotonic``)."""
        self.on_wait: Callable[[], None] | None = None
        """Called as a waiter begins to wait: the PostgreSQL store starts its listener."""

    def mark(self, topics: Collection[str]) -> int:
        """How many changes to ``topics`` were heard so far (a waiter notes it before it
        looks at the store, and waits for it to move)."""
        return self._mark(_buckets(topics))

    def _mark(self, buckets: frozenset[int]) -> int:
        return self._everything + sum(self._counts[bucket] for bucket in buckets)

    def bump(self, topic: str | None) -> None:
        """A change to ``topic`` (None: to every topic): wake its waiters."""
        with self._changed:
            if topic is None:
                self._everything += 1
                woken, self._futures = self._futures, []
            else:
                (bucket,) = _buckets([topic])
                self._counts[bucket] += 1
                woken = [entry for entry in self._futures if bucket in entry[0]]
                self._futures = [entry for entry in self._futures if bucket not in entry[0]]
            self._changed.notify_all()
        for _, loop, future in woken:
            with contextlib.suppress(RuntimeError):  # its loop closed meanwhile
                loop.call_soon_threadsafe(_settle, future)

    def wait(self, topics: Collection[str], seen: int, timeout: float) -> int:
        """Block until ``mark(topics)`` differs from ``seen``, at most ``timeout``
        seconds; return it."""
        buckets = _buckets(topics)
        self._begin()
        try:
            with self._changed:
                self._changed.wait_for(lambda: self._mark(buckets) != seen, timeout)
                return self._mark(buckets)
        finally:
            self._end()

    async def wait_async(self, topics: Collection[str], seen: int, timeout: float) -> int:
        """``wait``, without blocking the event loop."""
        buckets = _buckets(topics)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        entry = (buckets, loop, future)
        self._begin()
        try:
            with self._changed:
                if self._mark(buckets) != seen:
                    return self._mark(buckets)
                self._futures.append(entry)
            await asyncio.wait_for(future, timeout)
        except TimeoutError:
            pass
        finally:
            with self._changed, contextlib.suppress(ValueError):  # unless woken meanwhile
                self._futures.remove(entry)
            self._end()
        return self.mark(topics)

    def _begin(self) -> None:
        with self._changed:
            self.waiting += 1
            self.last_wait = time.monotonic()
        if self.on_wait is not None:
            self.on_wait()

    def _end(self) -> None:
        with self._changed:
            self.waiting -= 1


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


_SHARED: dict[str, Changes] = {}
_SHARED_LOCK = threading.Lock()


def changes_of(database: str) -> Changes:
    """The ``Changes`` of ``database`` (a file's path, a URL) in this process."""
    with _SHARED_LOCK:
        return _SHARED.setdefault(database, Changes())
