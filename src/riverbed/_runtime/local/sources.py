"""Reading one source partition on the local runner: one loop, fed by batches (``read``)
or, for a reader that can ``pull`` into the synchronous chain it alone feeds, by a lazy
iterator that the chain's generated loop consumes one event at a time (operator chaining
of the source, as Flink does). Between two batches, the partition takes its part of a
due checkpoint; a read that waits for data takes part too, without being cancelled.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from riverbed._errors import SourceError, StageFailedError
from riverbed._model.stages import Stage
from riverbed._runtime.chains.counting import Outputs
from riverbed._runtime.chains.executor import ChainExecutor
from riverbed._runtime.local.channel import Channel
from riverbed._runtime.local.coordinator import Coordinator, Injector, writer_name
from riverbed._runtime.offloop import let_commits_run
from riverbed._runtime.readers import close
from riverbed._runtime.stream import StreamRun

__all__ = ["POLL_INTERVAL", "PartitionLoop"]

POLL_INTERVAL = 0.01
"""Seconds to wait before asking a source again after it said "nothing yet"."""

_STOPPED: Any = object()
"""What an interrupted read returns: the source stops cleanly."""

Step = Callable[[ChainExecutor, Awaitable[Outputs]], Awaitable[None]]
"""Awaits a chain's processing and hands what leaves it downstream (``LocalStream.step``)."""


class PartitionLoop:
    """Reads one partition of one source until it ends or the run stops."""

    def __init__(
        self,
        run: StreamRun,
        source: Stage,
        partition: str,
        targets: Sequence[Channel],
        chain: ChainExecutor | None,
        step: Step,
        coordinator: Coordinator | None,
        injector: Injector | None,
    ) -> None:
        self.run = run
        self.source = source
        self.partition = partition
        self.targets = targets
        """The channels of the chains reading the source (none when ``chain`` runs inline)."""
        self.chain = chain
        """The chain this partition runs in its own task, if it alone feeds it."""
        self.step = step
        self.coordinator = coordinator
        self.inject = injector
        self.counters = run.counters[source.name]
        self.positions = run.positions.setdefault(source.name, {})
        self.writer = writer_name(source.name, partition)
        self.reading: asyncio.Task[Any] | None = None
        """Set while the partition awaits a read: a clean stop cancels it."""

    async def run_to_end(self) -> None:
        """Open the partition at its restored position, read it to its end (or a stop),
        close it; a failure is the source's, named (or the inline chain's, as it is)."""
        start = self.run.restored.positions.get(self.source.name, {}).get(self.partition)
        if start is not None:
            self.positions[self.partition] = start
        readers = self.run.readers
        try:
            reader = self.source.fn.open(self.partition, start)
            # A reader that acks what committed checkpoints hold stays open after its end
            # until the run's last checkpoint, to ack that one too.
            acks = readers.register(self.source.name, self.partition, reader)
            ended = False
            try:
                await self._loop(reader)
                ended = True
            finally:
                if acks and ended and self.run.checkpointing:
                    readers.close_later(self.source.name, self.partition, reader)
                else:
                    readers.forget(self.source.name, self.partition)
                    await close(reader)
        except StageFailedError:
            raise  # a stage of the inline chain failed: already recorded
        except Exception as error:
            self.counters.errors += 1
            what = f"source {self.source.name!r} (partition {self.partition!r}) failed"
            raise self.run.failures.stop(self.source.name, error, what) from error
        self.positions[self.partition] = reader.position()
        if self.coordinator is not None:
            self.coordinator.source_ended(self.source.name, self.partition)

    async def _loop(self, reader: Any) -> None:
        pulling = self.chain is not None and callable(getattr(reader, "pull", None))
        control = self.run.control
        size = self.run.config.batch_size
        while not control.stopping:
            if self.inject is not None:
                await self.inject()
            if pulling:
                taken = await self._pulled(reader, size)
                if taken < size:
                    break
                let_commits_run()
                await asyncio.sleep(0)  # no channel to wait on: let the other tasks run
                continue
            read = await self._read(reader, size)
            if read is None:
                break
            if read:
                let_commits_run()
                await asyncio.sleep(0)  # a synchronous read with room downstream never
                # suspends this task: let the other partitions run

    async def _pulled(self, reader: Any, size: int) -> int:
        """One batch pulled through the inline chain; how many events it took."""
        chain = self.chain
        assert chain is not None
        taken = 0
        try:
            await self.step(chain, chain.process(reader.pull(size)))
        finally:  # count also a batch that a STOP ended half way
            taken = chain.taken
            reader.pulled(taken)
            self.counters.events_out += taken
            self.positions[self.partition] = reader.position()
        if self.coordinator is not None:
            self.coordinator.checkpointer.count(taken)
        return taken

    async def _read(self, reader: Any, size: int) -> bool | None:
        """One ``read``, handed on: None at the end (or a stop), True after a synchronous
        read (the loop yields), False after one that was awaited or gave nothing yet."""
        started = time.perf_counter()
        batch = reader.read(size)
        waited = inspect.isawaitable(batch)
        if waited:
            batch = await self._await(batch)
            if batch is _STOPPED:
                return None
        self.counters.seconds += time.perf_counter() - started
        self.run.reject(self.source.name, reader)
        if batch is None:
            return None
        if type(batch) is not list:
            raise SourceError(
                f"source {self.source.name!r}: read() returned {type(batch).__name__}; "
                "it must return a list of events, [] for none yet, or None at end"
            )
        if not batch:
            await self.run.clock.sleep(POLL_INTERVAL)
            return False
        await self._deliver(reader, batch)
        return not waited

    async def _deliver(self, reader: Any, batch: list[Any]) -> None:
        self.counters.events_out += len(batch)
        self.positions[self.partition] = reader.position()
        if self.coordinator is not None:
            self.coordinator.checkpointer.count(len(batch))
        if self.chain is not None:
            await self.step(self.chain, self.chain.process(batch))
        else:
            for channel in self.targets:
                await channel.put(batch, self.writer)

    async def _await(self, pending: Any) -> Any:
        """Await a source's read (with checkpoints on, taking part in those that come due
        meanwhile); a first Ctrl-C cancels a read that waits for events (an idle stream),
        which ends this source as a clean stop."""
        task = asyncio.current_task()
        assert task is not None
        self.reading = task
        try:
            if self.inject is None:
                return await pending
            return await self._read_or_checkpoint(pending, self.inject)
        except asyncio.CancelledError:
            control = self.run.control
            if not control.stopping or control.aborted:
                raise
            task.uncancel()
            return _STOPPED
        finally:
            self.reading = None

    async def _read_or_checkpoint(self, pending: Any, inject: Injector) -> Any:
        """Await a read, taking the partition's part of every checkpoint that comes due
        meanwhile: its position has not moved since its last batch, so its barrier can go
        in while the read waits (for data that may be long in coming). The read itself is
        never cancelled for it, only when the partition stops."""
        assert self.coordinator is not None
        checkpointer = self.coordinator.checkpointer
        read = asyncio.ensure_future(pending)
        try:
            while not read.done():
                await inject()
                await asyncio.wait(
                    (read, checkpointer.triggered()), return_when=asyncio.FIRST_COMPLETED
                )
            return read.result()
        finally:
            if not read.done():  # the run stops, or failed: the read goes with it
                read.cancel()
                await asyncio.wait((read,))

    def stop_reading(self) -> None:
        """A clean stop: a read waiting for events ends this partition."""
        if self.reading is not None:
            self.reading.cancel()
