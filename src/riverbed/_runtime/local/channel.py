"""Bounded channels of batches between the tasks of a local run: the backpressure, and the
alignment of checkpoint barriers.

Each writer of a channel (a source partition, or a chain upstream) has a bounded queue of
its own in it: a writer whose queue is full waits until the reader takes from it, so a fast
source can never run more than a few batches ahead of a slow stage, and a fast writer never
takes the room of a slow one. The reader takes what the writers put in the order they put
it. Besides batches, a channel carries markers: end of stream (each writer puts it once;
the reader sees the end when every writer has), checkpoint barriers, and clock ticks for
processors with timers.

Barriers are aligned here: once a writer has put barrier ``n``, what it puts next is held
back in its queue until every other live writer has put barrier ``n`` too; then the reader
gets the barrier, and after it the held batches. So the reader's state, when it meets the
barrier, reflects exactly the events written before barrier ``n`` by every writer: a
consistent cut (the Chandy-Lamport snapshot as Flink aligns it). A writer that has ended
counts as aligned. What a writer holds back still fills its queue, so a writer ahead of the
others waits once its queue is full (as Flink blocks an aligned input channel), while the
reader goes on taking the batches of the writers still on their way to the barrier: memory
stays bounded however long an alignment takes.

Ticks belong to no writer: they are never held back and never wait for room, and one tick
waiting to be read stands for any number (a tick makes the reader look at its clock).
"""

from __future__ import annotations

import asyncio
import collections
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


class _Writer:
    """One writer's queue in a channel.

    Its first items are *visible*, each with an entry in the channel's arrival order;
    those after a barrier that is not aligned yet are held, each with an entry in the
    channel's order of held items, until it is.
    """

    __slots__ = ("held", "items", "name", "putters")

    def __init__(self, name: str) -> None:
        self.name = name
        self.items: collections.deque[Any] = collections.deque()
        self.held = False
        """True from the writer's barrier until the channel aligns it: what it puts is held."""
        self.putters: collections.deque[asyncio.Future[None]] = collections.deque()


class Channel:
    """Bounded queues of batches (and markers) from named writers to one chain: at most
    ``capacity`` items per writer, held ones included."""

    def __init__(self, capacity: int, writers: list[str]) -> None:
        self._capacity = capacity
        self._writers = {name: _Writer(name) for name in writers}
        self._order: collections.deque[_Writer | None] = collections.deque()
        """The visible items in the order they were put: their writer, or None for a tick."""
        self._held: collections.deque[_Writer] = collections.deque()
        """The held items in the order they were put: their writer."""
        self._ticking = False  # a tick is in ``_order``
        self._getter: asyncio.Future[None] | None = None
        self._live = set(writers)
        self._aligned: set[str] = set()  # live writers whose pending barrier was read
        self._barrier: Barrier | None = None

    async def put(self, batch: list[Any], writer: str) -> None:
        """Hand over a batch; waits while ``writer``'s queue is full (backpressure)."""
        queue = self._writers[writer]
        if len(queue.items) >= self._capacity:
            await self._room(queue)
        queue.items.append(batch)  # ``_append``, inlined: once per batch
        if queue.held:
            self._held.append(queue)
        else:
            self._order.append(queue)
            getter = self._getter
            if getter is not None and not getter.done():
                getter.set_result(None)

    async def barrier(self, barrier: Barrier, writer: str) -> None:
        """Pass checkpoint ``barrier`` on behind what ``writer`` put before it; what the
        writer puts after it is held back until the barrier is aligned."""
        queue = self._writers[writer]
        if len(queue.items) >= self._capacity:
            await self._room(queue)
        self._append(queue, barrier)
        queue.held = True

    async def end(self, writer: str) -> None:
        """Say that ``writer`` is done."""
        queue = self._writers[writer]
        if len(queue.items) >= self._capacity:
            await self._room(queue)
        self._append(queue, _END)

    async def tick(self) -> None:
        """Put a clock tick (from no writer: it never waits, nor is it held back)."""
        self.nudge()

    @property
    def backlog(self) -> int:
        """Items waiting to be read (batches and markers, held ones included)."""
        return len(self._order) + len(self._held)

    def nudge(self) -> None:
        """Put a tick now, from code that cannot wait (a callback): an operator with
        outputs ready. A tick already waiting to be read does for both."""
        if not self._ticking:
            self._ticking = True
            self._order.append(None)
            self._wake_reader()

    async def get(self) -> Any:
        """The next batch, ``Barrier`` (once aligned) or ``TICK``; None once every writer
        has ended."""
        order = self._order
        while True:
            if not order:
                if not self._live:
                    return None
                self._getter = asyncio.get_running_loop().create_future()
                try:
                    await self._getter
                finally:
                    self._getter = None
                continue
            queue = order.popleft()
            if queue is None:
                self._ticking = False
                return TICK
            item = queue.items.popleft()
            if queue.putters:
                _wake_first(queue.putters)
            if item is _END or type(item) is Barrier:
                released = self._marker(queue.name, item)
                if released is not None:
                    return released
                continue
            return item

    def _append(self, queue: _Writer, item: Any) -> None:
        queue.items.append(item)
        if queue.held:
            self._held.append(queue)
        else:
            self._order.append(queue)
            self._wake_reader()

    def _wake_reader(self) -> None:
        getter = self._getter
        if getter is not None and not getter.done():
            getter.set_result(None)

    async def _room(self, queue: _Writer) -> None:
        """Wait until ``queue`` has room (the reader took one of its items)."""
        loop = asyncio.get_running_loop()
        while len(queue.items) >= self._capacity:
            putter = loop.create_future()
            queue.putters.append(putter)
            try:
                await putter
            except asyncio.CancelledError:
                if putter.done() and not putter.cancelled():
                    _wake_first(queue.putters)  # pass the room on to the next waiting
                raise
            finally:
                if putter in queue.putters:
                    queue.putters.remove(putter)

    def _marker(self, writer: str, item: Any) -> Barrier | None:
        """Take a writer's end or barrier into account; the barrier to pass on, if every
        live writer has now put it."""
        if item is _END:
            self._live.discard(writer)
        else:
            self._barrier = item
            self._aligned.add(writer)
        if self._barrier is not None and self._aligned >= self._live:
            return self._release()
        return None

    def _release(self) -> Barrier:
        """Every live writer has put the barrier: make what they held back visible, in the
        order it was put, each writer's up to and including its next barrier (which is
        then aligned in turn)."""
        barrier, self._barrier = self._barrier, None
        assert barrier is not None
        for name in self._aligned:
            self._writers[name].held = False
        self._aligned = set()
        # An aligned writer's barrier was its last visible item: its held ones start at 0.
        shown: dict[_Writer, int] = {}
        still_held: collections.deque[_Writer] = collections.deque()
        for queue in self._held:
            if queue.held:
                still_held.append(queue)
                continue
            index = shown.get(queue, 0)
            shown[queue] = index + 1
            self._order.append(queue)
            if type(queue.items[index]) is Barrier:
                queue.held = True
        self._held = still_held
        return barrier


def _wake_first(putters: collections.deque[asyncio.Future[None]]) -> None:
    """Wake the first writer's task still waiting for room."""
    for putter in putters:
        if not putter.done():
            putter.set_result(None)
            return
