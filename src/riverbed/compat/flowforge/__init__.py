"""FlowForge's API on riverbed: routines with input slots and output events, connected
many to many, executed into a job state that can be saved and recovered
(docs/compat.md).

A FlowForge ``Flow`` is an ``rb.Routines``: each routine's slots are its handlers (called
with FlowForge's flexible signatures and merge strategies), its events what ``emit``
sends; ``execute(entry, params)`` builds the workflow from the entry routine and runs it
with ``rb.run``, and the ``JobState`` it returns is made of the run: its status, each
routine's state (riverbed's counters for its stage beside the routine's own ``stats()``)
and the history of emissions (the run's steps). Given a store (``Flow(store=...)``), the
job is a riverbed run there: listed by ``riverbed runs``, and ``flow.resume(job_state)``
goes on from the first routine not recorded.

Where riverbed does the sound thing rather than the seed's:

- the default error strategy is STOP (routine's handler, else the flow's, else STOP):
  a slot handler's error is not swallowed;
- a routine's call is all or nothing: the events of a call that failed are not sent
  (with CONTINUE or SKIP the flow goes on without them; with RETRY the call is made
  again, without sending its events twice);
- routines run in topological order, one routine's calls as one recorded step, not
  depth first as events are emitted; the connections must form a DAG (a cycle is
  refused, naming its routines);
- CONTINUE and SKIP both map to riverbed's ``OnError.SKIP`` (riverbed's CONTINUE hands
  a stage's input on as its output, which means nothing for a routine); the routine's
  state says "error_continued" or "skipped" as the seed's does;
- ``stats()`` is the routine object's own dictionary, as the seed's: on Ray, or for
  calls replayed by a resume, the calls happen elsewhere; the job state's routine
  states hold riverbed's counters, right on every runner;
- ``pause()`` cancels the job's run in the store (as ``riverbed runs cancel`` does):
  the job is "paused" and resumable, and the routine in flight when it was paused is
  called again on resume (a cancelled run commits nothing more); it needs a store.
"""

from __future__ import annotations

from riverbed.compat.flowforge.flow import Flow
from riverbed.compat.flowforge.jobs import JOB_STATUSES, ExecutionRecord, JobState
from riverbed.compat.flowforge.routines import (
    Connection,
    ErrorHandler,
    ErrorStrategy,
    Event,
    Routine,
    Slot,
)

__all__ = [
    "JOB_STATUSES",
    "Connection",
    "ErrorHandler",
    "ErrorStrategy",
    "Event",
    "ExecutionRecord",
    "Flow",
    "JobState",
    "Routine",
    "Slot",
]
