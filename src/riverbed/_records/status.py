"""Where a run and its stages stand: closed sets with a comment per member, and the one
function that knows a run's legal status changes. The bottom of riverbed: it imports
nothing of riverbed but its errors, and every layer (model, runtime, store, interfaces)
uses it."""

from __future__ import annotations

import enum

from riverbed._errors import InvalidTransitionError

__all__ = ["RunStatus", "StageStatus", "check_transition"]


class RunStatus(enum.Enum):
    """Where a run stands. It changes only through ``check_transition``'s rules."""

    SCHEDULED = "scheduled"
    """In the store's queue; no worker has started it yet."""
    RUNNING = "running"
    """A runner is executing it (under a worker's lease, if it came from the queue)."""
    SUCCEEDED = "succeeded"
    """Every source ended and every event drained through every stage. Final."""
    FAILED = "failed"
    """A stage's error stopped the run (policy STOP): a verdict about the flow's code or
    data. It can be re-run, or resumed from its last checkpoint after a fix."""
    CANCELLED = "cancelled"
    """Stopped on request (Ctrl-C) before the sources ended; what was in flight drained,
    but folds did not emit (the stream was stopped, not ended). Cancelling the task of
    ``Flow.arun`` cancels the run and raises ``CancelledError`` instead."""
    CRASHED = "crashed"
    """The process running it died (kill -9, power loss, a worker's lease expired): nothing
    in the flow decided it. It can be resumed from its last checkpoint."""

    __module__ = "riverbed"

    @property
    def ended(self) -> bool:
        """True if no runner is working on the run: it succeeded, failed, was cancelled or
        crashed. Only SUCCEEDED is final; the others may run again."""
        return self not in (RunStatus.SCHEDULED, RunStatus.RUNNING)

    @property
    def final(self) -> bool:
        """True if no status may follow this one (SUCCEEDED)."""
        return not _LEGAL[self]

    @property
    def successors(self) -> tuple[RunStatus, ...]:
        """The statuses a run in this status may go to."""
        return _LEGAL[self]


_LEGAL: dict[RunStatus, tuple[RunStatus, ...]] = {
    RunStatus.SCHEDULED: (RunStatus.RUNNING, RunStatus.CANCELLED),
    RunStatus.RUNNING: (
        RunStatus.SUCCEEDED,
        RunStatus.FAILED,
        RunStatus.CANCELLED,
        RunStatus.CRASHED,
        RunStatus.SCHEDULED,  # released by a worker shutting down: back to the queue
    ),
    # A run that stopped without succeeding may run again: re-run or resume after a fix,
    # directly (RUNNING) or through the queue (SCHEDULED).
    RunStatus.FAILED: (RunStatus.RUNNING, RunStatus.SCHEDULED),
    RunStatus.CRASHED: (RunStatus.RUNNING, RunStatus.SCHEDULED),
    RunStatus.CANCELLED: (RunStatus.RUNNING, RunStatus.SCHEDULED),
    RunStatus.SUCCEEDED: (),
}


def check_transition(old: RunStatus, new: RunStatus, *, run_id: str | None = None) -> None:
    """Raise ``InvalidTransitionError`` unless a run may go from ``old`` to ``new``.

    The one place that knows the rules; every store write of a status goes through it.

    >>> check_transition(RunStatus.RUNNING, RunStatus.SUCCEEDED)
    >>> RunStatus.FAILED.successors
    (<RunStatus.RUNNING: 'running'>, <RunStatus.SCHEDULED: 'scheduled'>)
    """
    if new in _LEGAL[old]:
        return
    who = f"run {run_id}" if run_id is not None else "a run"
    legal = ", ".join(status.value for status in old.successors) or "nothing (it is final)"
    raise InvalidTransitionError(
        f"{who} cannot go from {old.value} to {new.value}; legal from {old.value}: {legal}",
        old=old,
        new=new,
        run_id=run_id,
    )


check_transition.__module__ = "riverbed"  # it is public as riverbed.check_transition


class StageStatus(enum.Enum):
    """Where one stage of one run stands."""

    PENDING = "pending"
    """The run has not started this stage yet."""
    RUNNING = "running"
    """The stage is processing events."""
    SUCCEEDED = "succeeded"
    """Its inputs ended and it processed them all."""
    FAILED = "failed"
    """Its error stopped the run."""
    CANCELLED = "cancelled"
    """The run stopped (on request, or because another stage failed) before it finished."""

    __module__ = "riverbed"
