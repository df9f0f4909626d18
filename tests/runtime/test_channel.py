"""Channels: bounded hand-over of batches, end of stream per writer, aligned barriers."""

from __future__ import annotations

import asyncio
from typing import Any

from riverbed._runtime.local.channel import TICK, Barrier, Channel


async def _drain(channel: Channel) -> list[Any]:
    items = []
    while (item := await channel.get()) is not None:
        items.append(item)
    return items


def test_end_waits_for_every_writer() -> None:
    """The reader sees the end only after every writer has ended."""

    async def scenario() -> list[Any]:
        channel = Channel(8, ["a", "b"])
        await channel.put([1], "a")
        await channel.end("a")
        await channel.put([2], "b")
        await channel.end("b")
        return await _drain(channel)

    assert asyncio.run(scenario()) == [[1], [2]]


def test_barrier_holds_back_what_follows_it_until_aligned() -> None:
    """Batches a writer puts after its barrier wait until every live writer put it too."""

    async def scenario() -> list[Any]:
        channel = Channel(16, ["a", "b"])
        await channel.put([1], "a")
        await channel.barrier(Barrier(1), "a")
        await channel.put([2], "a")  # after a's barrier: held back
        await channel.put([3], "b")  # before b's barrier: passes
        await channel.barrier(Barrier(1), "b")
        await channel.put([4], "b")
        await channel.end("a")
        await channel.end("b")
        return await _drain(channel)

    assert asyncio.run(scenario()) == [[1], [3], Barrier(1), [2], [4]]


def test_an_ended_writer_counts_as_aligned() -> None:
    """A writer that ended does not hold a barrier back."""

    async def scenario() -> list[Any]:
        channel = Channel(16, ["a", "b"])
        await channel.barrier(Barrier(1), "a")
        await channel.put([2], "a")
        await channel.put([3], "b")
        await channel.end("b")
        await channel.end("a")
        return await _drain(channel)

    assert asyncio.run(scenario()) == [[3], Barrier(1), [2]]


def test_next_barrier_aligns_again_from_held_items() -> None:
    """A second barrier held behind the first is aligned on its own after release."""

    async def scenario() -> list[Any]:
        channel = Channel(16, ["a", "b"])
        await channel.barrier(Barrier(1), "a")
        await channel.put([1], "a")
        await channel.barrier(Barrier(2), "a")
        await channel.put([2], "a")
        await channel.barrier(Barrier(1), "b")
        await channel.put([3], "b")
        await channel.barrier(Barrier(2), "b")
        await channel.end("a")
        await channel.end("b")
        return await _drain(channel)

    assert asyncio.run(scenario()) == [Barrier(1), [1], [3], Barrier(2), [2]]


def test_ticks_are_never_held_back() -> None:
    """A tick passes even while a barrier is being aligned."""

    async def scenario() -> list[Any]:
        channel = Channel(16, ["a", "b"])
        await channel.barrier(Barrier(1), "a")
        await channel.tick()
        await channel.end("b")
        await channel.end("a")
        return await _drain(channel)

    assert asyncio.run(scenario()) == [TICK, Barrier(1)]
