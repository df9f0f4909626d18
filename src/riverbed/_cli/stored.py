"""Stored runs as ``riverbed runs`` and ``riverbed dead-letters`` run them again: which flow
a stored run runs, and what makes a run a replay of dead letters.

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
from typing import Any

import riverbed as rb
from riverbed._targets import load_flow

__all__ = [
    "REPLAY_OF",
    "StoredFlow",
    "flow_of_run",
    "is_replay",
    "mark_if_replayed",
    "replay_params",
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


def flow_of_run(store: rb.Store, run: rb.RunRecord, target: str | None = None) -> StoredFlow:
    """The flow that runs ``run`` again: loaded from ``target`` if the user gave one, else
    from the run's stored target (checked: ``check_stored_target``), a function called
    with the run's params; for a replay run, that flow (with its origin's params) cut at
    the replayed stage and fed the replayed letters' events."""
    given = target is not None
    origin = _origin(store, run)
    found = target if given else origin.target
    if found is None:
        raise rb.TargetError(
            f"run {run.run_id} recorded no target to load its flow from (it was started "
            "from Python): resume it from Python (flow.run(resume=...) or rb.run(flow, "
            "resume=...)), or give the target: riverbed runs resume RUN module:attr"
        )
    flow = load_flow(found, stored=not given, params=origin.params)
    if not is_replay(run):
        return StoredFlow(flow, found)
    letters = _replayed_letters(store, run)
    events = [pickle.loads(letter.event) for letter in letters]
    replay = flow.replay(run.params[_STAGE], events)
    return StoredFlow(replay, found, tuple(letter.id for letter in letters if letter.id))


def _origin(store: rb.Store, run: rb.RunRecord) -> rb.RunRecord:
    """The run whose target and params build ``run``'s flow: itself, or for a replay its
    origin's (a replay of a replay: followed on, to a run with a target)."""
    seen = {run.run_id}
    while run.target is None and is_replay(run):
        origin = run.params[REPLAY_OF]
        if origin in seen:
            break
        seen.add(origin)
        run = store.get_run(origin)
    return run


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
    return [letter for letter in chosen if letter.replayable]


def mark_if_replayed(
    store: rb.Store, stored: StoredFlow, run_id: str, status: rb.RunStatus
) -> None:
    """Mark a replay run's letters replayed by it, once it has SUCCEEDED (a replay that
    failed leaves them pending: resume it, or replay them again)."""
    if stored.letters and status is rb.RunStatus.SUCCEEDED:
        store.mark_replayed(list(stored.letters), run_id)
