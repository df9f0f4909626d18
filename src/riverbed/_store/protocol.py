"""The store protocols: what runners, the CLI and the dashboard may ask of a store.

``Store`` is composed of one protocol per concern, so that a caller that needs one
concern can type against it alone:

- ``RunStore``: runs (create, get, list, transition, update, history, prune) and their
  stage runs;
- ``CheckpointStore``: a stream run's checkpoints;
- ``DeadLetterStore``: events that failed every retry;
- ``StepStore``: a durable workflow's steps and the step cache;
- ``RunQueue``: scheduled runs, their claims and leases, workflow commits, and what a
  process hears of changes to runs (``RunChanges``).

Runners depend on these protocols only, never on a concrete store (docs/architecture.md). Every
method is synchronous and thread-safe: the engine calls them from worker threads
(``asyncio.to_thread``). Pickled things (events, states, outputs) cross it as ``bytes``.

Every method rides out short outages of the store (retried with backoff for a bounded
time, then ``StoreUnavailableError``). Writes that a run makes take its ``lease`` and are
fenced by it: checked in the same transaction, so that a process that lost its run
(cancelled, or taken over after its lease expired) changes nothing (``LeaseLostError``).
Every status change is appended to the run's history (``history``).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol, runtime_checkable

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

__all__ = [
    "CheckpointStore",
    "DeadLetterStore",
    "RunChanges",
    "RunQueue",
    "RunStore",
    "StepStore",
    "Store",
    "queue_topic",
    "run_topic",
]


@runtime_checkable
class RunStore(Protocol):
    """Runs, their history and their stage runs."""

    def create_run(self, run: RunRecord) -> None:
        """Store a new run. ``DuplicateRunError`` if a run with its id exists."""

    def get_run(self, run_id: str) -> RunRecord:
        """The run with this id, or with this unique prefix of at least 6 characters (like
        git's short hashes). ``RunNotFoundError`` if none matches, or several do."""

    def list_runs(
        self,
        *,
        flow: str | None = None,
        status: RunStatus | None = None,
        limit: int = 50,
        since: datetime | None = None,
        before: str | None = None,
    ) -> list[RunRecord]:
        """Up to ``limit`` runs, newest first (in the order they were stored), of one flow
        and/or in one status if given, created at or after ``since`` (a timezone-aware
        datetime) if given.

        ``before`` pages by seek: the runs stored before the run with this id, the last
        of the previous page. Each page is an index range, as fast at the 100,000th run as
        at the first, and a run stored meanwhile shifts nothing. ``RunNotFoundError`` if no
        run has that id (pruned meanwhile: start again from the first page)."""

    def transition(
        self, run_id: str, new: RunStatus, *, lease: Lease | None = None, **fields: Any
    ) -> RunRecord:
        """Move a run to status ``new`` and set ``fields`` (any RunRecord field but run_id and
        status: ``started_at``, ``ended_at``, ``error``, ``output``, ``attempt``...), as one
        atomic compare-and-set: the current status is read, checked with
        ``check_transition`` (``InvalidTransitionError``), and replaced in one transaction,
        so that of two concurrent transitions of one run the second sees the first's
        result; the change is appended to the run's history. With ``lease``, only while
        the lease holds the run (``LeaseLostError``). ``RunNotFoundError`` if there is no
        such run. Returns the updated run."""

    def update_run(self, run_id: str, **fields: Any) -> None:
        """Set fields of a run other than its status (e.g. ``params``)."""

    def history(self, run_id: str) -> list[RunTransition]:
        """Every status the run went through, oldest first: its creation, each attempt's
        start, end, crash or release, with the worker and (for FAILED) the error."""

    def save_stage_runs(
        self, run_id: str, stage_runs: Sequence[StageRun], *, lease: Lease | None = None
    ) -> None:
        """Insert or update (by run_id, attempt and stage) stage runs of the run
        ``run_id``, fenced by ``lease`` if given."""

    def stage_runs(self, run_id: str, *, attempt: int | None = None) -> list[StageRun]:
        """The run's stage runs of ``attempt``, or the latest record of each stage, in the
        order they were first saved."""

    def prune(self, *, finished_before: datetime) -> int:
        """Delete the runs that finished (SUCCEEDED, FAILED or CANCELLED) before
        ``finished_before``, a timezone-aware datetime compared with their ``ended_at``
        (``created_at`` for a run cancelled before it started), with everything stored
        under them: history, stage runs, checkpoints, workflow steps and dead letters.
        In one transaction; returns how many runs were deleted.

        Never deleted: runs in another status (SCHEDULED, RUNNING, CRASHED), a finished
        run that has dead letters not replayed yet (replaying needs it; it goes with
        them once they are replayed), and the step cache (shared by every run of a stage:
        ``cache_clear``). ``riverbed runs prune --older-than`` calls it."""


@runtime_checkable
class CheckpointStore(Protocol):
    """A stream run's checkpoints: the consistent cuts it resumes from."""

    def commit_checkpoint(
        self,
        checkpoint: Checkpoint,
        stage_runs: Sequence[StageRun] = (),
        dead_letters: Sequence[DeadLetterRecord] = (),
        *,
        lease: Lease | None = None,
    ) -> None:
        """In ONE transaction fenced by ``lease``: store the checkpoint, upsert the stage
        runs, insert the dead letters, and delete the run's checkpoints but the newest
        two. All or nothing: a crash leaves the previous checkpoint whole."""

    def latest_checkpoint(self, run_id: str, *, states: bool = True) -> Checkpoint | None:
        """The run's newest checkpoint, or None. ``states=False`` leaves its states out
        (``states`` and ``keyed`` empty): its positions, counters and time alone, a small
        read whatever the size of the state (the dashboard polls it)."""


@runtime_checkable
class DeadLetterStore(Protocol):
    """Events that failed every retry, kept to be looked at and replayed."""

    def add_dead_letters(
        self, letters: Sequence[DeadLetterRecord], *, lease: Lease | None = None
    ) -> list[int]:
        """Store dead letters of one run (their ``id`` is ignored), fenced by ``lease`` if
        given; return the ids assigned, in order."""

    def dead_letters(
        self,
        *,
        run_id: str | None = None,
        flow: str | None = None,
        stage: str | None = None,
        replayed: bool | None = None,
        limit: int = 1000,
    ) -> list[DeadLetterRecord]:
        """Up to ``limit`` dead letters matching every filter given, oldest first.
        ``replayed=False`` gives those not replayed yet."""

    def mark_replayed(self, ids: Sequence[int], by_run: str) -> None:
        """Record that the run ``by_run`` replayed the dead letters ``ids``."""

    def discard_dead_letters(self, ids: Sequence[int]) -> int:
        """Delete the pending (not replayed) dead letters ``ids``, given up on; return how
        many were deleted. Replayed letters stay, the record of their replay."""


@runtime_checkable
class StepStore(Protocol):
    """A durable workflow's completed steps, and the step cache shared by every run."""

    def steps(self, run_id: str) -> list[StepRecord]:
        """The run's completed steps, by ``seq``."""

    def cache_get(self, stage: str, stage_version: str, digest: str) -> bytes | None:
        """The cached outputs of ``stage`` at ``stage_version`` for the input whose digest is
        ``digest``, or None."""

    def cache_put(
        self, stage: str, stage_version: str, digest: str, outputs: bytes, run_id: str
    ) -> None:
        """Cache outputs computed by run ``run_id``; a key cached already keeps its first
        value (a cached step is deterministic by contract)."""

    def cache_clear(self, stage: str | None = None) -> int:
        """Forget the cached outputs of ``stage``, or of every stage; return how many."""


def queue_topic(queue: str) -> str:
    """The topic of ``RunChanges`` that a run queued in ``queue`` changes."""
    return f"queue:{queue}"


def run_topic(run_id: str) -> str:
    """The topic of ``RunChanges`` that a step run's change of status changes."""
    return f"run:{run_id}"


@runtime_checkable
class RunChanges(Protocol):
    """What a process hears of changes to a store's runs, by topic: a run queued in a
    queue (``queue_topic``), a step run changing status (``run_topic``).

    A waiter (an idle worker, a workflow waiting for its step run) notes the ``mark`` of
    its topics, looks at the store, and if it must wait, waits until the mark moves, or
    its timeout, before it looks again: at once when the change comes, not a poll later.
    The mark may move for a change that is not the waiter's (it looks again for
    nothing), and a store may not hear every change of other processes (SQLite hears
    only its own process's), so waiters keep a timeout."""

    def mark(self, topics: Collection[str]) -> int:
        """How many changes to ``topics`` were heard so far."""

    def wait(self, topics: Collection[str], seen: int, timeout: float) -> int:
        """Block until ``mark(topics)`` differs from ``seen``, at most ``timeout``
        seconds; return it."""

    async def wait_async(self, topics: Collection[str], seen: int, timeout: float) -> int:
        """``wait``, without blocking the event loop."""


@runtime_checkable
class RunQueue(Protocol):
    """Scheduled runs, the workers' claims and leases on them, workflow commits, and the
    changes to runs a process hears of."""

    def enqueue(self, run: RunRecord) -> None:
        """Store ``run`` with status SCHEDULED (whatever its ``status``) in its ``queue``,
        for a worker serving that queue to ``claim``. ``DuplicateRunError`` if its id
        exists; ``ValueError`` for a queue name that is not one."""

    def claim(
        self, worker: str, lease_seconds: float, queues: Sequence[str] = (DEFAULT_QUEUE,)
    ) -> RunRecord | None:
        """Atomically take a run of one of ``queues`` (the runs' ``queue``; the default
        queue unless given) for ``worker``: the oldest SCHEDULED one, else a RUNNING one
        whose lease expired (its worker died: the run goes CRASHED then RUNNING, in the
        same transaction). The run is returned RUNNING, with ``worker``,
        ``lease_until`` = now + ``lease_seconds`` and ``started_at`` set, and ``attempt``
        + 1 if it ran before (crashed, or released). None if there is nothing to take.
        Many workers, on many machines for PostgreSQL, never take the same run."""

    def renew_lease(self, lease: Lease, lease_seconds: float) -> bool:
        """Extend ``lease`` to now + ``lease_seconds``. False if it no longer holds its run
        (cancelled, or taken over: stop working on it)."""

    def release(self, lease: Lease) -> bool:
        """Put the run ``lease`` holds back into the queue (SCHEDULED) now, so that the next
        ``claim`` resumes it from its last checkpoint or step (a worker shutting down
        cleanly). False if the lease did not hold it."""

    def commit_steps(self, commits: Sequence[StepCommit]) -> None:
        """Apply every commit, in order, in ONE transaction, durably committed when this
        returns: runs created, steps recorded, a final status set with the last step, and
        the steps of concurrent workflows grouped so that they share one commit (group
        commit); each commit is fenced by its ``lease``. All or nothing: any failure (a
        lease lost: ``LeaseLostError``; a step already recorded: ``StoreError``; an illegal
        transition: ``InvalidTransitionError``; a run id taken: ``DuplicateRunError``)
        rolls every commit of the call back."""

    def run_changes(self) -> RunChanges:
        """The changes to this store's runs that this process hears of (see
        ``RunChanges``); the same object on every call."""


@runtime_checkable
class Store(RunStore, CheckpointStore, DeadLetterStore, StepStore, RunQueue, Protocol):
    """Where runs, stage runs, checkpoints, dead letters, the step cache, workflow steps and
    the run queue are kept: every concern's protocol in one object. Open one with
    ``riverbed.open_store(url)``.

    SQLite (one machine) and PostgreSQL (many) implement it and pass one test suite.
    """

    url: str
    """Where the store is, without any password."""

    def close(self) -> None:
        """Release the store's connections. The store cannot be used afterwards."""

    def __enter__(self) -> Store:
        """The store itself; it is closed when the ``with`` block ends."""

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the store."""


Store.__module__ = "riverbed"  # public as riverbed.Store; set here, as a body attribute
# would count as a protocol member.
