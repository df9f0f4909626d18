"""Where a run starts again: the checks that it may (same flow, not running elsewhere,
not succeeded, a flow version that fits its checkpoint), the point it starts from (its
record and newest checkpoint), taking it back as this process's next attempt, and the
state of the checkpoint handed to the stages of the flow as it is now (renamed stages
included). Shared by every runner and by streams and workflows alike."""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from riverbed._errors import (
    FlowVersionError,
    InvalidTransitionError,
    LeaseLostError,
    RunNotResumableError,
)
from riverbed._model.serialize import stage_version
from riverbed._model.sinks import is_transactional_sink
from riverbed._records import Checkpoint, Lease, RunRecord, RunStatus
from riverbed._runtime.identity import WORKER, process_gone
from riverbed._runtime.keyed import apply_rows
from riverbed._runtime.lease import LEASE_SECONDS
from riverbed._store.protocol import Store

if TYPE_CHECKING:
    from riverbed._model.flow import Flow

__all__ = [
    "RestorePoint",
    "Restored",
    "check_same_flow",
    "crashed_if_dead",
    "rerun_point",
    "restore_point",
    "restored",
    "take_back",
]


def stage_versions(flow: Flow) -> dict[str, str]:
    """Every stage's version, by name."""
    return {stage.name: stage_version(stage) for stage in flow.stages}


@dataclass(frozen=True)
class RestorePoint:
    """Where a resumed run starts: its record and its newest checkpoint (None: the
    beginning)."""

    run: RunRecord
    checkpoint: Checkpoint | None
    rerun: bool = False
    """True: a new run starts from ``run``'s checkpoint (a re-run), which is not its own."""

    def states(self) -> dict[str, Any]:
        """Per stage, the unpickled state of the checkpoint (kept whole or per key)."""
        if self.checkpoint is None:
            return {}
        states = {name: pickle.loads(data) for name, data in self.checkpoint.states.items()}
        for name, rows in self.checkpoint.keyed.items():
            states[name] = apply_rows({}, rows)
        return states


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
    resume), or a queued one as its first. Of two processes resuming one run at once,
    the second is refused with ``RunNotResumableError`` saying who won."""
    # A queued run that never started (SCHEDULED, no started_at) starts its first
    # attempt, as a worker's claim would.
    fresh = run.started_at is None
    started: dict[str, Any] = {"started_at": datetime.now(UTC)} if fresh else {}
    try:
        return store.transition(
            run.run_id,
            RunStatus.RUNNING,
            attempt=run.attempt + (0 if fresh else 1),
            **started,
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
    return RestorePoint(run, _checked(store, run, flow, compatible=compatible), rerun=True)


def _checked(store: Store, run: RunRecord, flow: Flow, *, compatible: bool) -> Checkpoint | None:
    """The run's last checkpoint, if the flow's version still fits it."""
    checkpoint = store.latest_checkpoint(run.run_id)
    if checkpoint is not None and checkpoint.flow_version != flow.version and not compatible:
        changed = changed_stages(checkpoint.stage_versions, flow)
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


@dataclass
class Restored:
    """A checkpoint's content, under the names of the stages of the flow as it is now."""

    states: dict[str, Any] = field(default_factory=dict)
    """Per stateful stage: the state to start from."""
    positions: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per source, per partition: where to read on from."""
    counters: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    """Per stage: the counters to count on from."""
    finished: set[str] = field(default_factory=set)
    """Chains that had emitted their end-of-stream output already."""
    prepared: dict[str, tuple[int, Any, str]] = field(default_factory=dict)
    """Per transactional sink: (checkpoint id, its prepared writes, the key they were
    committed under), to commit again (idempotent: it may have happened before)."""
    rewrite: set[str] = field(default_factory=set)
    """Stages whose state the run's first checkpoint must write whole if it keeps them
    per key: their state did not come from this run's rows under this name (a re-run, a
    renamed stage, a stage kept whole before)."""
    ended: bool = False
    """True if the run had drained when the checkpoint was taken: nothing is left to do."""
    last_id: int = 0
    """The id of the checkpoint restored from (0: none); the next one counts on."""


def restored(
    restore: RestorePoint | None,
    flow: Flow,
    stateful: set[str],
    renamed: Mapping[str, str],
) -> Restored:
    """What ``restore``'s checkpoint gives the stages of ``flow`` (of which ``stateful``
    keep state), each under its name in this flow (see ``_new_names``)."""
    if restore is None or restore.checkpoint is None:
        return Restored()
    checkpoint = restore.checkpoint
    new = _new_names(restore, flow, stateful, renamed)
    transactional = {s.name for s in flow.stages if is_transactional_sink(s)}
    out = Restored(ended=checkpoint.ended, last_id=checkpoint.checkpoint_id)
    for old, value in restore.states().items():
        name = new[old]
        if name in transactional:
            # Committed again under the key it had (its run's, its sink's old name), which
            # the sink may have seen already: never under a second key.
            key = f"{restore.run.run_id}/{old}/{checkpoint.checkpoint_id}"
            out.prepared[name] = (checkpoint.checkpoint_id, value, key)
        else:
            out.states[name] = value
            if restore.rerun or old != name or old not in checkpoint.keyed:
                out.rewrite.add(name)
    out.positions = {new[source]: dict(parts) for source, parts in checkpoint.positions.items()}
    for old, values in checkpoint.counters.items():
        out.counters[renamed.get(old, old)] = values
    out.finished = {renamed.get(name, name) for name in checkpoint.finished}
    return out


def _new_names(
    restore: RestorePoint, flow: Flow, stateful: set[str], renamed: Mapping[str, str]
) -> dict[str, str]:
    """Per stage whose state or positions the checkpoint holds, the stage of this flow
    that takes them: the one of the same name, or the one ``renamed`` maps it to. A
    changed flow (``compatible``) must not drop state silently: raises
    ``FlowVersionError`` naming the stages whose state no stage would take."""
    checkpoint = restore.checkpoint
    assert checkpoint is not None
    _check_renamed(restore, flow, renamed)
    keeps_state = stateful | {s.name for s in flow.stages if is_transactional_sink(s)}
    sources = {s.name for s in flow.stages if s.is_source}
    stages = [*checkpoint.states, *checkpoint.keyed]
    held = [(name, keeps_state) for name in stages]
    held += [(name, sources) for name in checkpoint.positions]
    new: dict[str, str] = {}
    left = []
    for old, takers in held:
        name = renamed.get(old, old)
        if name not in takers:
            left.append(old)
        elif name in new.values():
            raise ValueError(
                f"renamed= gives stage {name!r} the state of two stages of run "
                f"{restore.run.run_id}: map only one of them to it"
            )
        new[old] = name
    if left:
        raise FlowVersionError(
            _left_behind(restore.run.run_id, flow.name, left),
            run_id=restore.run.run_id,
            changed=tuple(left),
        )
    return new


def _check_renamed(restore: RestorePoint, flow: Flow, renamed: Mapping[str, str]) -> None:
    """``renamed`` maps stages the checkpoint knows to stages this flow has."""
    checkpoint = restore.checkpoint
    assert checkpoint is not None
    known = {
        *checkpoint.counters,
        *checkpoint.states,
        *checkpoint.keyed,
        *checkpoint.positions,
    }
    stages = {stage.name for stage in flow.stages}
    for old, new in renamed.items():
        if old not in known:
            raise ValueError(
                f"renamed= maps stage {old!r}, which the checkpoint of run "
                f"{restore.run.run_id} does not know (it knows {', '.join(sorted(known))})"
            )
        if new not in stages:
            raise ValueError(
                f"renamed= maps stage {old!r} to {new!r}, but flow {flow.name!r} has no "
                f"stage {new!r}"
            )


def _left_behind(run_id: str, flow: str, stages: list[str]) -> str:
    """Why a resume that would drop the state of ``stages`` is refused, and what to do."""
    names = ", ".join(repr(name) for name in stages)
    return (
        f"the checkpoint of run {run_id} holds the state (or source positions) of "
        f"{names}, which flow {flow!r} no longer has under that name, or which no longer "
        "keeps state: going on would lose it. If a stage was renamed, say where its state "
        f"goes: renamed={{{stages[0]!r}: 'NEW_NAME'}} (--rename {stages[0]}=NEW_NAME); to "
        "go without that state, re-run from the start (riverbed runs rerun RUN --from-start)"
    )
