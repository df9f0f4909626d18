"""Pruning: deleting the runs that finished before a time, with everything stored under
them, so that a store that runs for years stays small.

What goes, in one transaction: the runs that are SUCCEEDED, FAILED or CANCELLED and
ended (``ended_at``, or ``created_at`` for a run cancelled before it started) before
the time, and their history, stage runs, checkpoints, workflow steps and dead letters.

What stays:

- runs in any other status (SCHEDULED, RUNNING, CRASHED: they may still go on);
- a finished run with dead letters not replayed yet, and everything of it: replaying them
  needs the run (its flow and version), and they are the only copy of their events. Once
  they are replayed, the next prune takes the run and them;
- the step cache: a cached output serves every run of its stage, whichever computed it
  (``cache_clear`` empties it).
"""

from __future__ import annotations

from datetime import datetime

from riverbed._records import RunStatus
from riverbed._store.fencing import Tx
from riverbed._store.sql.core import SQLCore
from riverbed._store.sql.statements import marks

__all__ = ["BATCH", "FINISHED", "prune"]

FINISHED = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)
"""The statuses of runs that prune may delete."""

BATCH = 500
"""Run ids per DELETE: well under both databases' limits on a statement's parameters."""

OWNED = (
    "riverbed_run_history",
    "riverbed_stage_runs",
    "riverbed_checkpoint_states",
    "riverbed_checkpoint_keys",
    "riverbed_checkpoints",
    "riverbed_steps",
    "riverbed_dead_letters",
)
"""The tables whose rows belong to one run (by ``run_id``), deleted with it."""

_PRUNABLE = (
    "SELECT r.run_id FROM riverbed_runs r "
    f"WHERE r.status IN ({marks(len(FINISHED))}) AND coalesce(r.ended_at, r.created_at) < ? "
    "AND NOT EXISTS (SELECT 1 FROM riverbed_dead_letters d "
    "WHERE d.run_id = r.run_id AND d.replayed_by IS NULL)"
)


def prune(core: SQLCore, finished_before: datetime) -> int:
    """Delete the runs that finished before ``finished_before`` and what they own (see
    the module doc), in one transaction; return how many runs were deleted."""
    before = core.codec.time_in(finished_before, "finished_before")
    statuses = tuple(status.value for status in FINISHED)

    def write(tx: Tx) -> int:
        # Locked on PostgreSQL: a run being resumed right now waits, or is left out.
        tx.execute(_PRUNABLE + core.database.for_update, (*statuses, before))
        ids = [row[0] for row in tx.fetchall()]
        for start in range(0, len(ids), BATCH):
            _delete(tx, ids[start : start + BATCH])
        return len(ids)

    return core.write(write)


def _delete(tx: Tx, ids: list[str]) -> None:
    """Delete the runs ``ids`` and every row they own, inside ``tx``."""
    where = f"WHERE run_id IN ({marks(len(ids))})"
    for table in OWNED:
        tx.execute(f"DELETE FROM {table} {where}", ids)
    tx.execute(f"DELETE FROM riverbed_runs {where}", ids)
