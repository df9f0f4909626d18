"""A run in the store: its record from start to end, its checkpoints, its dead letters, its
lease, and the point a resumed run starts from. Shared by every runner.

Everything a runner keeps of a run goes through ``RunRecorder``; the store is reached only
through the ``Store`` protocol, so SQLite and PostgreSQL behave alike.
"""

from __future__ import annotations

import json
import logging
import pickle
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from riverbed._errors import (
    FlowVersionError,
    InvalidTransitionError,
    LeaseLostError,
    RunNotResumableError,
)
from riverbed._model.serialize import stage_version
from riverbed._records import (
    Checkpoint,
    DeadLetterRecord,
    ErrorInfo,
    Lease,
    RunRecord,
    RunStatus,
    StageRun,
    StageStatus,
)
from riverbed._runtime.identity import WORKER, process_gone
from riverbed._runtime.lease import LEASE_SECONDS, Keeping, keep
from riverbed._runtime.result import COUNTS, event_repr
from riverbed._store import open_store
from riverbed._store.protocol import Store

if TYPE_CHECKING:
    import asyncio

    from riverbed._model.flow import Flow
    from riverbed._runtime.result import DeadLetter, RunResult, StageError

__all__ = ["LEASE_SECONDS", "WORKER", "RestorePoint", "RunRecorder", "resolve_store"]

logger = logging.getLogger("riverbed")

META_KEY = "riverbed:meta"
"""The entry of ``Checkpoint.states`` that holds the checkpoint's own data (counters,
finished chains, stage versions, whether the run had drained), as JSON. A stage name
cannot contain ':', so it never collides with a stage's state."""


def resolve_store(store: Store | str | bool | None) -> Store | None:
    """The store a run records into: a ``Store``, a URL, None for the default store
    (RIVERBED_STORE, else ``./.riverbed``), or False for none."""
    if store is False:
        return None
    if store is None or store is True:
        return open_store(None)
    if isinstance(store, str):
        return open_store(store)
    return store


def stage_versions(flow: Flow) -> dict[str, str]:
    """Every stage's version, by name."""
    return {stage.name: stage_version(stage) for stage in flow.stages}


@dataclass(frozen=True)
class RestorePoint:
    """Where a resumed run starts: its record and its newest checkpoint (None: the
    beginning)."""

    run: RunRecord
    checkpoint: Checkpoint | None

    def states(self) -> dict[str, Any]:
        """Per stage, the unpickled state of the checkpoint."""
        if self.checkpoint is None:
            return {}
        return {
            name: pickle.loads(data)
            for name, data in self.checkpoint.states.items()
            if name != META_KEY
        }

    @property
    def meta(self) -> Mapping[str, Any]:
        """Counters, finished chains and stage versions kept with the checkpoint."""
        return checkpoint_meta(self.checkpoint)


def checkpoint_meta(checkpoint: Checkpoint | None) -> dict[str, Any]:
    """The data a checkpoint keeps about itself (see ``META_KEY``)."""
    if checkpoint is None or META_KEY not in checkpoint.states:
        return {}
    return json.loads(checkpoint.states[META_KEY])  # type: ignore[no-any-return]


def restore_point(
    store: Store, run_id: str, flow: Flow, *, compatible: bool, claimed: bool = False
) -> RestorePoint:
    """The point to resume run ``run_id`` of ``flow`` from, after checking that it may be
    resumed: it is not running elsewhere (unless this process ``claimed`` it from the
    queue), it has not succeeded, and its flow has not changed (unless ``compatible``)."""
    run = store.get_run(run_id)
    if claimed:
        return RestorePoint(run, _checked(store, run, flow, compatible=compatible))
    check_same_flow(run, flow.name)
    if run.status is RunStatus.SUCCEEDED:
        raise RunNotResumableError(
            f"run {run.run_id} already succeeded; there is nothing to resume (start a new "
            "run, or `riverbed runs rerun` it)",
            run_id=run.run_id,
        )
    run = crashed_if_dead(store, run)
    return RestorePoint(run, _checked(store, run, flow, compatible=compatible))


def take_back(store: Store, run: RunRecord, flow_version: str) -> RunRecord:
    """Make the stopped ``run`` RUNNING again under this process, as its next attempt (a
    resume). Of two processes resuming one run at once, the second is refused with
    ``RunNotResumableError`` saying who won."""
    try:
        return store.transition(
            run.run_id,
            RunStatus.RUNNING,
            attempt=run.attempt + 1,
            worker=WORKER,
            lease_until=datetime.now(UTC) + timedelta(seconds=LEASE_SECONDS),
            flow_version=flow_version,
            ended_at=None,
            error=None,
        )
    except InvalidTransitionError:
        raise _taken(store, run.run_id) from None


def _taken(store: Store, run_id: str) -> RunNotResumableError:
    """The refusal for a resume that another process won."""
    now = store.get_run(run_id)
    if now.status is RunStatus.RUNNING:
        why = f"another process ({now.worker}) resumed it just now (attempt {now.attempt})"
    else:
        why = f"it is {now.status.value} now"
    return RunNotResumableError(f"run {run_id} cannot be resumed: {why}", run_id=run_id)


def lease_of(run: RunRecord) -> Lease:
    """The lease under which this process writes ``run`` (RUNNING under ``WORKER``)."""
    return Lease(run.run_id, WORKER, run.attempt)


def check_same_flow(run: RunRecord, flow: str) -> None:
    """A run is resumed or re-run by the flow it ran, or not at all."""
    if run.flow != flow:
        raise RunNotResumableError(
            f"run {run.run_id} is of flow {run.flow!r}, not {flow!r}: load the flow it ran",
            run_id=run.run_id,
        )


def crashed_if_dead(store: Store, run: RunRecord) -> RunRecord:
    """A RUNNING run whose process is gone (its lease expired, or its process on this
    machine is known to have ended) is recorded CRASHED and returned so; one that may
    still be running elsewhere cannot be resumed (RunNotResumableError). Runs in other
    statuses come back as they are."""
    if run.status is not RunStatus.RUNNING:
        return run
    expired = run.lease_until is None or run.lease_until < datetime.now(UTC)
    if not expired and not process_gone(run.worker):
        raise RunNotResumableError(
            f"run {run.run_id} is running in {run.worker} (lease until "
            f"{run.lease_until:%H:%M:%S}); resume it once that process has stopped or its "
            "lease has expired",
            run_id=run.run_id,
        )
    # Fenced by the lease read above: if another process took the run meanwhile (its new
    # attempt), this does not record that fresh attempt CRASHED.
    lease = Lease.of(run) if run.worker is not None else None
    try:
        return store.transition(
            run.run_id, RunStatus.CRASHED, lease=lease, ended_at=datetime.now(UTC)
        )
    except (InvalidTransitionError, LeaseLostError):  # another process got there first
        now = store.get_run(run.run_id)
        if now.status is RunStatus.CRASHED:
            return now
        raise _taken(store, run.run_id) from None


def rerun_point(store: Store, run_id: str, flow: Flow, *, compatible: bool) -> RestorePoint:
    """The point a re-run of run ``run_id`` starts from: that run's last checkpoint (a
    re-run is a new run; the old one stays as it ended)."""
    run = store.get_run(run_id)
    check_same_flow(run, flow.name)
    return RestorePoint(run, _checked(store, run, flow, compatible=compatible))


def _checked(store: Store, run: RunRecord, flow: Flow, *, compatible: bool) -> Checkpoint | None:
    """The run's last checkpoint, if the flow's version still fits it."""
    checkpoint = store.latest_checkpoint(run.run_id)
    if checkpoint is not None and checkpoint.flow_version != flow.version and not compatible:
        changed = changed_stages(checkpoint_meta(checkpoint).get("stage_versions", {}), flow)
        raise FlowVersionError(
            f"run {run.run_id} was checkpointed by flow {flow.name!r} version "
            f"{checkpoint.flow_version}, but the flow is now version {flow.version}: "
            f"changed stages: {', '.join(changed) or '(their wiring)'}. If the new code can "
            "carry on from the old state, resume with compatible=True (--compatible)",
            run_id=run.run_id,
            changed=tuple(changed),
        )
    return checkpoint


def changed_stages(old: Mapping[str, str], flow: Flow) -> list[str]:
    """The stages added, removed or changed between ``old`` versions and ``flow``."""
    new = stage_versions(flow)
    added = [f"{name} (added)" for name in new if name not in old]
    removed = [f"{name} (removed)" for name in old if name not in new]
    changed = [name for name in new if name in old and old[name] != new[name]]
    return changed + added + removed


class RunRecorder:
    """Writes one run's record, checkpoints and dead letters to the store, every write
    fenced by the run's lease (see ``Lease``)."""

    def __init__(
        self,
        store: Store,
        flow: Flow,
        run_id: str,
        *,
        params: Mapping[str, Any] | None = None,
        restore: RestorePoint | None = None,
        mode: str = "new",
        target: str | None = None,
    ) -> None:
        self.store = store
        self.flow = flow
        self.run_id = run_id
        self.params = dict(params or {})
        self.restore = restore
        self.mode = mode
        """How the run starts: "new", "resume" (the restored run goes on), "rerun" (a new
        run from the restored run's checkpoint) or "claimed" (taken from the queue, its
        record already RUNNING under this process)."""
        self.target = target
        self.versions = stage_versions(flow)
        self.lease: Lease | None = None
        """The lease this process writes the run under, once ``start`` recorded it."""
        self._keeper: Keeping | None = None
        self._dead_letters_saved = 0

    def start(self) -> RunRecord:
        """Record the run as RUNNING under this process's lease (new, or resumed)."""
        if self.mode == "claimed":
            record = self.store.get_run(self.run_id)
        elif self.mode == "resume":
            assert self.restore is not None
            record = take_back(self.store, self.restore.run, self.flow.version)
        else:
            now = datetime.now(UTC)
            record = RunRecord(
                run_id=self.run_id,
                flow=self.flow.name,
                flow_version=self.flow.version,
                status=RunStatus.RUNNING,
                params=self.params,
                target=self.target,
                created_at=now,
                started_at=now,
                attempt=1,
                rerun_of=self.restore.run.run_id if self.restore is not None else None,
                worker=WORKER,
                lease_until=now + timedelta(seconds=LEASE_SECONDS),
            )
            self.store.create_run(record)
        self.lease = Lease.of(record)
        return record

    def keep_lease(self, on_lost: Callable[[], None], loop: asyncio.AbstractEventLoop) -> None:
        """Renew the run's lease from a thread of its own until ``stop_keeping``;
        ``on_lost`` on ``loop`` once the store says the run is no longer this process's
        (``riverbed runs cancel``, or a takeover)."""
        assert self.lease is not None
        self._keeper = keep(self.store, self.lease, on_lost=on_lost, loop=loop)

    def stop_keeping(self) -> None:
        """Stop renewing the lease."""
        if self._keeper is not None:
            self._keeper.stop()

    def checkpoint(
        self,
        checkpoint_id: int,
        positions: dict[str, dict[str, Any]],
        states: dict[str, bytes],
        counters: Mapping[str, Mapping[str, Any]],
        finished: Iterable[str],
        dead_letters: list[DeadLetter],
        *,
        ended: bool = False,
    ) -> None:
        """Commit one checkpoint, with the stage runs at its cut and the dead letters
        since the last one, in one transaction fenced by the run's lease."""
        meta = {
            "counters": {name: dict(values) for name, values in counters.items()},
            "finished": sorted(set(finished)),
            "stage_versions": self.versions,
            "ended": ended,
        }
        checkpoint = Checkpoint(
            run_id=self.run_id,
            checkpoint_id=checkpoint_id,
            flow_version=self.flow.version,
            positions=positions,
            states={**states, META_KEY: json.dumps(meta).encode()},
            created_at=datetime.now(UTC),
        )
        stage_runs = [
            self._stage_run(name, values, StageStatus.RUNNING) for name, values in counters.items()
        ]
        letters = self._new_dead_letters(dead_letters)
        self.store.commit_checkpoint(checkpoint, stage_runs, letters, lease=self.lease)

    def finish(self, result: RunResult, *, release: bool = False) -> RunRecord:
        """Record how the run ended (its stage runs, its last dead letters, its status),
        or with ``release`` hand it back to the queue, resumable from its last checkpoint.
        Returns the run as stored: CANCELLED if it was cancelled from outside meanwhile.
        ``LeaseLostError`` if another process took the run over."""
        self.stop_keeping()
        lease = self.lease
        assert lease is not None
        try:
            self._save_ending(result, lease)
            if release:
                self.store.release(lease)
                return self.store.get_run(self.run_id)
            return self.store.transition(
                self.run_id,
                result.status,
                lease=lease,
                ended_at=result.ended_at,
                error=error_info(result.error),
                lease_until=None,
            )
        except LeaseLostError as lost:
            if lost.status is RunStatus.CANCELLED:
                return self.store.get_run(self.run_id)  # cancelled: the record says so
            raise

    def _save_ending(self, result: RunResult, lease: Lease) -> None:
        status = {
            "succeeded": StageStatus.SUCCEEDED,
            "failed": StageStatus.FAILED,
            "cancelled": StageStatus.CANCELLED,
            "scheduled": StageStatus.CANCELLED,
        }[result.status.value]
        failed_stage = result.error.stage if result.error is not None else None
        stage_runs = [
            self._stage_run(
                name,
                {name: getattr(stats, name) for name in COUNTS},
                StageStatus.FAILED
                if name == failed_stage
                else (StageStatus.SUCCEEDED if status is StageStatus.FAILED else status),
            )
            for name, stats in result.stages.items()
        ]
        self.store.save_stage_runs(self.run_id, stage_runs, lease=lease)
        letters = self._new_dead_letters(list(result.dead_letters))
        if letters:
            self.store.add_dead_letters(letters, lease=lease)

    def _stage_run(self, name: str, values: Mapping[str, Any], status: StageStatus) -> StageRun:
        kind = self.flow.stage(name).kind.value
        attempt = self.lease.attempt if self.lease is not None else 1
        return stage_run(self.run_id, name, kind, values, status, attempt=attempt)

    def _new_dead_letters(self, letters: list[DeadLetter]) -> list[DeadLetterRecord]:
        """The dead letters not saved yet, as records (each saved once)."""
        fresh = letters[self._dead_letters_saved :]
        self._dead_letters_saved = len(letters)
        return dead_letter_records(self.run_id, self.flow.name, fresh)


def dead_letter_records(
    run_id: str, flow: str, letters: Iterable[DeadLetter]
) -> list[DeadLetterRecord]:
    """Dead letters of a run as the store keeps them: the event pickled (empty when it
    cannot be: kept by its repr only, and then not replayable)."""
    return [
        DeadLetterRecord(
            id=None,
            run_id=run_id,
            flow=flow,
            stage=letter.stage,
            event=_pickle_event(letter.event),
            event_repr=event_repr(letter.event),
            error_type=letter.error_type,
            message=letter.message,
            traceback=letter.traceback,
            attempts=letter.attempts,
            at=letter.at,
            replayed_by=None,
        )
        for letter in letters
    ]


def stage_run(
    run_id: str,
    stage: str,
    kind: str,
    values: Mapping[str, Any],
    status: StageStatus,
    *,
    started_at: datetime | None = None,
    ended_at: datetime | None = None,
    attempt: int = 1,
) -> StageRun:
    """A stage's record, in ``attempt``, from its counter ``values``
    (``StageCounters.values()``)."""
    return StageRun(
        run_id=run_id,
        stage=stage,
        kind=kind,
        status=status,
        events_in=values.get("events_in", 0),
        events_out=values.get("events_out", 0),
        errors=values.get("errors", 0),
        retries=values.get("retries", 0),
        skipped=values.get("skipped", 0),
        dead_lettered=values.get("dead_lettered", 0),
        dropped=values.get("dropped", 0),
        seconds=values.get("seconds", 0.0),
        started_at=started_at,
        ended_at=ended_at,
        attempt=attempt,
    )


def error_info(error: StageError | None) -> ErrorInfo | None:
    """A run's stopping error as its record keeps it."""
    if error is None:
        return None
    return ErrorInfo(
        stage=error.stage,
        error_type=error.error_type,
        message=error.message,
        traceback=error.traceback,
    )


def _pickle_event(event: Any) -> bytes:
    try:
        return pickle.dumps(event, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # kept by repr only; replay is then impossible, and says so
        return b""
