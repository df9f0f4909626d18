"""Workflow steps on named queues: a step whose stage names a ``queue`` runs as a run of
its own, a *step run*, which only the workers serving that queue claim (a GPU, a
licence, the machines of one role), while the workflow run waits for it.

The step run is queued under the workflow run's target and params, so the worker that
claims it loads the same workflow, and runs that one stage on the step's events
(``RunRecord.step``; its ``parent`` is the workflow run). Its output is the stage's
outputs by port, which the workflow run records as the step, as if it had run the stage
itself: replayed on resume, never run twice once recorded.

Its id is ``RUN.STAGE.N``, N counting the attempts of the step whose step runs failed:
a workflow run resumed after its worker died finds the step run it had queued (running,
or done) and waits for it, or takes its output, instead of queueing it again; a step
retried after a failed step run queues the next N. A step run's worker that dies is
detected by its lease like any run's, and the step run is taken over by another worker
of its queue. Retries, timeouts and failure policies apply in the step run, where the
stage runs. A workflow run whose worker is told to stop while it waits goes back into
the queue without waiting for the step run, which goes on; the workflow run, taken again,
finds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from riverbed._errors import (
    DuplicateRunError,
    InvalidTransitionError,
    RunNotFoundError,
    StageFailedError,
)
from riverbed._model.stages import Stage
from riverbed._records import COUNTS, RunRecord, RunStatus, StageError, StageRun
from riverbed._runtime.failures import FailureLog
from riverbed._runtime.result import StageCounters, event_repr
from riverbed._store.protocol import Store, run_topic

__all__ = ["WAIT_SECONDS", "StepRunEnded", "run_on_queue", "step_on_queue"]

WAIT_SECONDS = (0.02, 1.0)
"""Seconds between two looks at a step run being waited for, when no change to the
store's runs is heard: the first, and the longest (each wait is half as long again as
the one before, so a long step costs few queries)."""


@dataclass(frozen=True)
class StepRunEnded:
    """How a step run ended: its outputs by port (succeeded), or its error (failed), and
    its stage run (the counters of the stage where it ran); neither outputs nor error if
    the workflow run stopped waiting for it (its worker stops: ``left``)."""

    run_id: str
    outputs: dict[str, list[Any]] | None
    error: StageError | None
    stage_run: StageRun | None

    @property
    def left(self) -> bool:
        """The workflow run left the step run running (it goes back into the queue)."""
        return self.outputs is None and self.error is None


async def run_on_queue(
    store: Store,
    parent: RunRecord,
    stage: str,
    queue: str,
    events: list[Any],
    stop: Callable[[], str | None],
) -> StepRunEnded:
    """Run step ``stage`` of workflow run ``parent`` on ``events`` as a step run in
    ``queue``, and wait for it to end (see the module). ``stop()`` says why the workflow
    run must stop, if it must: "cancelled", and the step run is cancelled too;
    "released" (its worker stops), and it is left running."""
    if parent.target is None:
        raise ValueError(
            f"stage {stage!r} runs on queue {queue!r}, whose workers load the workflow by "
            "its target (module:attr), and this run has none: run a Flow that is a "
            "module's attribute (rb.run records where it is), or run it by its target "
            "(riverbed run app:flow)"
        )
    number = 1
    while True:
        run_id = f"{parent.run_id}.{stage}.{number}"
        found = await asyncio.to_thread(_find, store, run_id)
        if found is not None and found.status in (RunStatus.FAILED, RunStatus.CANCELLED):
            number += 1  # an earlier attempt's: this attempt queues its own
            continue
        if found is None:
            record = _step_run(parent, run_id, stage, queue, events)
            with contextlib.suppress(DuplicateRunError):  # queued meanwhile by a holder
                await asyncio.to_thread(store.enqueue, record)
        return await _ended(store, run_id, stage, stop)


def _find(store: Store, run_id: str) -> RunRecord | None:
    try:
        return store.get_run(run_id)
    except RunNotFoundError:
        return None


def _step_run(
    parent: RunRecord, run_id: str, stage: str, queue: str, events: list[Any]
) -> RunRecord:
    return RunRecord(
        run_id=run_id,
        flow=parent.flow,
        flow_version=parent.flow_version,
        status=RunStatus.SCHEDULED,
        params=dict(parent.params),
        input=pickle.dumps(events),
        input_repr=event_repr(events[0] if len(events) == 1 else events),
        target=parent.target,
        created_at=datetime.now(UTC),
        queue=queue,
        parent=parent.run_id,
        step=stage,
    )


async def _ended(
    store: Store, run_id: str, stage: str, stop: Callable[[], str | None]
) -> StepRunEnded:
    """Wait for step run ``run_id`` to end, or for the workflow run to stop: looked at
    again when the store's runs change (``Store.run_changes``), else after a wait that
    grows (``WAIT_SECONDS``)."""
    wait, longest = WAIT_SECONDS
    changes, topics = store.run_changes(), [run_topic(run_id)]
    while True:
        seen = changes.mark(topics)
        record = await asyncio.to_thread(store.get_run, run_id)
        if record.status.ended:
            return await asyncio.to_thread(_outcome, store, record, stage)
        why = stop()
        if why == "released":
            return StepRunEnded(run_id, None, None, None)
        if why == "cancelled":
            with contextlib.suppress(InvalidTransitionError):  # unless it ended meanwhile
                await asyncio.to_thread(
                    store.transition, run_id, RunStatus.CANCELLED, ended_at=datetime.now(UTC)
                )
            return StepRunEnded(run_id, None, _cancelled(record, stage), None)
        if await changes.wait_async(topics, seen, wait) == seen:
            wait = min(wait * 1.5, longest)


def _outcome(store: Store, record: RunRecord, stage: str) -> StepRunEnded:
    runs = [run for run in store.stage_runs(record.run_id) if run.stage == stage]
    stage_run = max(runs, key=lambda run: run.attempt) if runs else None
    if record.status is RunStatus.SUCCEEDED:
        assert record.output is not None
        (outputs,) = pickle.loads(record.output)
        return StepRunEnded(record.run_id, outputs, None, stage_run)
    error = record.error if record.error is not None else _cancelled(record, stage)
    return StepRunEnded(record.run_id, None, error, stage_run)


def _cancelled(record: RunRecord, stage: str) -> StageError:
    return StageError(
        stage=stage,
        error_type="StepRunCancelled",
        message=f"step run {record.run_id} was cancelled",
        traceback="",
    )


async def step_on_queue(
    store: Store | None,
    parent: RunRecord | None,
    stage: Stage,
    events: list[Any],
    failures: FailureLog,
    stop: Callable[[], str | None],
) -> tuple[dict[str, list[Any]] | None, StageCounters, StageFailedError | None]:
    """Step ``stage`` of workflow run ``parent`` on ``events``, run as a step run on the
    stage's queue: its outputs by port (None if the workflow run left it, see
    ``run_on_queue``), its counters (the step run's stage run's), and the error that
    stopped it, recorded in ``failures`` as the step's own."""
    assert stage.queue is not None
    counters = StageCounters(stage.name, stage.kind)
    try:
        if store is None or parent is None:
            raise ValueError(
                f"stage {stage.name!r} runs on queue {stage.queue!r}, as a run of its own "
                "that a worker of that queue takes from the store: run the workflow with a "
                "store"
            )
        ended = await run_on_queue(store, parent, stage.name, stage.queue, events, stop)
    except ValueError as error:
        return {}, counters, failures.stop(stage.name, error, f"stage {stage.name!r}")
    if ended.left:
        return None, counters, None
    if ended.stage_run is not None:
        for name in COUNTS:
            setattr(counters, name, getattr(ended.stage_run, name))
    if ended.error is None:
        assert ended.outputs is not None
        return ended.outputs, counters, None
    failures.adopt([ended.error], [], ended.error)
    failure = StageFailedError(
        f"stage {stage.name!r} (step run {ended.run_id}): {ended.error.error_type}: "
        f"{ended.error.message}",
        stage=stage.name,
        attempts=ended.error.attempts,
    )
    return {}, counters, failure
