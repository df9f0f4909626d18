"""Checkpoints under partitions that do not keep pace: a quiet partition (an async read
waiting for data) must not stop checkpoints, and what the others read meanwhile stays
bounded (events held behind a barrier count against backpressure)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import riverbed as rb
from riverbed.testing import TestClock


class QuietAndBusy:
    """Partition "quiet" waits (an awaited read, as a socket's would) until every busy
    partition has ended; each busy one reads at least ``batches`` batches of 1 as fast as
    it can, and on until ``enough()`` (at most a hundred times as many), noting how far
    reading runs ahead of the sink (``lag``, in events)."""

    def __init__(self, busy: int, batches: int) -> None:
        self.busy = [f"busy{i}" for i in range(busy)]
        self.batches = batches
        self.enough: Callable[[], bool] = lambda: True
        self.ended = 0
        self.produced = 0
        self.consumed = 0
        self.lag: list[int] = []
        self.quiet_reads = 0
        self._all_ended: asyncio.Event | None = None

    def partitions(self) -> list[str]:
        return ["quiet", *self.busy]

    def open(self, partition: str, position: Any) -> Any:
        if partition == "quiet":
            return QuietReader(self)
        return BusyReader(self, position or 0)

    def all_ended(self) -> asyncio.Event:
        if self._all_ended is None:
            self._all_ended = asyncio.Event()
        return self._all_ended

    def sink(self, event: Any) -> None:
        self.consumed += 1


class QuietReader:
    def __init__(self, owner: QuietAndBusy) -> None:
        self.owner = owner

    async def read(self, max_events: int) -> list[Any] | None:
        self.owner.quiet_reads += 1
        await self.owner.all_ended().wait()
        return None

    def position(self) -> int:
        return 0

    def close(self) -> None:
        pass


class BusyReader:
    def __init__(self, owner: QuietAndBusy, position: int) -> None:
        self.owner = owner
        self.read_so_far = position

    def read(self, max_events: int) -> list[Any] | None:
        owner = self.owner
        more = self.read_so_far < owner.batches or not owner.enough()
        if not more or self.read_so_far >= 100 * owner.batches:
            owner.ended += 1
            if owner.ended == len(owner.busy):
                owner.all_ended().set()
            return None
        owner.lag.append(owner.produced - owner.consumed)
        self.read_so_far += 1
        owner.produced += 1
        return [self.read_so_far % 10]

    def position(self) -> int:
        return self.read_so_far

    def close(self) -> None:
        pass


class Count:
    """Events per key."""

    def __init__(self) -> None:
        self.n = 0

    def add(self, value: int) -> int:
        self.n += 1
        return self.n


def _last_digit(value: int) -> int:
    return value % 10


class WhileQuiet:
    """A real store that notes, for each checkpoint committed, whether the quiet
    partition's read was still pending (a spy for the test)."""

    def __init__(self, store: rb.Store, source: QuietAndBusy) -> None:
        self._store = store
        self.source = source
        self.while_quiet = 0

    def commit_checkpoint(self, *args: Any, **kwargs: Any) -> None:
        self._store.commit_checkpoint(*args, **kwargs)
        ended = self.source._all_ended
        if ended is None or not ended.is_set():
            self.while_quiet += 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def test_a_quiet_partition_does_not_stop_checkpoints_nor_backpressure(store: rb.Store) -> None:
    """While one partition waits in an awaited read, checkpoints go on completing (its
    barrier is put while the read is pending), and the busy partitions never run more than
    their channels' room ahead of the sink."""
    capacity, busy, batches = 2, 2, 400
    source = QuietAndBusy(busy, batches)
    flow = rb.Flow("quiet-partition")
    keyed = flow.source(source, name="readings").key_by(_last_digit)
    keyed.stateful(Count, Count.add, name="count").sink(source.sink, name="out")
    spy = WhileQuiet(store, source)
    # Checkpoints are committed in another thread while the partitions go on: the busy
    # ones read on until three were, however long commits take on a loaded machine.
    source.enough = lambda: spy.while_quiet >= 3
    result = flow.run(
        store=spy,  # type: ignore[arg-type]
        clock=TestClock(),  # checkpoints come due back to back: an interval of no time
        checkpoint_interval=0.5,
        batch_size=1,
        channel_capacity=capacity,
        progress=False,
        raise_on_failure=False,
    )
    assert result.ok
    assert source.quiet_reads == 1  # its read was never cancelled, only waited for
    assert source.consumed == source.produced >= busy * batches
    checkpoint = store.latest_checkpoint(result.run_id)
    assert checkpoint is not None
    assert spy.while_quiet >= 3  # taken all along, not only at the end
    # Per busy partition: its channel's room, the batch it hands over, the one it reads;
    # plus the batch in the chain.
    assert max(source.lag) <= busy * (capacity + 2) + 1
