"""What riverbed keeps of a run, as frozen records whose field names are the columns that
hold them in the store.

Anything pickled (events, states, outputs) is ``bytes`` here: callers serialize, the store
never unpickles user data. Times are timezone-aware UTC ``datetime``s. Statuses are enums;
strings appear only at the store's (and JSON's) boundary, converted once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from riverbed._records import json
from riverbed._records.kinds import OnError
from riverbed._records.queues import DEFAULT_QUEUE
from riverbed._records.stages import StageRun
from riverbed._records.status import RunStatus

__all__ = [
    "Checkpoint",
    "DeadLetter",
    "DeadLetterRecord",
    "ErrorInfo",
    "Lease",
    "RunRecord",
    "RunTransition",
    "StageError",
    "StepCommit",
    "StepRecord",
    "new_run_id",
]


def new_run_id() -> str:
    """A new run's id, when none is given: 16 random hex digits (a unique prefix of 6 or
    more names the run, as git's short hashes do)."""
    return uuid.uuid4().hex[:16]


@dataclass(frozen=True)
class StageError:
    """One failure, after its retries: the stage it happened in, the exception, and what
    the stage's policy did with it. A run's result keeps every handled one (``errors``)
    and the one that stopped the run (``error``); the store keeps that one in the run's
    row and in its history. ``stage`` is None for a failure no stage is to blame for (a
    worker that could not start the run).

    >>> StageError("parse", "ValueError", "bad line", "Traceback ...").action
    <OnError.STOP: 'stop'>
    """

    stage: str | None
    error_type: str
    message: str
    traceback: str
    attempts: int = 1
    """Calls made on the event, the first included."""
    action: OnError = OnError.STOP
    """What the policy did: stop the run, skip the event, continue, or dead-letter it."""
    event: str | None = None
    """``repr`` of the event, cut to 500 characters; None when no event was to blame."""

    __module__ = "riverbed"

    def to_dict(self) -> dict[str, Any]:
        """The error as JSON-able data (``type``, not ``error_type``, as the CLI prints a
        stored run's error)."""
        return json.error_json(self)


ErrorInfo = StageError
"""The error a run's record keeps: the same record as a result's (its former name, kept
public as ``riverbed.ErrorInfo``)."""


@dataclass(frozen=True, kw_only=True)
class RunRecord:
    """One run of one flow, as stored. Built with keywords; only the first five are needed."""

    run_id: str
    flow: str
    flow_version: str
    status: RunStatus
    params: dict[str, Any] = field(default_factory=dict)
    """The run's parameters; must be JSON-able."""
    input: bytes | None = None
    """The serialized input of a workflow run, if any."""
    output: bytes | None = None
    """The serialized output of a workflow run, once it succeeded."""
    input_repr: str | None = None
    """A readable copy of the input, made when it was stored: listings show it without
    unpickling anything (the store is not trusted with code execution by readers)."""
    output_repr: str | None = None
    """A readable copy of the output, made when it was stored."""
    target: str | None = None
    """``module:attr`` that a worker imports to load the flow of a queued run."""
    created_at: datetime
    started_at: datetime | None = None
    ended_at: datetime | None = None
    error: StageError | None = None
    attempt: int = 1
    """1 for the first execution; +1 on every resume, and on every claim of a run that ran
    before (after a crash, or released by a worker). It is also the run's fencing epoch:
    a process writes to the run only while the run is RUNNING under its worker name and
    the attempt it started (see ``Lease``)."""
    rerun_of: str | None = None
    """The run this one re-runs, if any."""
    worker: str | None = None
    """The process holding the run's lease: ``host:pid:nonce`` (see ``riverbed._runtime
    .identity``); the nonce tells apart processes of cloned machines or containers."""
    lease_until: datetime | None = None
    """When that lease expires unless renewed; after it, any worker may take the run."""
    runner: str | None = None
    """What executed the run's latest attempt: ``local``, or ``ray:ADDRESS`` (``ray:local``
    for a local Ray instance)."""
    queue: str = DEFAULT_QUEUE
    """The queue the run waits in while SCHEDULED: a worker claims only runs of the queues
    it serves (``riverbed.Worker(queues=...)``, ``riverbed worker --queue``), so that runs
    needing what only some machines have go to those machines only."""
    parent: str | None = None
    """For a step run (one step of a workflow run, run on the queue its stage names): the
    workflow run it belongs to; ``step`` is that step's stage."""
    step: str | None = None
    """For a step run: the stage it runs (on the flow its ``target`` loads), once."""

    __module__ = "riverbed"

    def to_dict(self) -> dict[str, Any]:
        """The run as JSON-able data: input and output by their readable copy or size,
        never unpickled."""
        return json.run_json(self)


@dataclass(frozen=True)
class Lease:
    """What entitles one process to write one run: the run is RUNNING, under this
    ``worker``, in this ``attempt`` (the fencing epoch). Every write a run makes carries
    its lease and is checked in the same transaction, so a process whose run was
    cancelled or taken over (its lease expired) can change nothing (``LeaseLostError``).

    >>> Lease("0f3a9c", "host:42:ab12", 2).attempt
    2
    """

    run_id: str
    worker: str
    attempt: int

    __module__ = "riverbed"

    @classmethod
    def of(cls, run: RunRecord) -> Lease:
        """The lease of ``run`` as stored (RUNNING, with its worker)."""
        if run.worker is None:
            raise ValueError(f"run {run.run_id} has no worker, so no lease")
        return cls(run.run_id, run.worker, run.attempt)


@dataclass(frozen=True)
class RunTransition:
    """One entry of a run's history: the run reached ``status`` at ``at``, in attempt
    ``attempt``, under ``worker``; ``error`` when it FAILED. The store appends one for
    every status change (creation included) and never changes them."""

    run_id: str
    attempt: int
    status: RunStatus
    at: datetime
    worker: str | None = None
    error: StageError | None = None

    __module__ = "riverbed"

    def to_dict(self) -> dict[str, Any]:
        """The history entry as JSON-able data."""
        return json.transition_json(self)


@dataclass(frozen=True)
class Checkpoint:
    """A consistent cut of a run: where every source stood and every stage's state.

    ``checkpoint_id`` counts 1, 2, 3... per run. ``positions`` is per source, per partition,
    and JSON-able; ``states`` is per stage, serialized by the caller. A stage whose state
    is a dict of per-key states is in ``keyed`` instead: one row per key, so that a
    checkpoint writes only the keys whose state changed since the run's previous one."""

    run_id: str
    checkpoint_id: int
    flow_version: str
    positions: dict[str, dict[str, Any]]
    states: dict[str, bytes]
    created_at: datetime
    keyed: dict[str, dict[bytes, bytes | None]] = field(default_factory=dict)
    """Per stage whose state is kept per key: each key's serialized state, by serialized
    key; None marks a key whose state was removed, and the empty key holds a whole state
    (a serialized dict) that the other rows change. Committed: the keys that changed since
    the run's previous checkpoint (every stage it keeps per key is named, with no rows if
    none changed). Read back: every row the stage has, oldest first (applied in order,
    they give the state)."""
    complete: frozenset[str] = frozenset()
    """Stages of ``keyed`` whose rows are the whole state, not only what changed: committed,
    they replace every row the stage had; read back, every keyed stage is complete."""
    counters: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per stage: its counters at the cut (a resumed run counts on from them)."""
    finished: tuple[str, ...] = ()
    """Chains that had emitted their end-of-stream output (folds' totals, processors'
    ``finish``): restored, they do not emit it again."""
    stage_versions: dict[str, str] = field(default_factory=dict)
    """Per stage: its version when the checkpoint was taken (a compatible resume checks
    which stages changed)."""
    ended: bool = False
    """True for the last checkpoint of a run that had drained every source."""

    __module__ = "riverbed"

    def to_dict(self) -> dict[str, Any]:
        """The checkpoint's number, time and positions as JSON-able data (not its
        states)."""
        return json.checkpoint_json(self)


@dataclass(frozen=True)
class DeadLetterRecord:
    """An event a stage could not process, kept with its error so it can be replayed.

    ``id`` is ``None`` until stored; the store assigns it. ``event`` is serialized by the
    caller; ``event_repr`` is a readable copy for people and dashboards."""

    id: int | None
    run_id: str
    flow: str
    stage: str
    event: bytes
    event_repr: str
    error_type: str
    message: str
    traceback: str
    attempts: int
    at: datetime
    replayed_by: str | None = None
    """The run that replayed it, once replayed."""

    __module__ = "riverbed"

    @property
    def replayable(self) -> bool:
        """False for a letter whose event could not be pickled when it was stored: it is
        kept by its repr only, and cannot be fed to a stage again."""
        return bool(self.event)

    def to_dict(self) -> dict[str, Any]:
        """The dead letter as JSON-able data: its event by its repr, never unpickled."""
        return json.dead_letter_json(self)


@dataclass(frozen=True)
class DeadLetter:
    """A dead letter as the run that kept it holds it (``RunResult.dead_letters``): its
    record, and the event itself, the very object the stage failed on.

    A thin view, not a second record: every field but ``event`` is the record's
    (``stage``, ``error_type``, ``message``, ``traceback``, ``attempts``, ``at``...). It
    exists because only the run that failed the event holds the object: the record keeps
    it pickled (or, when it cannot be pickled, by its repr only), and whoever reads a
    store gets its repr, never an unpickled object."""

    record: DeadLetterRecord
    event: Any
    """The event, as the stage received it."""

    __module__ = "riverbed"

    @property
    def stage(self) -> str:
        """The stage that could not process the event."""
        return self.record.stage

    @property
    def error_type(self) -> str:
        """The qualified name of the exception's type."""
        return self.record.error_type

    @property
    def message(self) -> str:
        """The exception's message."""
        return self.record.message

    @property
    def traceback(self) -> str:
        """The traceback, from the user's code on."""
        return self.record.traceback

    @property
    def attempts(self) -> int:
        """Calls made on the event, the first included."""
        return self.record.attempts

    @property
    def at(self) -> datetime:
        """When the event was given up on (UTC)."""
        return self.record.at


@dataclass(frozen=True)
class StepRecord:
    """One completed step of a durable workflow run: what stage ``stage`` returned as the
    run's step number ``seq`` (0, 1, 2... in order of execution)."""

    run_id: str
    seq: int
    stage: str
    output: bytes
    at: datetime

    __module__ = "riverbed"


@dataclass(frozen=True)
class StepCommit:
    """What one workflow step writes, committed in one transaction by
    ``Store.commit_steps``: the run's creation with its first step, its final status with
    its last, so that a three-step workflow costs three commits, not five.

    In order: ``run`` is created (if given), ``step`` inserted and ``stage_run`` upserted
    (if given), then the run moves to ``status`` (if given, under ``check_transition``'s
    rules) with ``fields`` set (any RunRecord field but run_id and status).

    >>> StepCommit(run_id="r1", status=RunStatus.FAILED).step is None
    True
    """

    run_id: str
    step: StepRecord | None = None
    stage_run: StageRun | None = None
    run: RunRecord | None = None
    status: RunStatus | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    lease: Lease | None = None
    """The lease the commit is made under: unless the run is still RUNNING under it,
    nothing of the commit is kept (``LeaseLostError``). None for a run created here."""

    __module__ = "riverbed"
