"""The durable half of a local run: where it starts (new, resumed, re-run, claimed), its
part in checkpoints (sources inject barriers, chains pass them on), committing them, and
transactional sinks' commits. ``LocalRun`` inherits it; see ``checkpoints`` for the
protocol of a checkpoint."""

from __future__ import annotations

import pickle
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from riverbed._errors import FlowVersionError, LeaseLostError, StageFailedError
from riverbed._model.sinks import is_transactional_sink
from riverbed._model.stages import Stage
from riverbed._runtime.chains.executor import ChainExecutor
from riverbed._runtime.local.channel import Barrier, Channel
from riverbed._runtime.local.checkpoints import Checkpointer
from riverbed._runtime.parts import Part
from riverbed._runtime.recording import (
    META_KEY,
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
    from riverbed._runtime.failures import FailureLog
    from riverbed._runtime.result import StageCounters


Injector = Callable[[], Awaitable[None]]
"""A source partition's side of checkpoints: awaited between batches, and whenever a
checkpoint is triggered while a read waits, it takes the partition's part of the checkpoint
that is due, if it has not yet."""


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
    renamed: dict[str, str]
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
        """Start from the checkpoint of a resumed run: state, positions, counters, each
        under its stage's name in this flow (see ``_new_names``)."""
        checkpoint = restore.checkpoint
        if checkpoint is None:
            return
        new = self._new_names(restore)
        transactional = {s.name for s in self.flow.stages if is_transactional_sink(s)}
        for old, value in restore.states().items():
            name = new[old]
            if name in transactional:
                # Committed again under the key it had (its run's, its sink's old name),
                # which the sink may have seen already: never under a second key.
                key = f"{restore.run.run_id}/{old}/{checkpoint.checkpoint_id}"
                self._prepared[name] = (checkpoint.checkpoint_id, value, key)
            else:
                self.states[name].update(value)
        self._start_positions = {
            new[source]: dict(parts) for source, parts in checkpoint.positions.items()
        }
        for old, values in restore.meta.get("counters", {}).items():
            name = self.renamed.get(old, old)
            if name in self.counters:
                self.counters[name].restore(values)
        self._finished = {self.renamed.get(n, n) for n in restore.meta.get("finished", ())}

    def _new_names(self, restore: RestorePoint) -> dict[str, str]:
        """Per stage whose state or positions the checkpoint holds, the stage of this flow
        that takes them: the one of the same name, or the one ``renamed`` maps it to. A
        changed flow (``compatible``) must not drop state silently: raises
        ``FlowVersionError`` naming the stages whose state no stage would take."""
        checkpoint = restore.checkpoint
        assert checkpoint is not None
        self._check_renamed(restore)
        keeps_state = set(self.states) | {
            s.name for s in self.flow.stages if is_transactional_sink(s)
        }
        sources = {source.name for source in self.plan.sources}
        held = [(name, keeps_state) for name in checkpoint.states if name != META_KEY]
        held += [(name, sources) for name in checkpoint.positions]
        new: dict[str, str] = {}
        left = []
        for old, takers in held:
            name = self.renamed.get(old, old)
            if name not in takers:
                left.append(old)
            elif name in new.values():
                raise ValueError(
                    f"renamed= gives stage {name!r} the state of two stages of run "
                    f"{restore.run.run_id}: map only one of them to it"
                )
            new[old] = name
        if left:
            raise FlowVersionError(
                _left_behind(restore.run.run_id, self.flow.name, left),
                run_id=restore.run.run_id,
                changed=tuple(left),
            )
        return new

    def _check_renamed(self, restore: RestorePoint) -> None:
        """``renamed`` maps stages the checkpoint knows to stages this flow has."""
        checkpoint = restore.checkpoint
        assert checkpoint is not None
        known = {*restore.meta.get("counters", {}), *checkpoint.states, *checkpoint.positions}
        known.discard(META_KEY)
        stages = {stage.name for stage in self.flow.stages}
        for old, new in self.renamed.items():
            if old not in known:
                raise ValueError(
                    f"renamed= maps stage {old!r}, which the checkpoint of run "
                    f"{restore.run.run_id} does not know (it knows {', '.join(sorted(known))})"
                )
            if new not in stages:
                raise ValueError(
                    f"renamed= maps stage {old!r} to {new!r}, but flow {self.flow.name!r} "
                    f"has no stage {new!r}"
                )

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

    def _checkpoint_failed(
        self, checkpoint_id: int, error: BaseException, *, final: bool = False
    ) -> BaseException:
        """The error that stops the run when checkpoint ``checkpoint_id`` failed to commit:
        a stage's failure as it is (already recorded, naming the stage), else one recorded
        like a stage's under the name ``<checkpoint>``."""
        if isinstance(error, LeaseLostError):  # no failure of the run: it stops, recording nothing
            self._lease_lost()
            return error
        if isinstance(error, StageFailedError):
            return error
        which = "the final checkpoint" if final else "checkpoint"
        note = f"{which} {checkpoint_id} could not be committed"
        return self.failures.stop("<checkpoint>", error, "<checkpoint>", note=note)

    async def _commit(self, checkpoint_id: int, part: Part, *, ended: bool = False) -> None:
        """Commit a gathered checkpoint to the store (transactional sinks' prepared writes
        with it), then let those sinks commit their writes."""
        recorder = self.recorder
        assert recorder is not None
        states = dict(part.states)
        for name, prepared in part.prepared.items():
            try:
                states[name] = pickle.dumps(prepared, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception as error:
                note = f"its prepared writes could not be pickled at checkpoint {checkpoint_id}"
                raise self.failures.stop(name, error, f"stage {name!r}", note=note) from error
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

    async def _commit_sink(
        self, name: str, checkpoint_id: int | str, prepared: Any, *, key: str | None = None
    ) -> None:
        """Sink ``name`` commits its writes of a checkpoint (or of the run's "end"), once
        per ``key`` (by default this run's, this sink's and this checkpoint's)."""
        key = key or f"{self.run_id}/{name}/{checkpoint_id}"
        try:
            self.flow.stage(name).fn.commit(key, prepared)  # on this thread: see ``_commit``
        except Exception as error:
            which = f"of checkpoint {checkpoint_id}"
            if checkpoint_id == "end":
                which = "at the end of the run"
            note = f"its writes {which} could not be committed"
            raise self.failures.stop(name, error, f"stage {name!r}", note=note) from error

    async def _commit_unchecked(self) -> BaseException | None:
        """Without checkpoints, transactional sinks commit what they hold when the run
        ends. Returns the error of a failed commit (the run then fails)."""
        for stage in self.flow.stages:
            if not is_transactional_sink(stage):
                continue
            try:
                prepared = stage.fn.prepare()
            except Exception as error:
                note = "it could not prepare its writes at the end of the run"
                return self.failures.stop(stage.name, error, f"stage {stage.name!r}", note=note)
            try:
                await self._commit_sink(stage.name, "end", prepared)
            except StageFailedError as failure:
                return failure
        return None

    async def _commit_prepared(self) -> None:
        """On resume: commit again what transactional sinks prepared for the checkpoint
        resumed from (their commit is idempotent: it may have happened before the crash)."""
        for name, (checkpoint_id, prepared, key) in self._prepared.items():
            await self._commit_sink(name, checkpoint_id, prepared, key=key)

    async def _final_checkpoint(self, executors: list[ChainExecutor]) -> None:
        """The run drained (or stopped cleanly): commit its whole cut as a last checkpoint,
        so that a crash before its record is updated, or a resume of a stopped run, goes on
        from exactly here."""
        checkpointer = self.checkpointer
        assert checkpointer is not None
        await checkpointer.drain()
        part = checkpointer.final()
        checkpoint_id = checkpointer.due + 1
        try:
            await self._commit(checkpoint_id, part, ended=not self.stopping)
        except Exception as error:  # the store's, or a sink's (already named)
            raise self._checkpoint_failed(checkpoint_id, error, final=True) from error

    def _injector(
        self,
        source: Stage,
        partition: str,
        targets: Sequence[Channel],
        chain: ChainExecutor | None,
        channels: dict[str, Channel],
    ) -> Injector | None:
        """The ``Injector`` of one source partition (None: checkpoints are off)."""
        checkpointer = self.checkpointer
        if checkpointer is None:
            return None
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
        part = executor.snapshot(checkpoint_id)
        self.checkpointer.report(executor.chain.name, checkpoint_id, part)
        for name in self._downstream[executor.chain.name]:
            await channels[name].barrier(Barrier(checkpoint_id), executor.chain.name)

    def _source_part(self, source: Stage, partition: str) -> Part:
        return Part(
            positions={source.name: {partition: self.positions[source.name].get(partition)}},
            counters={source.name: self.counters[source.name].values()},
        )


def _left_behind(run_id: str, flow: str, stages: list[str]) -> str:
    """Why a resume that would drop the state of ``stages`` is refused, and what to do."""
    names = ", ".join(repr(name) for name in stages)
    return (
        f"the checkpoint of run {run_id} holds the state (or source positions) of "
        f"{names}, which flow {flow!r} no longer has under that name, or which no longer "
        "keeps state: going on would lose it. If a stage was renamed, say where its state "
        f"goes: renamed={{{stages[0]!r}: 'NEW_NAME'}} (--rename {stages[0]}=NEW_NAME); to "
        "go without that state, re-run from the start (riverbed runs rerun RUN --from-start)"
    )
