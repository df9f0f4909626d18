"""Records as JSON-able data: the one place where each record's JSON shape is written.

One function per record kind (``run_json``, ``stage_run_json``, ``stage_stats_json``,
``transition_json``, ``checkpoint_json``, ``dead_letter_json``, ``error_json``), reached
through the records' ``to_dict()`` methods: what ``riverbed runs ... --json`` prints and
what an HTTP service would serve. ``RunResult.to_dict`` builds its form from the same
conversions.

Nothing here unpickles: a run's input and output are given by the readable copy made when
they were stored, or by their size (``shown``); a dead letter's event by its repr; a
checkpoint's states not at all. Those who only look at a store do not run its code.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from riverbed._records.records import (
        Checkpoint,
        DeadLetterRecord,
        RunRecord,
        RunTransition,
        StageError,
    )
    from riverbed._records.stages import StageRun, StageStats

__all__ = [
    "checkpoint_json",
    "dead_letter_json",
    "error_json",
    "iso",
    "result_error_json",
    "run_json",
    "shown",
    "stage_run_json",
    "stage_stats_json",
    "transition_json",
]


def iso(moment: datetime | None) -> str | None:
    """A time as ISO 8601 text (with its UTC offset); None stays None."""
    return moment.isoformat() if moment is not None else None


def shown(data: bytes | None, readable: str | None) -> str | None:
    """A stored value for people: the readable copy made when it was stored, else its size
    (never unpickled)."""
    if data is None:
        return readable
    return readable if readable is not None else f"<{len(data)} bytes, not shown>"


def error_json(error: StageError) -> dict[str, Any]:
    """A failure as a stored run shows it: its stage, exception type (``type``), message,
    traceback, attempts, the action its policy took and its event's repr."""
    return {
        "stage": error.stage,
        "type": error.error_type,
        "message": error.message,
        "traceback": error.traceback,
        "attempts": error.attempts,
        "action": error.action.value,
        "event": error.event,
    }


def result_error_json(error: StageError) -> dict[str, Any]:
    """A failure as a run's result shows it (``RunResult.to_dict``): the same fields as
    ``error_json``, the exception type under ``error_type`` as that form always had it."""
    data = error_json(error)
    return {"stage": data.pop("stage"), "error_type": data.pop("type"), **data}


def run_json(run: RunRecord) -> dict[str, Any]:
    """A run record; ``input`` and ``output`` by their readable copy or size."""
    return {
        "run_id": run.run_id,
        "flow": run.flow,
        "flow_version": run.flow_version,
        "status": run.status.value,
        "attempt": run.attempt,
        "params": run.params,
        "target": run.target,
        "created_at": iso(run.created_at),
        "started_at": iso(run.started_at),
        "ended_at": iso(run.ended_at),
        "rerun_of": run.rerun_of,
        "worker": run.worker,
        "lease_until": iso(run.lease_until),
        "runner": run.runner,
        "queue": run.queue,
        "parent": run.parent,
        "step": run.step,
        "error": error_json(run.error) if run.error is not None else None,
        "input": shown(run.input, run.input_repr),
        "output": shown(run.output, run.output_repr),
    }


def stage_run_json(stage: StageRun) -> dict[str, Any]:
    """One stage of one attempt of a run: its status and counts."""
    return {
        "stage": stage.stage,
        "kind": stage.kind.value,
        "status": stage.status.value,
        "attempt": stage.attempt,
        **stage.counts(),
    }


def stage_stats_json(stats: StageStats) -> dict[str, Any]:
    """One stage's counts in a run's result, and the stages fused with it."""
    return {
        "name": stats.name,
        "kind": stats.kind.value,
        **stats.counts(),
        "fused_with": list(stats.fused_with),
    }


def transition_json(transition: RunTransition) -> dict[str, Any]:
    """One entry of a run's history."""
    return {
        "status": transition.status.value,
        "attempt": transition.attempt,
        "at": iso(transition.at),
        "worker": transition.worker,
        "error": error_json(transition.error) if transition.error is not None else None,
    }


def checkpoint_json(checkpoint: Checkpoint) -> dict[str, Any]:
    """A checkpoint's number, time and source positions (its states are not shown)."""
    return {
        "checkpoint_id": checkpoint.checkpoint_id,
        "created_at": iso(checkpoint.created_at),
        "positions": checkpoint.positions,
    }


def dead_letter_json(letter: DeadLetterRecord) -> dict[str, Any]:
    """A dead letter: its event by its repr, whether it can be replayed, its error."""
    return {
        "id": letter.id,
        "run_id": letter.run_id,
        "flow": letter.flow,
        "stage": letter.stage,
        "event": letter.event_repr,
        "replayable": letter.replayable,
        "error_type": letter.error_type,
        "message": letter.message,
        "attempts": letter.attempts,
        "at": iso(letter.at),
        "replayed_by": letter.replayed_by,
    }
