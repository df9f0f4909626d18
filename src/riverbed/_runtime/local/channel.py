"""Bounded channels of batches between the tasks of a local run: the backpressure.

A full channel suspends its writer until the reader takes a batch, so a fast source can
never run more than a few batches ahead of a slow stage. End of stream is a marker each
writer puts once; the reader sees the end when every writer has put it.
"""

from __future__ import annotations

import asyncio
from typing import Any

_END = object()
"""End-of-stream marker: each writer of a channel puts it once when it is done."""


class Channel:
    """A bounded queue of batches from one or more writers to one chain."""

    def __init__(self, capacity: int, writers: int) -> None:
        self._queue: asyncio.Queue[Any] = asyncio.Queue(capacity)
        self._writers = writers

    async def put(self, batch: list[Any]) -> None:
        """Hand over a batch; waits while the channel is full (backpressure)."""
        await self._queue.put(batch)

    async def end(self) -> None:
        """Say that one writer is done."""
        await self._queue.put(_END)

    async def get(self) -> list[Any] | None:
        """The next batch, or None once every writer has ended."""
        while self._writers:
            item = await self._queue.get()
            if item is not _END:
                return item  # type: ignore[no-any-return]
            self._writers -= 1
        return None
