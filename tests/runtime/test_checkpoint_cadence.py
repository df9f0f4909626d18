"""The checkpointer's cadence: a checkpoint that comes due while the previous one is still
being committed is taken as soon as that commit ends, not skipped until the next tick or
count (a run whose commits are slow, on PostgreSQL beside a busy loop, made half as many)."""

from __future__ import annotations

import asyncio

from riverbed._runtime.local.checkpoints import Checkpointer
from riverbed._runtime.parts import Part
from riverbed.testing import TestClock


def test_a_checkpoint_due_during_a_commit_is_taken_when_it_ends() -> None:
    async def scenario() -> list[int]:
        release = asyncio.Event()
        committed: list[int] = []

        async def commit(checkpoint_id: int, part: Part) -> None:
            await release.wait()
            committed.append(checkpoint_id)

        checkpointer = Checkpointer(
            {"source"}, commit, clock=TestClock(), interval=None, every_events=100
        )
        checkpointer.count(100)  # checkpoint 1 comes due
        assert checkpointer.wants(0) == 1
        checkpointer.report("source", 1, Part())  # gathered: its commit starts
        await asyncio.sleep(0)
        checkpointer.count(100)  # checkpoint 2 comes due while 1 is being committed
        assert checkpointer.wants(1) is None  # not started: one commit at a time
        release.set()
        await checkpointer.drain()
        assert checkpointer.wants(1) == 2  # started the moment 1 was committed
        return committed

    assert asyncio.run(scenario()) == [1]


def test_without_a_checkpoint_due_none_follows_a_commit() -> None:
    async def scenario() -> int | None:
        async def commit(checkpoint_id: int, part: Part) -> None:
            return None

        checkpointer = Checkpointer(
            {"source"}, commit, clock=TestClock(), interval=None, every_events=100
        )
        checkpointer.count(100)
        checkpointer.report("source", 1, Part())
        await checkpointer.drain()
        return checkpointer.wants(1)

    assert asyncio.run(scenario()) is None
