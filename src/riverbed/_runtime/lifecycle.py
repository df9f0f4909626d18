"""One run's life in the store, for streams and workflows alike, whatever the runner:
recorded RUNNING under this process's lease (new, resumed, re-run or claimed from the
queue), the lease kept, checkpoints or steps committed, dead letters and stage records
saved, and the end recorded (or the run handed back to the queue). Every write is fenced
by the run's lease (see ``Lease``): a process that lost its run changes nothing.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from riverbed._errors import LeaseLostError
from riverbed._records import (
    Checkpoint,
    DeadLetterRecord,
    Lease,
    RunRecord,
    RunStatus,
    StageKind,
    StageRun,
    StageStatus,
    StepCommit,
)
from riverbed._runtime.committer import committer
from riverbed._runtime.identity import WORKER
from riverbed._runtime.lease import LEASE_SECONDS, Keeping, keep
from riverbed._runtime.offloop import off_loop
from riverbed._runtime.parts import Part
from riverbed._runtime.restore import stage_versions, take_back
from riverbed._runtime.result import COUNTS
from riverbed._store.protocol import Store

if TYPE_CHECKING:
    from riverbed._model.flow import Flow
    from riverbed._runtime.result import DeadLetter, RunResult

__all__ = ["RunLifecycle", "stage_run"]

_ENDED_AS = {
    RunStatus.SUCCEEDED: StageStatus.SUCCEEDED,
    RunStatus.FAILED: StageStatus.FAILED,
    RunStatus.CANCELLED: StageStatus.CANCELLED,
    RunStatus.SCHEDULED: StageStatus.CANCELLED,
}


class RunLifecycle:
    """Writes one run's record, checkpoints, steps and dead letters to the store."""

    def __init__(
        self, store: Store, flow: Flow, run_id: str, *, version: str, runner: str | None = None
    ) -> None:
        self.store = store
        self.runner = runner
        """What executes this attempt (``Runner.where``), recorded with the run."""
        self.flow = flow
        self.run_id = run_id
        self.version = version
        """The flow's version as recorded (a workflow's is its shape's)."""
        self.versions = stage_versions(flow)
        self.lease: Lease | None = None
        """The lease this process writes the run under, once the run is RUNNING here."""
        self._keeper: Keeping | None = None
        self._letters_saved = 0

    # -- how a run begins ---------------------------------------------------------------------

    def create(self, record: RunRecord) -> RunRecord:
        """Record a new run, RUNNING under this process."""
        self.store.create_run(record)
        return self._holding(record)

    async def create_grouped(self, record: RunRecord, *, blocking: bool) -> RunRecord:
        """Record a new run through the store's group committer (workflows: many at once
        share a commit)."""
        await committer(self.store, blocking=blocking).commit(StepCommit(record.run_id, run=record))
        return self._holding(record)

    def take_back(self, run: RunRecord) -> RunRecord:
        """Make the stopped ``run`` RUNNING again here, as its next attempt (a resume)."""
        return self._ran_by(self._holding(take_back(self.store, run, self.version)))

    def claimed(self) -> RunRecord:
        """The run this process claimed from the queue (already RUNNING here)."""
        return self._ran_by(self._holding(self.store.get_run(self.run_id)))

    def _ran_by(self, record: RunRecord) -> RunRecord:
        """Record the runner of this attempt of a run that existed before."""
        if self.runner is None or record.runner == self.runner:
            return record
        self.store.update_run(record.run_id, runner=self.runner)
        return dataclasses.replace(record, runner=self.runner)

    def new_record(self, **fields: Any) -> RunRecord:
        """A new run's record, RUNNING under this process, with ``fields``."""
        now = datetime.now(UTC)
        values: dict[str, Any] = {
            "run_id": self.run_id,
            "flow": self.flow.name,
            "flow_version": self.version,
            "status": RunStatus.RUNNING,
            "created_at": now,
            "started_at": now,
            "worker": WORKER,
            "runner": self.runner,
            "lease_until": now + timedelta(seconds=LEASE_SECONDS),
        }
        return RunRecord(**{**values, **fields})

    def _holding(self, record: RunRecord) -> RunRecord:
        self.run_id = record.run_id
        self.lease = Lease.of(record)
        return record

    # -- while it runs ------------------------------------------------------------------------

    def keep_lease(self, on_lost: Callable[[], None], loop: asyncio.AbstractEventLoop) -> None:
        """Renew the run's lease until ``stop_keeping``; ``on_lost`` on ``loop`` once the
        store says the run is no longer this process's (cancelled, or taken over)."""
        assert self.lease is not None
        self._keeper = keep(self.store, self.lease, on_lost=on_lost, loop=loop)

    def stop_keeping(self) -> None:
        """Stop renewing the lease."""
        if self._keeper is not None:
            self._keeper.stop()

    async def checkpoint(
        self,
        checkpoint_id: int,
        part: Part,
        states: dict[str, bytes],
        dead_letters: list[DeadLetter],
        *,
        ended: bool = False,
    ) -> None:
        """Commit one checkpoint (``part``, with ``states`` for the stages kept whole),
        with the stage runs at its cut and the dead letters since the last one, in one
        transaction fenced by the run's lease. The records are made here; the store
        writes them in another thread, while the event loop goes on."""
        checkpoint = self._checkpoint(checkpoint_id, part, states, ended=ended)
        stage_runs = [
            self.stage_run(name, values, StageStatus.RUNNING)
            for name, values in part.counters.items()
        ]
        letters = self.new_letters(dead_letters)
        await off_loop(
            self.store.commit_checkpoint, checkpoint, stage_runs, letters, lease=self.lease
        )

    def _checkpoint(
        self, checkpoint_id: int, part: Part, states: dict[str, bytes], *, ended: bool
    ) -> Checkpoint:
        """The record of checkpoint ``checkpoint_id``."""
        return Checkpoint(
            run_id=self.run_id,
            checkpoint_id=checkpoint_id,
            flow_version=self.version,
            positions=part.positions,
            states=states,
            created_at=datetime.now(UTC),
            keyed=part.keyed,
            complete=frozenset(part.complete),
            counters={name: dict(values) for name, values in part.counters.items()},
            finished=tuple(sorted(set(part.finished))),
            stage_versions=dict(self.versions),
            ended=ended,
        )

    async def commit(self, commit: StepCommit, *, blocking: bool) -> None:
        """Commit a workflow's step (or its end) under the run's lease, grouped with the
        commits of the other workflows of this event loop."""
        await committer(self.store, blocking=blocking).commit(commit)

    def save_letters(self, letters: list[DeadLetter]) -> None:
        """Store the dead letters not stored yet, under the run's lease."""
        fresh = self.new_letters(letters)
        if fresh:
            self.store.add_dead_letters(fresh, lease=self.lease)

    def forget_letters_since(self, saved: int) -> None:
        """The run rolled back to a checkpoint that held ``saved`` dead letters: those kept
        after it are made again, and saved again, as the run goes on."""
        self._letters_saved = min(self._letters_saved, saved)

    def latest_checkpoint(self) -> Checkpoint | None:
        """The run's newest committed checkpoint."""
        return self.store.latest_checkpoint(self.run_id)

    def record(self) -> RunRecord:
        """The run's record as stored."""
        return self.store.get_run(self.run_id)

    def new_letters(self, letters: list[DeadLetter]) -> list[DeadLetterRecord]:
        """The dead letters not saved yet, as records (each saved once)."""
        fresh = letters[self._letters_saved :]
        self._letters_saved = len(letters)
        return [letter.record for letter in fresh]

    def stage_run(
        self, name: str, values: Mapping[str, Any], status: StageStatus, **times: Any
    ) -> StageRun:
        """Stage ``name``'s record in this attempt, from its counter ``values``."""
        kind = self.flow.stage(name).kind
        attempt = self.lease.attempt if self.lease is not None else 1
        return stage_run(self.run_id, name, kind, values, status, attempt=attempt, **times)

    # -- how it ends ------------------------------------------------------------------------

    def finish(self, result: RunResult, *, release: bool = False) -> RunRecord:
        """Record how a stream run ended (its stage runs, its last dead letters, its
        status), or with ``release`` hand it back to the queue, resumable from its last
        checkpoint. Returns the run as stored: CANCELLED if it was cancelled from outside
        meanwhile. ``LeaseLostError`` if another process took the run over."""
        self.stop_keeping()
        lease = self.lease
        assert lease is not None
        try:
            self._save_ending(result, lease)
            if release:
                self.store.release(lease)
                return self.store.get_run(self.run_id)
            return self.store.transition(
                self.run_id,
                result.status,
                lease=lease,
                ended_at=result.ended_at,
                error=result.error,
                lease_until=None,
            )
        except LeaseLostError as lost:
            if lost.status is RunStatus.CANCELLED:
                return self.store.get_run(self.run_id)  # cancelled: the record says so
            raise

    def interrupted(self, *, release: bool) -> RunRecord:
        """The run stops without an end of its own (Ctrl-C, its task cancelled): back into
        the queue with ``release`` (a worker's run), else CANCELLED."""
        self.stop_keeping()
        assert self.lease is not None
        if release:
            self.store.release(self.lease)
        else:
            self.store.transition(
                self.run_id,
                RunStatus.CANCELLED,
                lease=self.lease,
                ended_at=datetime.now(UTC),
                lease_until=None,
            )
        return self.store.get_run(self.run_id)

    def _save_ending(self, result: RunResult, lease: Lease) -> None:
        status = _ENDED_AS[result.status]
        failed_stage = result.error.stage if result.error is not None else None
        stage_runs = []
        for name, stats in result.stages.items():
            own = status
            if name == failed_stage:
                own = StageStatus.FAILED
            elif status is StageStatus.FAILED:
                own = StageStatus.SUCCEEDED
            stage_runs.append(self.stage_run(name, stats.counts(), own))
        self.store.save_stage_runs(self.run_id, stage_runs, lease=lease)
        self.save_letters(list(result.dead_letters))


def stage_run(
    run_id: str,
    stage: str,
    kind: StageKind,
    values: Mapping[str, Any],
    status: StageStatus,
    *,
    started_at: datetime | None = None,
    ended_at: datetime | None = None,
    attempt: int = 1,
) -> StageRun:
    """A stage's record, in ``attempt``, from its counter ``values``
    (``StageCounters.values()``)."""
    counts = {name: values.get(name, 0) for name in COUNTS}
    counts["seconds"] = values.get("seconds", 0.0)
    return StageRun(
        run_id=run_id,
        stage=stage,
        kind=kind,
        status=status,
        started_at=started_at,
        ended_at=ended_at,
        attempt=attempt,
        **counts,
    )
