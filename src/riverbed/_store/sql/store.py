"""``SQLStore``: the ``Store`` protocol as one object composed of one part per concern,
all sharing one ``SQLCore`` (the database, the codec, retries, fencing).

Each method hands the call to the part that owns its concern; the parts never call each
other through the store. A backend (``SQLiteStore``, ``PostgresStore``) is a ``SQLStore``
built on its ``Database``, with a queue of its own where it can claim and commit in fewer
round trips.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from types import TracebackType
from typing import Any

from riverbed._records import (
    DEFAULT_QUEUE,
    Checkpoint,
    DeadLetterRecord,
    Lease,
    RunRecord,
    RunStatus,
    RunTransition,
    StageRun,
    StepCommit,
    StepRecord,
)
from riverbed._store.changes import Changes, changes_of
from riverbed._store.protocol import queue_topic, run_topic
from riverbed._store.sql.checkpoints import SQLCheckpoints
from riverbed._store.sql.core import SQLCore
from riverbed._store.sql.dead_letters import SQLDeadLetters
from riverbed._store.sql.queue import SQLQueue
from riverbed._store.sql.runs import SQLRuns
from riverbed._store.sql.steps import SQLSteps

__all__ = ["SQLStore"]


class SQLStore:
    """Every ``Store`` method, in SQL common to SQLite and PostgreSQL (see the module doc).
    The concerns' protocols (``RunStore``, ``CheckpointStore``...) document each method."""

    def __init__(self, core: SQLCore, *, queue: SQLQueue | None = None) -> None:
        """A store on ``core``'s database; ``queue`` replaces the portable queue."""
        self.core = core
        """The database and what every part shares (tests and tools reach SQL through it)."""
        self.url = core.url
        self._runs = SQLRuns(core)
        self._checkpoints = SQLCheckpoints(core)
        self._dead_letters = SQLDeadLetters(core)
        self._steps = SQLSteps(core)
        self._queue = queue if queue is not None else SQLQueue(core)
        self._changes = changes_of(core.url)

    def close(self) -> None:
        """Release the store's connections. The store cannot be used afterwards."""
        self.core.database.close()

    def __enter__(self) -> SQLStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    # -- RunStore ---------------------------------------------------------------------------

    def create_run(self, run: RunRecord) -> None:
        """See ``RunStore.create_run``."""
        self._runs.create_run(run)

    def get_run(self, run_id: str) -> RunRecord:
        """See ``RunStore.get_run``."""
        return self._runs.get_run(run_id)

    def list_runs(
        self,
        *,
        flow: str | None = None,
        status: RunStatus | None = None,
        limit: int = 50,
        since: datetime | None = None,
        before: str | None = None,
    ) -> list[RunRecord]:
        """See ``RunStore.list_runs``."""
        return self._runs.list_runs(
            flow=flow, status=status, limit=limit, since=since, before=before
        )

    def transition(
        self, run_id: str, new: RunStatus, *, lease: Lease | None = None, **fields: Any
    ) -> RunRecord:
        """See ``RunStore.transition``."""
        record = self._runs.transition(run_id, new, lease=lease, **fields)
        self._changes.bump(run_topic(record.run_id))
        if new is RunStatus.SCHEDULED:
            self._changes.bump(queue_topic(record.queue))
        return record

    def update_run(self, run_id: str, **fields: Any) -> None:
        """See ``RunStore.update_run``."""
        self._runs.update_run(run_id, **fields)

    def history(self, run_id: str) -> list[RunTransition]:
        """See ``RunStore.history``."""
        return self._runs.history(run_id)

    def save_stage_runs(
        self, run_id: str, stage_runs: Sequence[StageRun], *, lease: Lease | None = None
    ) -> None:
        """See ``RunStore.save_stage_runs``."""
        self._runs.save_stage_runs(run_id, stage_runs, lease=lease)

    def stage_runs(self, run_id: str, *, attempt: int | None = None) -> list[StageRun]:
        """See ``RunStore.stage_runs``."""
        return self._runs.stage_runs(run_id, attempt=attempt)

    def prune(self, *, finished_before: datetime) -> int:
        """See ``RunStore.prune``."""
        return self._runs.prune(finished_before=finished_before)

    # -- CheckpointStore --------------------------------------------------------------------

    def commit_checkpoint(
        self,
        checkpoint: Checkpoint,
        stage_runs: Sequence[StageRun] = (),
        dead_letters: Sequence[DeadLetterRecord] = (),
        *,
        lease: Lease | None = None,
    ) -> None:
        """See ``CheckpointStore.commit_checkpoint``."""
        self._checkpoints.commit_checkpoint(checkpoint, stage_runs, dead_letters, lease=lease)

    def latest_checkpoint(self, run_id: str, *, states: bool = True) -> Checkpoint | None:
        """See ``CheckpointStore.latest_checkpoint``."""
        return self._checkpoints.latest_checkpoint(run_id, states=states)

    # -- DeadLetterStore --------------------------------------------------------------------

    def add_dead_letters(
        self, letters: Sequence[DeadLetterRecord], *, lease: Lease | None = None
    ) -> list[int]:
        """See ``DeadLetterStore.add_dead_letters``."""
        return self._dead_letters.add_dead_letters(letters, lease=lease)

    def dead_letters(
        self,
        *,
        run_id: str | None = None,
        flow: str | None = None,
        stage: str | None = None,
        replayed: bool | None = None,
        limit: int = 1000,
    ) -> list[DeadLetterRecord]:
        """See ``DeadLetterStore.dead_letters``."""
        return self._dead_letters.dead_letters(
            run_id=run_id, flow=flow, stage=stage, replayed=replayed, limit=limit
        )

    def mark_replayed(self, ids: Sequence[int], by_run: str) -> None:
        """See ``DeadLetterStore.mark_replayed``."""
        self._dead_letters.mark_replayed(ids, by_run)

    def discard_dead_letters(self, ids: Sequence[int]) -> int:
        """See ``DeadLetterStore.discard_dead_letters``."""
        return self._dead_letters.discard_dead_letters(ids)

    # -- StepStore --------------------------------------------------------------------------

    def steps(self, run_id: str) -> list[StepRecord]:
        """See ``StepStore.steps``."""
        return self._steps.steps(run_id)

    def cache_get(self, stage: str, stage_version: str, digest: str) -> bytes | None:
        """See ``StepStore.cache_get``."""
        return self._steps.cache_get(stage, stage_version, digest)

    def cache_put(
        self, stage: str, stage_version: str, digest: str, outputs: bytes, run_id: str
    ) -> None:
        """See ``StepStore.cache_put``."""
        self._steps.cache_put(stage, stage_version, digest, outputs, run_id)

    def cache_clear(self, stage: str | None = None) -> int:
        """See ``StepStore.cache_clear``."""
        return self._steps.cache_clear(stage)

    # -- RunQueue ---------------------------------------------------------------------------

    def enqueue(self, run: RunRecord) -> None:
        """See ``RunQueue.enqueue``."""
        self._queue.enqueue(run)
        self._changes.bump(queue_topic(run.queue))

    def claim(
        self, worker: str, lease_seconds: float, queues: Sequence[str] = (DEFAULT_QUEUE,)
    ) -> RunRecord | None:
        """See ``RunQueue.claim``."""
        return self._queue.claim(worker, lease_seconds, queues)

    def renew_lease(self, lease: Lease, lease_seconds: float) -> bool:
        """See ``RunQueue.renew_lease``."""
        return self._queue.renew_lease(lease, lease_seconds)

    def release(self, lease: Lease) -> bool:
        """See ``RunQueue.release``."""
        released = self._queue.release(lease)
        if released:
            self._changes.bump(None)  # its queue is not at hand: every waiter looks
        return released

    def commit_steps(self, commits: Sequence[StepCommit]) -> None:
        """See ``RunQueue.commit_steps``."""
        self._queue.commit_steps(commits)
        for commit in commits:
            if commit.status is not None:  # a run ended
                self._changes.bump(run_topic(commit.run_id))

    def run_changes(self) -> Changes:
        """See ``RunQueue.run_changes``: this process's own changes (a backend that hears
        other processes' too adds them)."""
        return self._changes
