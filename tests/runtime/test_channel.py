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


async def _settle() -> None:
    """Let every task run until each one waits on something (no timing involved)."""
    for _ in range(50):
        await asyncio.sleep(0)


def test_a_writer_held_behind_a_barrier_waits_when_its_queue_is_full() -> None:
    """What a writer puts after its barrier counts against its own capacity: it waits,
    while the reader goes on taking the other writers' batches."""

    async def scenario() -> tuple[list[int], list[Any], list[Any]]:
        channel = Channel(2, ["a", "b"])
        got: list[Any] = []
        written: list[int] = []
        go = asyncio.Event()

        async def read() -> None:
            while (item := await channel.get()) is not None:
                got.append(item)

        async def write_a() -> None:
            await channel.barrier(Barrier(1), "a")
            for i in range(10):
                await channel.put([i], "a")
                written.append(i)
            await channel.end("a")

        async def write_b() -> None:
            for i in (100, 101, 102):
                await channel.put([i], "b")
            await go.wait()
            await channel.barrier(Barrier(1), "b")
            await channel.end("b")

        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(job()) for job in (read, write_a, write_b)]
        await _settle()
        held, before = list(written), list(got)
        go.set()
        await asyncio.gather(*tasks)
        return held, before, got

    held, before, got = asyncio.run(scenario())
    assert len(held) <= 2  # a waited once its own queue was full
    assert before == [[100], [101], [102]]  # b's batches passed while a was held
    assert got == before + [Barrier(1)] + [[i] for i in range(10)]


def test_each_writer_has_room_of_its_own() -> None:
    """A writer with a full queue does not shut out the others."""

    async def scenario() -> list[Any]:
        channel = Channel(2, ["a", "b"])
        await channel.put(["a1"], "a")
        await channel.put(["a2"], "a")
        loop = asyncio.get_running_loop()
        blocked = loop.create_task(channel.put(["a3"], "a"))
        other = loop.create_task(channel.put(["b1"], "b"))
        await _settle()
        assert not blocked.done()  # a's queue is full
        assert other.done()  # b has room of its own
        got = [await channel.get(), await channel.get(), await channel.get()]
        await blocked
        await channel.end("a")
        await channel.end("b")
        return got + await _drain(channel)

    assert asyncio.run(scenario()) == [["a1"], ["a2"], ["b1"], ["a3"]]


def test_a_tick_never_waits_for_room() -> None:
    """A tick is put at once even when the writers' queues are full; a tick already
    waiting is not doubled."""

    async def scenario() -> list[Any]:
        channel = Channel(1, ["a"])
        await channel.put([1], "a")
        tick = asyncio.get_running_loop().create_task(channel.tick())
        await _settle()
        assert tick.done()
        channel.nudge()
        reader = asyncio.get_running_loop().create_task(_drain(channel))
        await channel.end("a")
        return await reader

    assert asyncio.run(scenario()) == [[1], TICK]
