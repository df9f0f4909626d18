"""A stream run on the local runner: one asyncio task per source partition and one per
chain, joined by bounded channels.

Bounded channels are the backpressure: a full channel suspends the writer, so a fast
source waits for a slow sink. End of stream travels as a marker from every writer; a chain
ends when all its writers have ended. A source with one partition whose only reader is a
synchronous chain runs that chain in its own task, with no channel between them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable

from riverbed._errors import InternalError, StageFailedError
from riverbed._model.policy import OnError
from riverbed._model.stages import Port, Stage
from riverbed._runtime.chains.counting import Outputs
from riverbed._runtime.chains.executor import ChainExecutor
from riverbed._runtime.local.channel import TICK, Barrier, Channel
from riverbed._runtime.local.coordinator import Coordinator, writer_name
from riverbed._runtime.local.sources import PartitionLoop
from riverbed._runtime.stream import StreamRun

__all__ = ["LocalStream"]


class LocalStream:
    """Executes one ``StreamRun`` in this process (see the module docstring)."""

    def __init__(self, run: StreamRun) -> None:
        self.run = run
        self.plan = run.plan
        self.executors = [run.executor(chain) for chain in self.plan.chains]
        self.downstream = {
            chain.name: list(
                dict.fromkeys(
                    name for port in chain.exits for name in self.plan.readers.get(port, ())
                )
            )
            for chain in self.plan.chains
        }
        """Per chain, the chains reading it (each once, though it may read several ports)."""
        self.partitions: dict[str, list[str]] = {}
        self.coordinator: Coordinator | None = None
        self.loops: list[PartitionLoop] = []
        self.tasks: list[asyncio.Task[None]] = []
        run.control.on_stop.append(self._stop_reading)
        run.control.on_abort.append(self._cancel_all)

    async def execute(self) -> BaseException | None:
        """Run to the end (or to a stop); return the error that stopped the run."""
        run = self.run
        error: BaseException | None = None
        helper = None
        try:
            for source in self.plan.sources:
                self.partitions[source.name] = self._partitions(source)
            if run.checkpointing:
                self.coordinator = self._coordinator()
                helper = asyncio.get_running_loop().create_task(self.coordinator.checkpointer.run())
            run.commit_restored()
            drained = run.restored.ended
            if not drained:  # a run resumed after its last checkpoint has nothing to do
                self._start_tasks()
            error = await self._wait()
            if (
                error is None
                and self.coordinator is not None
                and not (run.control.aborted or drained)
            ):
                await self.coordinator.final()
        except StageFailedError as failure:  # a source could not list its partitions...
            error = failure
        except Exception:  # a lost lease at the last checkpoint is no failure of the run
            if not run.control.lost:
                raise
        finally:
            if helper is not None:
                helper.cancel()
            if self.coordinator is not None:  # a commit in flight ends before the run does
                await self.coordinator.checkpointer.settle()
            error = await self._wind_down(error)
        return error

    async def _wind_down(self, error: BaseException | None) -> BaseException | None:
        """Commit what transactional sinks hold (without checkpoints), close every sink;
        the first error wins."""
        if self.coordinator is None and not self.run.control.lost:
            error = error or self.run.commit_unchecked()
        closed = await self.run.close_readers()
        error = error or closed
        for executor in self.executors:
            try:
                await executor.close()
            except StageFailedError as failure:
                error = error or failure
        return error

    def _partitions(self, source: Stage) -> list[str]:
        """The names of a source's partitions (asked of the source once per run)."""
        try:
            return [str(partition) for partition in source.fn.partitions()]
        except Exception as error:
            self.run.counters[source.name].errors += 1
            what = f"source {source.name!r} could not list its partitions"
            raise self.run.failures.stop(source.name, error, what) from error

    def _coordinator(self) -> Coordinator:
        participants = {
            writer_name(source, partition)
            for source, partitions in self.partitions.items()
            for partition in partitions
        } | {chain.name for chain in self.plan.chains}
        return Coordinator(self.run, participants, self.downstream)

    # -- the tasks ----------------------------------------------------------------------------

    def _start_tasks(self) -> None:
        """One task per source partition and one per chain, joined by bounded channels;
        a source of one partition read by one synchronous chain alone runs that chain in
        its own task, without a channel between them."""
        loop = asyncio.get_running_loop()
        channels = self._channels()
        attached = self._attached()
        for source in self.plan.sources:
            targets = [channels[name] for name in self.plan.readers.get(Port(source.name), ())]
            self.run.positions[source.name] = {}
            for partition in self.partitions[source.name]:
                chain = attached.get(source.name)
                task = self._read(source, partition, targets, chain, channels)
                self.tasks.append(loop.create_task(task, name=source.name))
        own = {executor.chain.name for executor in attached.values()}
        for executor in self.executors:
            if executor.chain.name not in own:
                task = self._run_chain(executor, channels)
                self.tasks.append(loop.create_task(task, name=executor.chain.name))

    def _attached(self) -> dict[str, ChainExecutor]:
        """Per source of one partition read by one synchronous chain alone: that chain."""
        by_name = {executor.chain.name: executor for executor in self.executors}
        attached = {}
        for source in self.plan.sources:
            readers = self.plan.readers.get(Port(source.name), ())
            if len(self.partitions[source.name]) == 1 and len(readers) == 1:
                executor = by_name[readers[0]]
                if executor.attachable and len(executor.chain.head.inputs) == 1:
                    attached[source.name] = executor
        return attached

    def _channels(self) -> dict[str, Channel]:
        """One channel per chain, knowing its writers: each partition of a source it reads,
        and each chain it reads."""
        sources = {source.name for source in self.plan.sources}
        chain_of = {s.name: chain.name for chain in self.plan.chains for s in chain.stages}
        channels = {}
        for chain in self.plan.chains:
            writers: dict[str, None] = {}
            for port in chain.head.inputs:
                if port.stage in sources:
                    names = (writer_name(port.stage, p) for p in self.partitions[port.stage])
                    writers.update(dict.fromkeys(names))
                else:
                    writers[chain_of[port.stage]] = None
            channels[chain.name] = Channel(self.run.config.channel_capacity, list(writers))
        return channels

    async def _read(
        self,
        source: Stage,
        partition: str,
        targets: list[Channel],
        chain: ChainExecutor | None,
        channels: dict[str, Channel],
    ) -> None:
        """Read one source partition to its end, then end what it feeds."""
        coordinator = self.coordinator
        injector = None
        if coordinator is not None:
            injector = coordinator.injector(source, partition, targets, chain, channels)

        async def step(executor: ChainExecutor, work: Awaitable[Outputs]) -> None:
            await self._step(executor, channels, work)

        reader = PartitionLoop(
            self.run, source, partition, targets, chain, step, coordinator, injector
        )
        self.loops.append(reader)
        await reader.run_to_end()
        if chain is not None:
            await self._end_chain(chain, channels)
        else:
            for channel in targets:
                await channel.end(writer_name(source.name, partition))

    async def _run_chain(self, executor: ChainExecutor, channels: dict[str, Channel]) -> None:
        """Run a chain on the batches of its input channel, then end it. A chain with
        timers (``executor.tick_interval``) gets clock ticks through the same channel, in
        order with its batches; so does an operator that wakes it (``executor.wake``). A
        barrier makes it take its part of a checkpoint."""
        channel = channels[executor.chain.name]
        executor.wake = channel.nudge
        interval = executor.tick_interval
        ticker = None
        if interval is not None:
            ticker = asyncio.get_running_loop().create_task(self._tick(channel, interval))
        try:
            first = self.run.counters[executor.chain.stages[0].name]
            while (item := await channel.get()) is not None:
                first.backlog = channel.backlog
                if item is TICK:
                    await self._step(executor, channels, executor.tick())
                elif isinstance(item, Barrier):
                    assert self.coordinator is not None
                    await self.coordinator.pass_barrier(item.checkpoint_id, executor, channels)
                else:
                    await self._step(executor, channels, executor.process(item))
            while await executor.draining():  # calls still running: emit as they finish
                await self._step(executor, channels, executor.tick())
        finally:
            if ticker is not None:
                ticker.cancel()
        await self._end_chain(executor, channels)

    async def _tick(self, channel: Channel, interval: float) -> None:
        while True:
            await self.run.clock.sleep(interval)
            await channel.tick()

    async def _step(
        self, executor: ChainExecutor, channels: dict[str, Channel], work: Awaitable[Outputs]
    ) -> None:
        """Await one batch's processing (timed, for every stage of the chain) and hand what
        leaves the chain to the channels downstream."""
        started = time.perf_counter()
        try:
            outs = await work
        finally:
            elapsed = time.perf_counter() - started
            for stage in executor.chain.stages:
                self.run.counters[stage.name].timed(elapsed)
        await self._emit(executor, channels, outs)

    async def _end_chain(self, executor: ChainExecutor, channels: dict[str, Channel]) -> None:
        """After the chain's last batch: emit fold totals if the stream ended, then tell
        every reader downstream that this writer is done."""
        ended = not self.run.control.stopping
        await self._emit(executor, channels, await executor.finish(ended=ended))
        if self.coordinator is not None:
            self.coordinator.chain_ended(executor)
        for name in self.downstream[executor.chain.name]:
            await channels[name].end(executor.chain.name)

    async def _emit(
        self, executor: ChainExecutor, channels: dict[str, Channel], outs: Outputs
    ) -> None:
        for port in executor.chain.exits:
            events = outs[str(port)]
            if events:
                for name in self.plan.readers.get(port, ()):
                    await channels[name].put(events, executor.chain.name)

    # -- waiting and stopping -------------------------------------------------------------------

    async def _wait(self) -> BaseException | None:
        """Wait for every task; on the first failure, cancel the rest. Returns the error."""
        pending = set(self.tasks)
        error: BaseException | None = None
        try:
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_EXCEPTION)
                error = error or _first_error(done)
                if error is not None:
                    break
        except asyncio.CancelledError:
            self._cancel_all()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            raise
        if pending:
            self._cancel_all()
            await asyncio.gather(*pending, return_exceptions=True)
        if self.run.control.lost:
            return None  # no longer this process's run: nothing of it is recorded
        if error is not None and not isinstance(error, StageFailedError):
            self.run.failures.record("<engine>", None, error, 1, OnError.STOP)
            internal = InternalError(f"riverbed's local engine failed: {error!r}")
            internal.__cause__ = error
            return internal
        return error

    def _cancel_all(self) -> None:
        for task in self.tasks:
            task.cancel()

    def _stop_reading(self) -> None:
        for loop in self.loops:
            loop.stop_reading()


def _first_error(done: set[asyncio.Task[None]]) -> BaseException | None:
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            return task.exception()
    return None
