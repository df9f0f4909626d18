"""Stored runs as the commands of ``riverbed runs`` and ``riverbed dead-letters`` see them:
which flow a stored run runs, whether a RUNNING run is still alive, and what makes a run a
replay of dead letters.

A replay run is recorded with ``params`` ``{"replay_of": RUN, "stage": STAGE, "letters":
[ids]}`` and no target of its own: its flow is the flow of RUN cut at STAGE and fed the
events of those dead letters (``Flow.replay``), so that resuming or re-running it replays
the same letters again, not the whole original flow; and workers, which load a run's flow
from its target, never take it. The letters are marked replayed by the run once it has
SUCCEEDED.

Reading these never unpickles what the store holds; only running a flow does (a replay's
events), from a target that ``check_stored_target`` accepted.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import riverbed as rb
from riverbed._runtime.identity import process_gone
from riverbed._runtime.restore import crashed_if_dead
from riverbed._targets import load_flow

__all__ = [
    "REPLAY_OF",
    "StoredFlow",
    "flow_of_run",
    "interruption",
    "is_replay",
    "replay_params",
    "replayable",
    "settle_if_dead",
]

REPLAY_OF = "replay_of"
"""The key of a replay run's params naming the run whose dead letters it replays."""
_STAGE, _LETTERS = "stage", "letters"
_ALL = 1_000_000
"""More dead letters than any one replay holds (``dead_letters`` takes a limit)."""


@dataclass(frozen=True)
class StoredFlow:
    """The flow a stored run runs, and where it came from."""

    flow: rb.Flow
    target: str
    """The TARGET the flow was loaded from (a replay's: the original flow's)."""
    letters: tuple[int, ...] = ()
    """For a replay run: the dead letters it replays, marked replayed when it succeeds."""

    @property
    def recorded_target(self) -> str | None:
        """The target to record with a run of this flow: None for a replay, whose flow a
        worker could not rebuild from a target."""
        return None if self.letters else self.target


def is_replay(run: rb.RunRecord) -> bool:
    """True for a run made by ``riverbed dead-letters replay``."""
    return REPLAY_OF in run.params


def replay_params(origin: str, stage: str, letters: list[rb.DeadLetterRecord]) -> dict[str, Any]:
    """The params that record a replay of ``letters`` (of run ``origin``, into ``stage``)."""
    return {REPLAY_OF: origin, _STAGE: stage, _LETTERS: [letter.id for letter in letters]}


def replayable(letter: rb.DeadLetterRecord) -> bool:
    """False for a letter whose event could not be pickled when it was stored: it is kept
    by its repr only, and cannot be fed to a stage again."""
    return bool(letter.event)


def flow_of_run(store: rb.Store, run: rb.RunRecord, target: str | None = None) -> StoredFlow:
    """The flow that runs ``run`` again: loaded from ``target`` if the user gave one, else
    from the run's stored target (checked: ``check_stored_target``); for a replay run, that
    flow cut at the replayed stage and fed the replayed letters' events."""
    given = target is not None
    found = target if given else _stored_target(store, run)
    if found is None:
        raise rb.TargetError(
            f"run {run.run_id} recorded no target to load its flow from (it was started "
            "from Python): resume it from Python (flow.run(resume=...) or rb.run(flow, "
            "resume=...)), or give the target: riverbed runs resume RUN module:attr"
        )
    flow = load_flow(found, stored=not given)
    if not is_replay(run):
        return StoredFlow(flow, found)
    letters = _replayed_letters(store, run)
    events = [pickle.loads(letter.event) for letter in letters]
    replay = flow.replay(run.params[_STAGE], events)
    return StoredFlow(replay, found, tuple(letter.id for letter in letters if letter.id))


def _stored_target(store: rb.Store, run: rb.RunRecord) -> str | None:
    """The run's target; a replay's is its origin's (a replay of a replay: followed on)."""
    seen = {run.run_id}
    while run.target is None and is_replay(run):
        origin = run.params[REPLAY_OF]
        if origin in seen:
            return None
        seen.add(origin)
        run = store.get_run(origin)
    return run.target


def _replayed_letters(store: rb.Store, run: rb.RunRecord) -> list[rb.DeadLetterRecord]:
    """The dead letters replay run ``run`` replays, in the order it was fed them."""
    origin, stage = run.params[REPLAY_OF], run.params[_STAGE]
    candidates = store.dead_letters(run_id=origin, stage=stage, limit=_ALL)
    ids = run.params.get(_LETTERS)
    if ids is None:  # recorded by an older riverbed, which marked its letters at once
        chosen = [letter for letter in candidates if letter.replayed_by == run.run_id]
    else:
        by_id = {letter.id: letter for letter in candidates}
        chosen = [by_id[i] for i in ids if i in by_id]
    if not chosen:
        raise rb.RunNotResumableError(
            f"run {run.run_id} replays dead letters of run {origin} (stage {stage!r}) that "
            "are no longer stored; there is nothing to replay again",
            run_id=run.run_id,
        )
    return [letter for letter in chosen if replayable(letter)]


def mark_if_replayed(
    store: rb.Store, stored: StoredFlow, run_id: str, status: rb.RunStatus
) -> None:
    """Mark a replay run's letters replayed by it, once it has SUCCEEDED (a replay that
    failed leaves them pending: resume it, or replay them again)."""
    if stored.letters and status is rb.RunStatus.SUCCEEDED:
        store.mark_replayed(list(stored.letters), run_id)


def interruption(run: rb.RunRecord, now: datetime | None = None) -> str | None:
    """Why a RUNNING run is running no more, read from its record alone (nothing is
    written): "lease expired HH:MM:SS" or "process gone" (it ran on this machine and its
    process has ended); None if it may still be running, or is not RUNNING."""
    if run.status is not rb.RunStatus.RUNNING:
        return None
    now = now or datetime.now(UTC)
    if run.lease_until is None:
        return "no lease"
    if run.lease_until < now:
        return f"lease expired {run.lease_until.astimezone(UTC):%H:%M:%S}"
    if process_gone(run.worker):
        return "process gone"
    return None


def settle_if_dead(store: rb.Store, run: rb.RunRecord) -> rb.RunRecord:
    """``run`` as read a moment ago: if it is RUNNING in a process that is gone (its lease
    expired, or its process on this machine ended), recorded CRASHED, only while it is
    still held by that process (the transition is fenced by the lease that was read), and
    returned so. Of two processes that read it before either settled it, the second
    neither takes the run from the first nor records the first's fresh attempt CRASHED:
    it is refused (``RunNotResumableError``, saying who has it). A run still running
    somewhere is refused the same way; other statuses come back as they are."""
    if run.status is not rb.RunStatus.RUNNING:
        return run
    if interruption(run) is None:
        return crashed_if_dead(store, run)  # alive: refused, saying where it runs
    lease = rb.Lease(run.run_id, run.worker, run.attempt) if run.worker else None
    try:
        return store.transition(
            run.run_id, rb.RunStatus.CRASHED, lease=lease, ended_at=datetime.now(UTC)
        )
    except (rb.LeaseLostError, rb.InvalidTransitionError):  # another process was first
        now = store.get_run(run.run_id)
        if now.status is rb.RunStatus.CRASHED:
            return now
        if now.status is rb.RunStatus.RUNNING:
            why = f"another process ({now.worker}) resumed it just now (attempt {now.attempt})"
        else:
            why = f"it is {now.status.value} now"
        raise rb.RunNotResumableError(
            f"run {run.run_id} cannot be resumed: {why}", run_id=run.run_id
        ) from None
