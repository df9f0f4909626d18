"""The durable half of a local run: where it starts (new, resumed, re-run, claimed), its
part in checkpoints (sources inject barriers, chains pass them on), committing them, and
transactional sinks' commits. ``LocalRun`` inherits it; see ``checkpoints`` for the
protocol of a checkpoint."""

from __future__ import annotations

import pickle
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from riverbed._errors import LeaseLostError
from riverbed._model.sinks import is_transactional_sink
from riverbed._model.stages import Stage
from riverbed._runtime.local.channel import Barrier, Channel
from riverbed._runtime.local.checkpoints import Checkpointer, Part
from riverbed._runtime.local.executor import ChainExecutor
from riverbed._runtime.recording import (
    RestorePoint,
    RunRecorder,
    rerun_point,
    restore_point,
)
from riverbed._store.protocol import Store

if TYPE_CHECKING:
    from riverbed._model.flow import Flow
    from riverbed._model.plan import Plan
    from riverbed._runtime.clock import Clock
    from riverbed._runtime.local.failures import FailureLog
    from riverbed._runtime.result import StageCounters


def writer_name(source: str, partition: str) -> str:
    """The writer name of one source partition on the channels it feeds."""
    return f"{source}[{partition}]"


class DurableRun:
    """Checkpoints, resume and transactional sinks of a ``LocalRun``."""

    # What LocalRun provides (declared for the type checker).
    flow: Flow
    plan: Plan
    clock: Clock
    run_id: str
    failures: FailureLog
    counters: dict[str, StageCounters]
    states: dict[str, dict[Any, Any]]
    positions: dict[str, dict[str, Any]]
    stopping: bool
    compatible: bool
    resume: str | None
    rerun_of: str | None
    claimed: str | None
    checkpoint_interval: float | None
    checkpoint_events: int | None
    checkpointer: Checkpointer | None
    recorder: RunRecorder | None
    _start_positions: dict[str, dict[str, Any]]
    _finished: set[str]
    _prepared: dict[str, Any]
    _downstream: dict[str, list[str]]
    _partition_names: dict[str, list[str]]
    _lease_lost: Callable[[], None]

    def _partitions(self, source: Stage) -> list[str]:
        """The names of a source's partitions (asked of the source once per run)."""
        known = self._partition_names.get(source.name)
        if known is not None:
            return known
        try:
            names = [str(partition) for partition in source.fn.partitions()]
            self._partition_names[source.name] = names
            return names
        except Exception as error:
            self.counters[source.name].errors += 1
            what = f"source {source.name!r} could not list its partitions"
            raise self.failures.stop(source.name, error, what) from error

    def _restore_point(self, store: Store) -> tuple[RestorePoint | None, str]:
        """Where this run starts, and how: new, resuming, re-running or claimed."""
        flow, compatible = self.flow, self.compatible
        if self.resume is not None:
            return restore_point(store, self.resume, flow, compatible=compatible), "resume"
        if self.rerun_of is not None:
            return rerun_point(store, self.rerun_of, flow, compatible=compatible), "rerun"
        if self.claimed is not None:
            point = restore_point(store, self.claimed, flow, compatible=compatible, claimed=True)
            return point, "claimed"
        return None, "new"

    def _restore(self, restore: RestorePoint) -> None:
        """Start from the checkpoint of a resumed run: state, positions, counters."""
        checkpoint = restore.checkpoint
        if checkpoint is None:
            return
        transactional = {s.name for s in self.flow.stages if is_transactional_sink(s)}
        for name, value in restore.states().items():
            if name in transactional:
                self._prepared[name] = (checkpoint.checkpoint_id, value)
            elif name in self.states:
                self.states[name].update(value)
        self._start_positions = {
            source: dict(parts) for source, parts in checkpoint.positions.items()
        }
        for name, values in restore.meta.get("counters", {}).items():
            if name in self.counters:
                self.counters[name].restore(values)
        self._finished = set(restore.meta.get("finished", ()))

    def _checkpointer(self, restore: RestorePoint | None) -> Checkpointer:
        participants = {
            writer_name(source.name, partition)
            for source in self.plan.sources
            for partition in self._partitions(source)
        } | {chain.name for chain in self.plan.chains}
        last = restore.checkpoint.checkpoint_id if restore and restore.checkpoint else 0
        checkpointer = Checkpointer(
            participants,
            self._commit,
            clock=self.clock,
            interval=self.checkpoint_interval,
            every_events=self.checkpoint_events,
            last_id=last,
        )
        checkpointer.failed = self._checkpoint_failed
        return checkpointer

    def _checkpoint_failed(self, checkpoint_id: int, error: BaseException) -> BaseException:
        """The error that stops the run when checkpoint ``checkpoint_id`` failed to commit
        (recorded like a stage's, under the name ``<checkpoint>``). A lost lease is no
        failure of the run: this process stops working on it, recording nothing."""
        if isinstance(error, LeaseLostError):
            self._lease_lost()
            return error
        what = f"checkpoint {checkpoint_id} could not be committed"
        return self.failures.stop("<checkpoint>", error, what)

    async def _commit(self, checkpoint_id: int, part: Part, *, ended: bool = False) -> None:
        """Commit a gathered checkpoint to the store (transactional sinks' prepared writes
        with it), then let those sinks commit their writes."""
        recorder = self.recorder
        assert recorder is not None
        states = dict(part.states)
        for name, prepared in part.prepared.items():
            states[name] = pickle.dumps(prepared, protocol=pickle.HIGHEST_PROTOCOL)
        # On this thread, blocking the loop for the commit (a few milliseconds, once per
        # interval): handed to a worker thread, the commit needs the GIL back at every
        # step from a loop that is busy running stages, and took seconds (measured).
        recorder.checkpoint(
            checkpoint_id,
            part.positions,
            states,
            part.counters,
            part.finished,
            list(self.failures.dead_letters),
            ended=ended,
        )
        for name, prepared in part.prepared.items():
            await self._commit_sink(name, checkpoint_id, prepared)

    async def _commit_sink(self, name: str, checkpoint_id: int | str, prepared: Any) -> None:
        key = f"{self.run_id}/{name}/{checkpoint_id}"
        self.flow.stage(name).fn.commit(key, prepared)  # on this thread: see ``_commit``

    async def _commit_unchecked(self) -> BaseException | None:
        """Without checkpoints, transactional sinks commit what they hold when the run
        ends. Returns the error of a failed commit (the run then fails)."""
        for stage in self.flow.stages:
            if not is_transactional_sink(stage):
                continue
            try:
                await self._commit_sink(stage.name, "end", stage.fn.prepare())
            except Exception as error:
                what = f"sink {stage.name!r} failed to commit its writes"
                return self.failures.stop(stage.name, error, what)
        return None

    async def _commit_prepared(self) -> None:
        """On resume: commit again what transactional sinks prepared for the checkpoint
        resumed from (their commit is idempotent: it may have happened before the crash)."""
        for name, (checkpoint_id, prepared) in self._prepared.items():
            await self._commit_sink(name, checkpoint_id, prepared)

    async def _final_checkpoint(self, executors: list[ChainExecutor]) -> None:
        """The run drained (or stopped cleanly): commit its whole cut as a last checkpoint,
        so that a crash before its record is updated, or a resume of a stopped run, goes on
        from exactly here."""
        checkpointer = self.checkpointer
        assert checkpointer is not None
        await checkpointer.drain()
        part = checkpointer.final()
        await self._commit(checkpointer.due + 1, part, ended=not self.stopping)

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
        checkpointer = self.checkpointer
        assert checkpointer is not None
        writer = writer_name(source.name, partition)
        checkpointer.report(writer, checkpoint_id, self._source_part(source, partition))
        if chain is not None:
            await self._pass_barrier(checkpoint_id, chain, channels)
        else:
            for channel in targets:
                await channel.barrier(Barrier(checkpoint_id), writer)

    async def _pass_barrier(
        self, checkpoint_id: int, executor: ChainExecutor, channels: dict[str, Channel]
    ) -> None:
        """A chain met barrier ``checkpoint_id`` (aligned): its part, then the barrier on."""
        assert self.checkpointer is not None
        self.checkpointer.report(executor.chain.name, checkpoint_id, executor.snapshot())
        for name in self._downstream[executor.chain.name]:
            await channels[name].barrier(Barrier(checkpoint_id), executor.chain.name)

    def _source_part(self, source: Stage, partition: str) -> Part:
        return Part(
            positions={source.name: {partition: self.positions[source.name].get(partition)}},
            counters={source.name: self.counters[source.name].values()},
        )
