"""Bounded channels of batches between the tasks of a local run: the backpressure, and the
alignment of checkpoint barriers.

A full channel suspends its writer until the reader takes a batch, so a fast source can
never run more than a few batches ahead of a slow stage. Besides batches, a channel carries
markers: end of stream (each writer puts it once; the reader sees the end when every writer
has), checkpoint barriers, and clock ticks for processors with timers.

Barriers are aligned here: once a writer has put barrier ``n``, what it puts next is held
back until every other live writer has put barrier ``n`` too; then the reader gets the
barrier, and after it the held batches. So the reader's state, when it meets the barrier,
reflects exactly the events written before barrier ``n`` by every writer: a consistent cut
(the Chandy-Lamport snapshot as Flink aligns it). A writer that has ended counts as aligned.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from dataclasses import dataclass
from typing import Any

_END = object()
"""End-of-stream marker: each writer of a channel puts it once when it is done."""

TICK: Any = object()
"""Clock tick marker, put by a run's ticker for processors with timers; never held back."""


@dataclass(frozen=True)
class Barrier:
    """Checkpoint barrier ``checkpoint_id``, flowing behind the batches written before it."""

    checkpoint_id: int


class Channel:
    """A bounded queue of batches (and markers) from named writers to one chain."""

    def __init__(self, capacity: int, writers: list[str]) -> None:
        self._queue: asyncio.Queue[tuple[str | None, Any]] = asyncio.Queue(capacity)
        self._live = set(writers)
        self._aligned: set[str] = set()  # live writers that have put the pending barrier
        self._held: collections.deque[tuple[str | None, Any]] = collections.deque()
        self._ready: collections.deque[Any] = collections.deque()
        self._barrier: Barrier | None = None

    async def put(self, batch: list[Any], writer: str) -> None:
        """Hand over a batch; waits while the channel is full (backpressure)."""
        await self._queue.put((writer, batch))

    async def barrier(self, barrier: Barrier, writer: str) -> None:
        """Pass checkpoint ``barrier`` on behind what ``writer`` put before it."""
        await self._queue.put((writer, barrier))

    async def tick(self) -> None:
        """Put a clock tick (from no writer: ticks are never held back)."""
        await self._queue.put((None, TICK))

    def nudge(self) -> None:
        """Put a tick now if there is room, from code that cannot wait (a callback): an
        operator with outputs ready. With no room, the batches queued will reach the
        reader first, and it collects what is ready then."""
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait((None, TICK))

    async def end(self, writer: str) -> None:
        """Say that ``writer`` is done."""
        await self._queue.put((writer, _END))

    async def get(self) -> Any:
        """The next batch, ``Barrier`` (once aligned) or ``TICK``; None once every writer
        has ended."""
        while not self._ready:
            if not self._live:
                return None
            writer, item = await self._queue.get()
            self._accept(writer, item)
        return self._ready.popleft()

    def _accept(self, writer: str | None, item: Any) -> None:
        if writer is not None and writer in self._aligned:
            self._held.append((writer, item))  # after its barrier: wait for the others
            return
        if item is _END:
            self._live.discard(writer)
        elif isinstance(item, Barrier):
            self._barrier = item
            self._aligned.add(writer)  # type: ignore[arg-type]
        else:
            self._ready.append(item)
            return
        if self._barrier is not None and self._aligned >= self._live:
            self._release()

    def _release(self) -> None:
        """Every live writer has put the barrier: pass it on, then replay what was held
        back (which may hold the next barrier, aligned again as it is replayed)."""
        self._ready.append(self._barrier)
        self._barrier = None
        self._aligned = set()
        held, self._held = self._held, collections.deque()
        for writer, item in held:
            self._accept(writer, item)
