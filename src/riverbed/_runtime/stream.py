"""One attempt of a stream run, as every runner sees it: the plan, the configuration, the
live counters and state, where the sources stand, the failure log, how the run is asked
to stop, and the commits every runner makes the same way (checkpoints through the run's
lifecycle, transactional sinks' writes). A runner executes it (``Runner.run_stream``);
``riverbed._runtime.execute`` records it from start to end.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from riverbed._errors import StageFailedError
from riverbed._model.plan import Chain, Plan
from riverbed._model.policy import OnError
from riverbed._model.sinks import is_transactional_sink
from riverbed._model.stages import KEEPS_STATE
from riverbed._records import RunStatus
from riverbed._runtime.cache import StepCache
from riverbed._runtime.chains.executor import ChainExecutor
from riverbed._runtime.clock import Clock
from riverbed._runtime.config import RunConfig
from riverbed._runtime.failures import FailureLog
from riverbed._runtime.keyed import KEYED_KINDS, ChangedKeys
from riverbed._runtime.lifecycle import RunLifecycle
from riverbed._runtime.observer import Observers
from riverbed._runtime.parts import Part
from riverbed._runtime.readers import HookFailedError, Readers, take_rejected
from riverbed._runtime.restore import Restored, RestorePoint, restored
from riverbed._runtime.result import COUNTS, StageCounters

if TYPE_CHECKING:
    from riverbed._model.flow import Flow

__all__ = ["Control", "StreamRun"]

"""Stages whose memory (a dict per stage, held by the run) checkpoints snapshot."""


@dataclass
class Control:
    """How a run is asked to stop, and how it is stopping. The runner registers what to
    do (``on_stop``: stop the sources and drain; ``on_abort``: stop at once)."""

    stopping: bool = False
    """The sources stop; what is in flight drains (a clean stop)."""
    aborted: bool = False
    """Everything stops at once."""
    releasing: bool = False
    """The run goes back to the queue when it has stopped (a worker interrupted)."""
    lost: bool = False
    """The run's lease was lost (cancelled from outside, or taken over)."""
    on_stop: list[Callable[[], None]] = field(default_factory=list)
    on_abort: list[Callable[[], None]] = field(default_factory=list)

    def stop(self) -> None:
        """Stop the sources and let what is in flight drain."""
        self.stopping = True
        for hook in self.on_stop:
            hook()

    def abort(self) -> None:
        """Stop everything at once."""
        self.stopping = self.aborted = True
        for hook in self.on_stop + self.on_abort:
            hook()

    def lose(self) -> None:
        """The run is no longer this process's: stop at once, recording nothing more."""
        if not self.lost:
            self.lost = True
            self.abort()

    def status(self, error: BaseException | None) -> RunStatus:
        """How the run ended, as this process saw it (the store may know better: a run
        cancelled from outside meanwhile)."""
        if self.lost:
            return RunStatus.CANCELLED
        if error is not None:
            return RunStatus.FAILED
        if self.stopping:
            return RunStatus.SCHEDULED if self.releasing else RunStatus.CANCELLED
        return RunStatus.SUCCEEDED


class StreamRun:
    """One attempt of a stream run (see the module docstring)."""

    def __init__(
        self,
        flow: Flow,
        plan: Plan,
        config: RunConfig,
        run_id: str,
        clock: Clock,
        observers: Observers,
    ) -> None:
        self.flow = flow
        self.plan = plan
        self.config = config
        self.run_id = run_id
        self.clock = clock
        self.observers = observers
        self.failures = FailureLog(flow.name, run_id=run_id, max_errors=config.max_errors)
        self.failures.on_dead_letter = lambda letter: observers.tell("dead_letter", letter)
        fused = {s.name: chain for chain in plan.chains for s in chain.stages}
        self.counters = {
            stage.name: StageCounters(
                stage.name,
                stage.kind,
                tuple(s.name for s in fused[stage.name].stages if s.name != stage.name)
                if stage.name in fused
                else (),
            )
            for stage in flow.stages
        }
        self.states: dict[str, dict[Any, Any]] = {
            stage.name: {} for stage in flow.stages if stage.kind in KEEPS_STATE
        }
        self.changes: dict[str, ChangedKeys] = {}
        """Per stage kept per key, its changed keys (see ``changed_keys``)."""
        self.positions: dict[str, dict[str, Any]] = {}
        """Per source, per partition: where reading stands (kept by the runner)."""
        self.readers = Readers()
        """The open readers that hear of committed checkpoints (see ``_runtime.readers``);
        the runner registers each reader it opens."""
        self.restored = Restored()
        self.start_point: RestorePoint | None = None
        """The checkpoint the run started from (None: the beginning)."""
        self.committed_failures = (0, 0)
        """Errors and dead letters kept when the last checkpoint committed."""
        self.lifecycle: RunLifecycle | None = None
        self.step_cache: StepCache | None = None
        self.control = Control()
        self.checkpoint_every = config.checkpoint_every
        self.checkpoint_events = config.checkpoint_events

    @property
    def checkpointing(self) -> bool:
        """True if the run takes checkpoints (it is recorded, with an interval or a
        volume)."""
        return self.lifecycle is not None and bool(self.checkpoint_every or self.checkpoint_events)

    def executor(self, chain: Chain) -> ChainExecutor:
        """An executor of ``chain`` in this process, over this run's counters, states,
        failures, clock and changed keys: what a runner runs a chain with where the run
        lives (every chain locally; the driver's chains on Ray)."""
        return ChainExecutor(
            chain,
            [self.counters[s.name] for s in chain.stages],
            [self.states.get(s.name) for s in chain.stages],
            self.failures,
            self.clock,
            concurrency=self.config.concurrency,
            seed=self.config.seed,
            finished=chain.name in self.restored.finished,
            step_cache=self.step_cache,
            changes=[self.changed_keys(s.name) for s in chain.stages],
        )

    def changed_keys(self, name: str) -> ChangedKeys | None:
        """Stage ``name``'s changed keys, to hand to its chain, if the run takes checkpoints
        and keeps the stage's state per key (see ``riverbed._runtime.keyed``); else None:
        nothing is tracked."""
        if not self.checkpointing or self.flow.stage(name).kind not in KEYED_KINDS:
            return None
        changed = self.changes.get(name)
        if changed is None:
            complete = name in self.restored.rewrite
            changed = self.changes[name] = ChangedKeys(self.states[name], complete=complete)
        return changed

    def restore(self, restored: Restored) -> None:
        """Start from a checkpoint's content: states, positions, counters."""
        self.restored = restored
        for name, value in restored.states.items():
            self.states[name].update(value)
        for name, values in restored.counters.items():
            if name in self.counters:
                self.counters[name].restore(values)

    def rollback(self) -> None:
        """Go back to the last checkpoint committed (or to where the run started): a
        distributed runner lost a worker and runs on from there. States, positions and
        counters become the checkpoint's; the failures kept since are forgotten and the
        writes transactional sinks prepared since are dropped (their events come again)."""
        lifecycle = self.lifecycle
        assert lifecycle is not None
        latest = lifecycle.latest_checkpoint()
        point = self.start_point
        renamed = self.config.renamed
        if latest is not None:
            point, renamed = RestorePoint(lifecycle.record(), latest), {}
        fresh = restored(point, self.flow, set(self.states), renamed)
        for state in self.states.values():
            state.clear()
        for counters in self.counters.values():
            counters.restore(dict.fromkeys(COUNTS, 0))
        self.positions.clear()
        self.changes.clear()
        errors, letters = self.committed_failures
        self.failures.forget_since(errors, letters)
        lifecycle.forget_letters_since(letters)
        for stage in self.flow.stages:
            if is_transactional_sink(stage):
                stage.fn.prepare()  # what it holds belongs to no checkpoint: dropped
        self.restore(fresh)

    # -- commits every runner makes the same way ------------------------------------------

    async def commit_checkpoint(self, checkpoint_id: int, part: Part, *, ended: bool) -> None:
        """Commit a gathered checkpoint to the store (transactional sinks' prepared writes
        with it), then let those sinks commit their writes."""
        lifecycle = self.lifecycle
        assert lifecycle is not None
        states = dict(part.states)
        for name, prepared in part.prepared.items():
            try:
                states[name] = pickle.dumps(prepared, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception as error:
                note = f"its prepared writes could not be pickled at checkpoint {checkpoint_id}"
                raise self.failures.stop(name, error, f"stage {name!r}", note=note) from error
        # The store writes it in another thread while the loop goes on (see ``off_loop``);
        # the next checkpoint is not triggered before this one is committed.
        kept = (len(self.failures.errors), len(self.failures.dead_letters))
        started = time.perf_counter()
        await lifecycle.checkpoint(
            checkpoint_id, part, states, list(self.failures.dead_letters), ended=ended
        )
        self.committed_failures = kept
        self.observers.tell("checkpoint", checkpoint_id)
        cost = time.perf_counter() - started
        self.observers.tell("checkpoint_cost", checkpoint_id, cost, _size(states, part))
        for name, prepared in part.prepared.items():
            self.commit_sink(name, checkpoint_id, prepared)
        await self.tell_readers(checkpoint_id, part.positions)

    async def tell_readers(self, checkpoint_id: int, positions: dict[str, dict[str, Any]]) -> None:
        """Tell the registered readers (``self.readers``) that the checkpoint holding
        ``positions`` is committed; a reader that fails to take it in fails the run."""
        try:
            await self.readers.committed(positions)
        except HookFailedError as failed:
            what = f"source {failed.source!r} (partition {failed.partition!r})"
            note = (
                f"partition {failed.partition!r} could not acknowledge what checkpoint "
                f"{checkpoint_id} holds"
            )
            raise self.failures.stop(failed.source, failed.error, what, note=note) from failed

    async def close_readers(self) -> BaseException | None:
        """Close the readers kept open to hear of the last checkpoint; the error of one
        that failed to close (the run then fails), else None."""
        try:
            await self.readers.close_all()
        except HookFailedError as failed:
            what = f"source {failed.source!r} (partition {failed.partition!r}) failed"
            return self.failures.stop(failed.source, failed.error, what, note="closing")
        return None

    def reject(self, source: str, reader: Any) -> None:
        """Keep what ``reader`` of ``source`` could not decode as dead letters of the
        source's stage (see ``_runtime.readers``). Runners call it after every batch."""
        for raw, error in take_rejected(reader):
            self.counters[source].errors += 1
            self.counters[source].dead_lettered += 1
            self.failures.record(source, raw, error, 1, OnError.DEAD_LETTER)

    def commit_sink(
        self, name: str, checkpoint_id: int | str, prepared: Any, *, key: str | None = None
    ) -> None:
        """Sink ``name`` commits its writes of a checkpoint (or of the run's "end"), once
        per ``key`` (by default this run's, this sink's and this checkpoint's)."""
        key = key or f"{self.run_id}/{name}/{checkpoint_id}"
        try:
            self.flow.stage(name).fn.commit(key, prepared)  # on the loop's thread
        except Exception as error:
            which = f"of checkpoint {checkpoint_id}"
            if checkpoint_id == "end":
                which = "at the end of the run"
            note = f"its writes {which} could not be committed"
            raise self.failures.stop(name, error, f"stage {name!r}", note=note) from error

    def commit_restored(self) -> None:
        """On resume: commit again what transactional sinks prepared for the checkpoint
        resumed from (their commit is idempotent: it may have happened before the crash)."""
        for name, (checkpoint_id, prepared, key) in self.restored.prepared.items():
            self.commit_sink(name, checkpoint_id, prepared, key=key)

    def commit_unchecked(self) -> BaseException | None:
        """Without checkpoints, transactional sinks commit what they hold when the run
        ends. Returns the error of a failed commit (the run then fails)."""
        for stage in self.flow.stages:
            if not is_transactional_sink(stage):
                continue
            try:
                prepared = stage.fn.prepare()
            except Exception as error:  # noqa: BLE001 - a user's prepare(): fails the run, named
                note = "it could not prepare its writes at the end of the run"
                return self.failures.stop(stage.name, error, f"stage {stage.name!r}", note=note)
            try:
                self.commit_sink(stage.name, "end", prepared)
            except StageFailedError as failure:
                return failure
        return None


def _size(states: dict[str, bytes], part: Part) -> int:
    """The bytes of state a checkpoint writes: whole states and changed keys' rows."""
    size = sum(len(state) for state in states.values())
    for rows in part.keyed.values():
        size += sum(len(key) + len(row or b"") for key, row in rows.items())
    return size
