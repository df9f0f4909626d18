"""The ``riverbed runs``, ``riverbed dead-letters``, ``schedule`` and ``worker`` commands:
the stored runs, their dead letters and the run queue, from a shell.

Every command takes ``--store URL`` (default: $RIVERBED_STORE, else ./.riverbed) and, where
it prints records, ``--json``. Exit codes (``exit_code``, the one place that maps runs'
statuses and riverbed's errors to them): 0 done (for a run: it SUCCEEDED), 1 the run
FAILED, the action was refused, or the store failed; 2 a wrong command or TARGET, 4 no
such run, 130 the run was CANCELLED. A riverbed error is one line on stderr, never a
traceback. Commands that only read open the store read-only and never write to it, nor
unpickle anything it holds.
"""

from __future__ import annotations

import enum
import functools
import json
import pickle
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, NoReturn, ParamSpec, TypeVar

import typer

import riverbed as rb
from riverbed._cli_records import (
    history_lines,
    run_list_lines,
    run_to_dict,
    stage_lines,
    stage_to_dict,
    transition_to_dict,
    when,
)
from riverbed._runtime.result import event_repr
from riverbed._store.url import check_url, resolve_url
from riverbed._stored import (
    StoredFlow,
    flow_of_run,
    interruption,
    is_replay,
    mark_if_replayed,
    replay_params,
    replayable,
    settle_if_dead,
)
from riverbed._targets import load_flow

__all__ = ["Exit", "exit_code", "letters_app", "run_to_dict", "runs_app", "schedule", "worker"]

P = ParamSpec("P")
T = TypeVar("T")

runs_app = typer.Typer(
    help="Stored runs: list, show, resume, re-run, cancel, recover.", no_args_is_help=True
)
letters_app = typer.Typer(help="Dead letters: list them, replay them.", no_args_is_help=True)

StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="Store URL (default: $RIVERBED_STORE, else ./.riverbed).",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
RunArg = Annotated[str, typer.Argument(help="A run id (or a unique prefix of 6+ characters).")]
MaybeTarget = Annotated[
    str | None,
    typer.Argument(
        help="module:attr of the flow (default: the one the run recorded).", show_default=False
    ),
]
Compatible = Annotated[
    bool,
    typer.Option("--compatible", help="Go on although the flow changed since the checkpoint."),
]
Rename = Annotated[
    list[str] | None,
    typer.Option(
        "--rename",
        metavar="OLD=NEW",
        help="A stage renamed since the checkpoint: its state goes to NEW (repeatable).",
        show_default=False,
    ),
]


def _renamed(pairs: list[str] | None) -> dict[str, str]:
    """``--rename OLD=NEW`` options as the ``renamed=`` mapping of a run."""
    renamed = {}
    for pair in pairs or ():
        old, sep, new = pair.partition("=")
        if not (sep and old and new):
            _fail(f"--rename takes OLD=NEW (two stage names), got {pair!r}", 2)
        renamed[old] = new
    return renamed


CheckpointEvery = Annotated[
    float | None, typer.Option(help="Seconds between checkpoints.", show_default=False)
]

# -- exit codes: the one place -------------------------------------------------------------


class Exit(enum.IntEnum):
    """What a ``riverbed`` command exits with."""

    OK = 0
    """Done; for a run, it SUCCEEDED."""
    FAILED = 1
    """The run FAILED, the action was refused, or the store failed (unreachable, damaged)."""
    USAGE = 2
    """The command was wrong: a bad option, TARGET or store URL, or a malformed flow."""
    NOT_FOUND = 4
    """No stored run has this id."""
    CANCELLED = 130
    """The run was CANCELLED (Ctrl-C): 128 + SIGINT, as shells report it."""


_BY_STATUS = {
    rb.RunStatus.SUCCEEDED: Exit.OK,
    rb.RunStatus.FAILED: Exit.FAILED,
    rb.RunStatus.CANCELLED: Exit.CANCELLED,
}
_USAGE_ERRORS = (rb.TargetError, rb.FlowDefinitionError, rb.FlowSerializationError)


def exit_code(outcome: rb.RunStatus | BaseException) -> Exit:
    """The exit code for how a run ended, or for the riverbed error that stopped a
    command. A store that stayed unreachable, a lost lease, a refused resume: 1, the
    command was right; a bad TARGET or flow: 2; an unknown run: 4."""
    if isinstance(outcome, rb.RunStatus):
        return _BY_STATUS.get(outcome, Exit.FAILED)
    if isinstance(outcome, rb.RunNotFoundError):
        return Exit.NOT_FOUND
    if isinstance(outcome, _USAGE_ERRORS):
        return Exit.USAGE
    return Exit.FAILED


def _message(error: rb.RiverbedError) -> str:
    if isinstance(error, rb.InternalError):
        return f"internal error (a bug in riverbed: please report it): {error}"
    if isinstance(error, rb.FlowDefinitionError | rb.FlowSerializationError):
        return f"{type(error).__name__}: {error}"
    return str(error)


def _fail(message: str, code: int = Exit.FAILED) -> NoReturn:
    typer.echo(f"Error: {message}", err=True)
    raise typer.Exit(code)


def _command(function: Callable[P, T]) -> Callable[P, T]:
    """A command whose riverbed errors are one line on stderr and their exit code."""

    @functools.wraps(function)
    def command(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return function(*args, **kwargs)
        except rb.RiverbedError as error:
            _fail(_message(error), exit_code(error))

    return command


# -- the store -------------------------------------------------------------------------------


def _open(url: str | None, *, read_only: bool = False) -> rb.Store:
    """The store; a URL that names no store is a wrong command (2), a store that fails to
    open (unreachable, damaged, not writable) is 1, through ``_command``."""
    resolved = resolve_url(url)
    try:
        check_url(resolved)
    except rb.StoreError as error:
        _fail(str(error), Exit.USAGE)
    return rb.open_store(resolved, read_only=read_only)


def _get(store: rb.Store, run_id: str) -> rb.RunRecord:
    return store.get_run(run_id)


# -- runs list, show -------------------------------------------------------------------------


@runs_app.command("list")
@_command
def list_runs(
    store: StoreOption = None,
    flow: Annotated[str | None, typer.Option(help="Only runs of this flow.")] = None,
    status: Annotated[
        str | None, typer.Option(help="Only runs with this status (e.g. failed).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """List stored runs, newest first. A RUNNING run whose lease expired or whose process
    is gone shows as running*, with why (`riverbed runs recover` resumes it)."""
    wanted = None
    if status is not None:
        try:
            wanted = rb.RunStatus(status.lower())
        except ValueError:
            names = ", ".join(s.value for s in rb.RunStatus)
            _fail(f"no run status {status!r}; the statuses are {names}", Exit.USAGE)
    with _open(store, read_only=True) as opened:
        records = opened.list_runs(flow=flow, status=wanted, limit=limit)
    if as_json:
        typer.echo(json.dumps([run_to_dict(r) for r in records], indent=2))
    elif not records:
        typer.echo("No runs.")
    else:
        typer.echo("\n".join(run_list_lines(records)))


@dataclass
class _Shown:
    """What ``runs show`` prints of one run."""

    record: rb.RunRecord
    stages: list[rb.StageRun]
    attempts: dict[int, list[rb.StageRun]]
    history: list[rb.RunTransition]
    checkpoint: rb.Checkpoint | None
    letters: int


def _read_shown(store: rb.Store, run_id: str) -> _Shown:
    record = _get(store, run_id)
    attempts = {n: store.stage_runs(record.run_id, attempt=n) for n in range(1, record.attempt + 1)}
    return _Shown(
        record=record,
        stages=store.stage_runs(record.run_id),
        attempts={n: stages for n, stages in attempts.items() if stages},
        history=store.history(record.run_id),
        checkpoint=store.latest_checkpoint(record.run_id),
        letters=len(store.dead_letters(run_id=record.run_id)),
    )


@runs_app.command("show")
@_command
def show_run(run_id: RunArg, store: StoreOption = None, as_json: JsonOption = False) -> None:
    """Show one run: its record, its history (every status change), each stage's status
    and counters (per attempt, when it ran several), its last checkpoint."""
    with _open(store, read_only=True) as opened:
        shown = _read_shown(opened, run_id)
    if as_json:
        typer.echo(json.dumps(_shown_to_dict(shown), indent=2))
    else:
        typer.echo("\n".join(_shown_lines(shown)))


def _shown_to_dict(shown: _Shown) -> dict[str, Any]:
    data = run_to_dict(shown.record)
    data["stages"] = [stage_to_dict(s) for s in shown.stages]
    data["attempts"] = [
        {"attempt": n, "stages": [stage_to_dict(s) for s in stages]}
        for n, stages in shown.attempts.items()
    ]
    data["history"] = [transition_to_dict(t) for t in shown.history]
    checkpoint = shown.checkpoint
    data["checkpoint"] = (
        {
            "checkpoint_id": checkpoint.checkpoint_id,
            "created_at": checkpoint.created_at.isoformat(),
            "positions": checkpoint.positions,
        }
        if checkpoint is not None
        else None
    )
    data["dead_letters"] = shown.letters
    return data


def _shown_lines(shown: _Shown) -> list[str]:
    record = shown.record
    data = run_to_dict(record)
    lines = [
        f"run {record.run_id} of flow {record.flow!r}: {record.status.value.upper()}",
        f"  version {record.flow_version}, attempt {record.attempt}",
        f"  started {when(record.started_at)}, ended {when(record.ended_at)}",
    ]
    for label, value in (
        ("target", record.target),
        ("re-run of", record.rerun_of),
        ("input", data["input"]),
        ("output", data["output"]),
    ):
        if value is not None:
            lines.append(f"  {label} {value}")
    if record.worker and record.status is rb.RunStatus.RUNNING:
        why = interruption(record)
        note = f": {why} (`riverbed runs recover` resumes it)" if why else ""
        lines.append(f"  running in {record.worker}, lease until {when(record.lease_until)}{note}")
    if record.error is not None:
        where = f"stage {record.error.stage!r}: " if record.error.stage else ""
        lines.append(f"  error: {where}{record.error.error_type}: {record.error.message}")
    if shown.history:
        lines += ["  history:", *history_lines(shown.history, "    ")]
    if len(shown.attempts) > 1:
        for n, stages in shown.attempts.items():
            lines += [f"  attempt {n}:", *stage_lines(stages, "    ")]
    elif shown.stages:
        lines += stage_lines(shown.stages)
    if shown.checkpoint is not None:
        lines.append(
            f"  last checkpoint #{shown.checkpoint.checkpoint_id} at "
            f"{when(shown.checkpoint.created_at)}: sources at "
            f"{json.dumps(shown.checkpoint.positions)}"
        )
    if shown.letters:
        lines.append(
            f"  {shown.letters} dead letter(s): riverbed dead-letters list --run {record.run_id}"
        )
    return lines


# -- running a stored run again: resume, re-run, recover, replay -------------------------------


@dataclass
class _Outcome:
    """How one run that a command ran ended, for people and as JSON."""

    run_id: str
    status: rb.RunStatus
    report: dict[str, Any]
    text: str


def _again(
    store: rb.Store,
    record: rb.RunRecord,
    target: str | None,
    *,
    new_id: str | None = None,
    **options: Any,
) -> _Outcome:
    """Run ``record``'s flow again: resumed (``new_id`` None: same run, from its last
    checkpoint or step), or re-run as the new run ``new_id``. A replay run replays its
    dead letters again, and marks them replayed once it succeeded."""
    if new_id is None:
        # Settled here, fenced, before the runtime reads the run: of two resumes that both
        # found it dead, the second is then refused instead of taking the first's attempt.
        record = settle_if_dead(store, record)
    stored = flow_of_run(store, record, target)
    if stored.flow.is_workflow:
        outcome = _workflow_again(store, record, stored, new_id)
    else:
        if new_id is None:
            options["resume"] = record.run_id
        else:
            options.update(run_id=new_id, params=record.params)
        if stored.recorded_target is not None:
            options["target"] = stored.recorded_target
        try:
            result = stored.flow.run(store=store, raise_on_failure=False, progress=False, **options)
        except ValueError as error:  # e.g. --rename of a stage that does not exist
            _fail(str(error), 2)
        outcome = _Outcome(result.run_id, result.status, result.to_dict(), result.summary())
    mark_if_replayed(store, stored, outcome.run_id, outcome.status)
    return outcome


def _workflow_again(
    store: rb.Store, record: rb.RunRecord, stored: StoredFlow, new_id: str | None
) -> _Outcome:
    """A workflow run resumed (its recorded steps are replayed), or re-run as a new run on
    the same input (``cache=True`` steps are not recomputed)."""
    if new_id is None:
        result = rb.run(stored.flow, store=store, resume=record.run_id)
    else:
        given = pickle.loads(record.input) if record.input is not None else None
        result = rb.run(
            stored.flow,
            given,
            store=store,
            run_id=new_id,
            target=stored.target,
            rerun_of=record.run_id,
        )
    error = result.error
    report = {
        "run_id": result.run_id,
        "status": result.status.value,
        "output": event_repr(result.output),
        "replayed": list(result.replayed),
        "error": None if error is None else error.message,
    }
    text = f"run {result.run_id}: {result.status.value.upper()}, output {report['output']}"
    if result.replayed:
        text += f" (replayed: {', '.join(result.replayed)})"
    if error is not None:
        text += f"\n  failed at stage {error.stage!r}: {error.error_type}: {error.message}"
    return _Outcome(result.run_id, result.status, report, text)


def _finish(outcome: _Outcome, as_json: bool) -> NoReturn:
    typer.echo(json.dumps(outcome.report, indent=2) if as_json else outcome.text)
    raise typer.Exit(exit_code(outcome.status))


@runs_app.command("resume")
@_command
def resume_run(
    run_id: RunArg,
    target: MaybeTarget = None,
    store: StoreOption = None,
    compatible: Compatible = False,
    rename: Rename = None,
    checkpoint_every: CheckpointEvery = None,
    as_json: JsonOption = False,
) -> None:
    """Resume a crashed, failed or cancelled run from its last checkpoint (same run id)."""
    options: dict[str, Any] = {"compatible": compatible}
    if rename:
        options["renamed"] = _renamed(rename)
    if checkpoint_every is not None:
        options["checkpoint_interval"] = checkpoint_every
    with _open(store) as opened:
        record = _get(opened, run_id)
        if not as_json:
            typer.echo(f"run {record.run_id}")
        outcome = _again(opened, record, target, **options)
    _finish(outcome, as_json)


@runs_app.command("rerun")
@_command
def rerun(
    run_id: RunArg,
    target: MaybeTarget = None,
    store: StoreOption = None,
    compatible: Compatible = False,
    rename: Rename = None,
    from_start: Annotated[
        bool, typer.Option("--from-start", help="Start from the beginning, not the checkpoint.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Run a flow again as a new run, from the last checkpoint of RUN (or from the start)."""
    new_id = uuid.uuid4().hex[:16]
    options: dict[str, Any] = {"compatible": compatible}
    if from_start and rename:
        _fail("--rename says where a checkpoint's state goes: not with --from-start", 2)
    with _open(store) as opened:
        record = _get(opened, run_id)
        if not from_start:
            options["rerun_of"] = record.run_id
            if rename:
                options["renamed"] = _renamed(rename)
        if not as_json:
            typer.echo(f"run {new_id} (re-run of {record.run_id})")
        outcome = _again(opened, record, target, new_id=new_id, **options)
    _finish(outcome, as_json)


@runs_app.command("cancel")
@_command
def cancel_run(run_id: RunArg, store: StoreOption = None, as_json: JsonOption = False) -> None:
    """Cancel a scheduled or running run (a running one stops at its next heartbeat)."""
    with _open(store) as opened:
        record = _get(opened, run_id)
        cancelled = opened.transition(
            record.run_id, rb.RunStatus.CANCELLED, ended_at=datetime.now(UTC)
        )
    if as_json:
        typer.echo(json.dumps(run_to_dict(cancelled), indent=2))
    else:
        typer.echo(f"run {record.run_id}: cancelled (was {record.status.value})")


# -- runs recover ------------------------------------------------------------------------------

_RECOVER_LIMIT = 100_000
"""Interrupted runs looked at per status by one ``runs recover``: all, in practice."""


@dataclass
class _Recovery:
    """What ``runs recover`` did with one interrupted run."""

    record: rb.RunRecord
    action: str
    """"resumed", "queued", "refused" (with ``message``), or "python": no target to load
    its flow from (or a replay, which workers cannot run): resumed by hand."""
    message: str = ""
    outcome: _Outcome | None = None
    ok: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.record.run_id,
            "flow": self.record.flow,
            "action": self.action,
            "status": self.outcome.status.value if self.outcome else None,
            "message": self.message or None,
            "result": self.outcome.report if self.outcome else None,
        }


def _interrupted(store: rb.Store) -> list[rb.RunRecord]:
    """Every interrupted run, oldest first: CRASHED ones, and RUNNING ones whose lease
    expired or whose process is gone, which are recorded CRASHED now (``settle_if_dead``:
    not if a worker took one over meanwhile). Runs still running somewhere are left
    alone."""
    found: list[rb.RunRecord] = []
    for status in (rb.RunStatus.RUNNING, rb.RunStatus.CRASHED):
        found += store.list_runs(status=status, limit=_RECOVER_LIMIT)
    found.sort(key=lambda run: run.created_at)
    crashed = []
    for run in found:
        if run.status is rb.RunStatus.RUNNING and interruption(run) is None:
            continue  # alive, as far as its record says: not this command's to touch
        try:
            crashed.append(settle_if_dead(store, run))
        except rb.RunNotResumableError:
            continue  # another process took it over meanwhile
    return crashed


def _recover(store: rb.Store, run: rb.RunRecord, queue: bool, options: dict[str, Any]) -> _Recovery:
    """Resume one interrupted run here, or put it into the queue (``queue``)."""
    if run.target is None and not is_replay(run):
        how = f'flow.run(resume="{run.run_id}") or rb.run(flow, resume="{run.run_id}")'
        return _Recovery(run, "python", f"started from Python, no target: resume it with {how}")
    if queue and run.target is None:
        how = f"riverbed runs resume {run.run_id}"
        return _Recovery(run, "python", f"a replay of dead letters, not for workers: {how}")
    try:
        if queue:
            store.transition(run.run_id, rb.RunStatus.SCHEDULED, lease_until=None)
            return _Recovery(run, "queued", "in the queue: the next worker resumes it")
        outcome = _again(store, run, None, **options)
    except rb.RiverbedError as error:
        return _Recovery(run, "refused", _message(error), ok=False)
    ok = outcome.status is rb.RunStatus.SUCCEEDED
    return _Recovery(run, "resumed", outcome=outcome, ok=ok)


@runs_app.command("recover")
@_command
def recover_runs(
    store: StoreOption = None,
    queue: Annotated[
        bool, typer.Option("--queue", help="Put them into the queue for workers instead.")
    ] = False,
    checkpoint_every: CheckpointEvery = None,
    as_json: JsonOption = False,
) -> None:
    """Resume every interrupted run (crashed, or running in a process that is gone or
    whose lease expired), here one after the other, or put them into the queue for
    workers with --queue. Exits 0 if all those it resumed succeeded (or were queued)."""
    options: dict[str, Any] = {}
    if checkpoint_every is not None:
        options["checkpoint_interval"] = checkpoint_every
    done: list[_Recovery] = []
    with _open(store) as opened:
        for run in _interrupted(opened):
            if not as_json:
                typer.echo(f"run {run.run_id} of flow {run.flow!r} (attempt {run.attempt}):")
            recovery = _recover(opened, run, queue, options)
            done.append(recovery)
            if not as_json:
                typer.echo(recovery.outcome.text if recovery.outcome else f"  {recovery.message}")
            if recovery.outcome and recovery.outcome.status is rb.RunStatus.CANCELLED:
                break  # Ctrl-C: stop recovering
    _report_recovery(done, as_json)


def _report_recovery(done: list[_Recovery], as_json: bool) -> NoReturn:
    if as_json:
        typer.echo(json.dumps([recovery.to_dict() for recovery in done], indent=2))
    elif not done:
        typer.echo("No interrupted runs.")
    else:
        counts: defaultdict[str, int] = defaultdict(int)
        for recovery in done:
            counts[recovery.action] += 1
        typer.echo("recovered: " + ", ".join(f"{n} {action}" for action, n in counts.items()))
    cancelled = any(r.outcome and r.outcome.status is rb.RunStatus.CANCELLED for r in done)
    if cancelled:
        raise typer.Exit(Exit.CANCELLED)
    raise typer.Exit(Exit.OK if all(recovery.ok for recovery in done) else Exit.FAILED)


# -- dead letters -------------------------------------------------------------------------------


@letters_app.command("list")
@_command
def list_letters(
    store: StoreOption = None,
    run: Annotated[str | None, typer.Option(help="Only this run's.")] = None,
    stage: Annotated[str | None, typer.Option(help="Only this stage's.")] = None,
    replayed: Annotated[
        bool, typer.Option("--replayed/--pending", help="Replayed ones, or those pending.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """List dead letters (by default those not replayed yet), oldest first."""
    with _open(store, read_only=True) as opened:
        run_id = _get(opened, run).run_id if run else None
        letters = opened.dead_letters(run_id=run_id, stage=stage, replayed=replayed)
    if as_json:
        typer.echo(json.dumps([_letter_to_dict(letter) for letter in letters], indent=2))
        return
    if not letters:
        typer.echo("No dead letters.")
        return
    for letter in letters:
        typer.echo(
            f"#{letter.id} run {letter.run_id} stage {letter.stage!r}: {letter.error_type}: "
            f"{letter.message} (event {letter.event_repr[:80]}, {letter.attempts} attempt(s))"
            + ("" if replayable(letter) else " [cannot be replayed: not picklable]")
        )


def _letter_to_dict(letter: rb.DeadLetterRecord) -> dict[str, Any]:
    return {
        "id": letter.id,
        "run_id": letter.run_id,
        "flow": letter.flow,
        "stage": letter.stage,
        "event": letter.event_repr,
        "replayable": replayable(letter),
        "error_type": letter.error_type,
        "message": letter.message,
        "attempts": letter.attempts,
        "at": letter.at.isoformat(),
        "replayed_by": letter.replayed_by,
    }


@letters_app.command("replay")
@_command
def replay_letters(
    target: MaybeTarget = None,
    store: StoreOption = None,
    run: Annotated[str | None, typer.Option(help="Only this run's dead letters.")] = None,
    stage: Annotated[str | None, typer.Option(help="Only this stage's.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Replay pending dead letters into the stage that failed them, as new runs (one per
    run and stage), once their cause is fixed. Letters are marked replayed when their
    replay run SUCCEEDED; those of a replay that failed stay pending (resume it with
    `riverbed runs resume`). Letters whose event could not be pickled cannot be replayed."""
    worst = Exit.OK
    results: list[dict[str, Any]] = []
    with _open(store) as opened:
        run_id = _get(opened, run).run_id if run else None
        letters = opened.dead_letters(run_id=run_id, stage=stage, replayed=False)
        if not letters:
            typer.echo("[]" if as_json else "No dead letters to replay.")
            return
        groups: dict[tuple[str, str], list[rb.DeadLetterRecord]] = defaultdict(list)
        for letter in letters:
            groups[(letter.run_id, letter.stage)].append(letter)
        for (origin, failed_stage), group in groups.items():
            report, code = _replay_group(opened, origin, failed_stage, group, target, as_json)
            results.append(report)
            worst = max(worst, code)
    if as_json:
        typer.echo(json.dumps(results, indent=2))
    raise typer.Exit(worst)


def _replay_group(
    store: rb.Store,
    origin: str,
    stage: str,
    group: list[rb.DeadLetterRecord],
    target: str | None,
    as_json: bool,
) -> tuple[dict[str, Any], Exit]:
    """Replay one run's letters of one stage as a new run; its JSON report and exit code."""
    report: dict[str, Any] = {"run_id": None, "replay_of": origin, "stage": stage}
    unpicklable = [letter for letter in group if not replayable(letter)]
    fit = [letter for letter in group if replayable(letter)]
    code = Exit.OK
    if unpicklable:
        ids = ", ".join(f"#{letter.id}" for letter in unpicklable)
        why = (
            f"{len(unpicklable)} dead letter(s) of run {origin} (stage {stage!r}) cannot be "
            f"replayed: {ids}: their events could not be pickled when they were stored, so "
            "only their repr is kept (`riverbed dead-letters list`); they stay pending"
        )
        report["not_replayable"] = [letter.id for letter in unpicklable]
        typer.echo(f"Error: {why}", err=True)
        code = Exit.FAILED
    if not fit:
        return report, code
    new_id = uuid.uuid4().hex[:16]
    params = replay_params(origin, stage, fit)
    record = _get(store, origin)
    if not as_json:
        typer.echo(
            f"run {new_id}: replaying {len(fit)} event(s) of run {origin} into stage {stage!r}"
        )
    stored = flow_of_run(store, _replay_record(record, new_id, params), target)
    result = stored.flow.run(
        store=store, run_id=new_id, raise_on_failure=False, progress=False, params=params
    )
    mark_if_replayed(store, stored, new_id, result.status)
    report.update(run_id=new_id, result=result.to_dict(), replayed=[x.id for x in fit])
    if not as_json:
        typer.echo(result.summary())
        if result.status is not rb.RunStatus.SUCCEEDED:
            typer.echo(
                f"  the letters stay pending: once the cause is fixed, `riverbed runs resume "
                f"{new_id}` goes on with this replay"
            )
    return report, max(code, exit_code(result.status))


def _replay_record(origin: rb.RunRecord, new_id: str, params: dict[str, Any]) -> rb.RunRecord:
    """The record a replay run will have (enough for ``flow_of_run`` to build its flow)."""
    return rb.RunRecord(
        run_id=new_id,
        flow=origin.flow,
        flow_version=origin.flow_version,
        status=rb.RunStatus.RUNNING,
        params=params,
        created_at=datetime.now(UTC),
    )


# -- the queue ------------------------------------------------------------------------------------


@_command
def schedule(
    target: Annotated[str, typer.Argument(help="module:attr of the flow.", metavar="TARGET")],
    store: StoreOption = None,
    params: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="A parameter NAME=VALUE (VALUE as JSON if it parses)."),
    ] = None,
    input_json: Annotated[
        str | None, typer.Option("--input", help="The run's input, as JSON.", show_default=False)
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Put a run of a flow into the store's queue for a worker to run; print its id."""
    flow = load_flow(target)
    parsed: dict[str, Any] = {}
    for item in params or []:
        name, equals, value = item.partition("=")
        if not equals or not name:
            _fail(f"--param {item!r}: write NAME=VALUE", Exit.USAGE)
        try:
            parsed[name] = json.loads(value)
        except json.JSONDecodeError:
            parsed[name] = value
    given: Any = None
    if input_json is not None:
        try:
            given = json.loads(input_json)
        except json.JSONDecodeError as error:
            _fail(f"--input is not JSON: {error}", Exit.USAGE)
    run_id = uuid.uuid4().hex[:16]
    record = rb.RunRecord(
        run_id=run_id,
        flow=flow.name,
        flow_version=flow.version,
        status=rb.RunStatus.SCHEDULED,
        params=parsed,
        input=pickle.dumps(given) if input_json is not None else None,
        input_repr=event_repr(given) if input_json is not None else None,
        target=target,
        created_at=datetime.now(UTC),
    )
    with _open(store) as opened:
        opened.enqueue(record)
        if as_json:
            typer.echo(json.dumps(run_to_dict(opened.get_run(run_id)), indent=2))
            return
    typer.echo(run_id)


@_command
def worker(
    store: StoreOption = None,
    once: Annotated[bool, typer.Option("--once", help="Run at most one run, then exit.")] = False,
    max_runs: Annotated[
        int | None,
        typer.Option(min=1, help="Exit after this many runs.", show_default=False),
    ] = None,
    idle_exit: Annotated[
        float | None,
        typer.Option(help="Exit after the queue was empty this many seconds.", show_default=False),
    ] = None,
    poll: Annotated[float, typer.Option(help="Seconds between claims when idle.")] = 1.0,
    checkpoint_every: Annotated[
        float | None,
        typer.Option(
            help="Seconds between checkpoints of the runs it runs (default: 5).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Claim runs from the store's queue and run them, one at a time, until stopped.
    SIGTERM or Ctrl-C put the run it holds back into the queue, then it exits."""
    with _open(store) as opened:
        options: dict[str, Any] = {}
        if checkpoint_every is not None:
            options["checkpoint_interval"] = checkpoint_every
        runner = rb.Worker(
            opened,
            poll=poll,
            idle_exit=0 if once else idle_exit,
            max_runs=1 if once else max_runs,
            **options,
        )
        try:
            count = runner.run()
        except KeyboardInterrupt:
            count = len(runner.done)
    typer.echo(f"worker {runner.name}: {count} run(s)")
