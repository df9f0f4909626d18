"""The local runner's part in checkpoints: source partitions inject barriers between two
batches (or while a read waits), chains pass them on once aligned, the ``Checkpointer``
gathers the parts, and the run commits them (``StreamRun.commit_checkpoint``). See
``checkpoints`` for the protocol of a checkpoint."""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable, Sequence

from riverbed._errors import LeaseLostError, StageFailedError
from riverbed._model.stages import Stage
from riverbed._runtime.chains.executor import ChainExecutor
from riverbed._runtime.local.channel import Barrier, Channel
from riverbed._runtime.local.checkpoints import Checkpointer
from riverbed._runtime.parts import Part
from riverbed._runtime.stream import StreamRun

__all__ = ["Coordinator", "Injector", "writer_name"]

Injector = Callable[[], Awaitable[None]]
"""What a source partition calls between two batches: takes its part of a checkpoint
if one is due."""


def writer_name(source: str, partition: str) -> str:
    """The writer name of one source partition on the channels it feeds."""
    return f"{source}[{partition}]"


class Coordinator:
    """Checkpoints of one local stream run (created only when it takes checkpoints)."""

    def __init__(
        self,
        run: StreamRun,
        participants: set[str],
        downstream: dict[str, list[str]],
    ) -> None:
        self.run = run
        self.downstream = downstream
        """Per chain, the chains reading it."""
        self.checkpointer = Checkpointer(
            participants,
            self._commit,
            clock=run.clock,
            interval=run.checkpoint_every,
            every_events=run.checkpoint_events,
            last_id=run.restored.last_id,
        )
        self.checkpointer.failed = self.failed

    def failed(
        self, checkpoint_id: int, error: BaseException, *, final: bool = False
    ) -> BaseException:
        """The error that stops the run when checkpoint ``checkpoint_id`` failed to commit:
        a stage's failure as it is (already recorded, naming the stage), else one recorded
        like a stage's under the name ``<checkpoint>``. A lost lease is no failure of the
        run: it stops, recording nothing."""
        if isinstance(error, LeaseLostError):
            self.run.control.lose()
            return error
        if isinstance(error, StageFailedError):
            return error
        which = "the final checkpoint" if final else "checkpoint"
        note = f"{which} {checkpoint_id} could not be committed"
        return self.run.failures.stop("<checkpoint>", error, "<checkpoint>", note=note)

    async def _commit(self, checkpoint_id: int, part: Part, *, ended: bool = False) -> None:
        await self.run.commit_checkpoint(checkpoint_id, part, ended=ended)

    async def final(self) -> None:
        """The run drained (or stopped cleanly): commit its whole cut as a last checkpoint,
        so that a crash before its record is updated, or a resume of a stopped run, goes on
        from exactly here."""
        checkpointer = self.checkpointer
        checkpointer.close()
        await checkpointer.drain()
        part = checkpointer.final()
        checkpoint_id = checkpointer.due + 1
        try:
            await self._commit(checkpoint_id, part, ended=not self.run.control.stopping)
        except Exception as error:  # the store's, or a sink's (already named)
            raise self.failed(checkpoint_id, error, final=True) from error

    def injector(
        self,
        source: Stage,
        partition: str,
        targets: Sequence[Channel],
        chain: ChainExecutor | None,
        channels: dict[str, Channel],
    ) -> Injector:
        """The ``Injector`` of one source partition."""
        checkpointer = self.checkpointer
        injected = checkpointer.due

        async def inject() -> None:
            nonlocal injected
            due = checkpointer.wants(injected)
            if due is not None:
                injected = due
                await self._inject(due, source, partition, targets, chain, channels)

        return inject

    async def _inject(
        self,
        checkpoint_id: int,
        source: Stage,
        partition: str,
        targets: Sequence[Channel],
        chain: ChainExecutor | None,
        channels: dict[str, Channel],
    ) -> None:
        """Take a source partition's part of a checkpoint between two batches, and put the
        barrier behind what it wrote (or, for a chain it runs inline, take the chain's part
        at the same moment and pass the barrier on from it)."""
        writer = writer_name(source.name, partition)
        self.checkpointer.report(writer, checkpoint_id, self.source_part(source.name, partition))
        if chain is not None:
            await self.pass_barrier(checkpoint_id, chain, channels)
        else:
            for channel in targets:
                await channel.barrier(Barrier(checkpoint_id), writer)

    async def pass_barrier(
        self, checkpoint_id: int, executor: ChainExecutor, channels: dict[str, Channel]
    ) -> None:
        """A chain met barrier ``checkpoint_id`` (aligned): its part, then the barrier on."""
        part = executor.snapshot(checkpoint_id)
        self.checkpointer.report(executor.chain.name, checkpoint_id, part)
        for name in self.downstream[executor.chain.name]:
            await channels[name].barrier(Barrier(checkpoint_id), executor.chain.name)

    def source_part(self, source: str, partition: str) -> Part:
        """A source partition's part: its position and the source's counters. The position
        is copied at the cut: a reader may change the object it returned as it reads on,
        while the commit (in another thread) has yet to write it."""
        position = copy.deepcopy(self.run.positions[source].get(partition))
        return Part(
            positions={source: {partition: position}},
            counters={source: self.run.counters[source].values()},
        )

    def source_ended(self, source: str, partition: str) -> None:
        """A source partition ended: its last part stands for it from now on."""
        self.checkpointer.ended(writer_name(source, partition), self.source_part(source, partition))

    def chain_ended(self, executor: ChainExecutor) -> None:
        """A chain ended: its last part stands for it from now on."""
        name = executor.chain.name
        self.checkpointer.ended(name, executor.snapshot(self.checkpointer.next_for(name)))
