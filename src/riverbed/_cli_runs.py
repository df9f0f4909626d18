"""The ``riverbed runs``, ``riverbed dead-letters``, ``schedule`` and ``worker`` commands:
the stored runs, their dead letters and the run queue, from a shell.

Every command takes ``--store URL`` (default: $RIVERBED_STORE, else ./.riverbed) and, where
it prints records, ``--json``. Exit codes: 0 done (for a run: it SUCCEEDED), 1 the run
FAILED or the action was refused (e.g. cancelling a finished run), 2 a wrong command,
4 no such run, 130 the run was CANCELLED. Uses only what ``riverbed`` exports.
"""

from __future__ import annotations

import json
import pickle
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from typing import Annotated, Any, NoReturn

import typer

import riverbed as rb
from riverbed._targets import load_flow

NOT_FOUND = 4

runs_app = typer.Typer(
    help="Stored runs: list, show, resume, re-run, cancel.", no_args_is_help=True
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


_EXIT = {rb.RunStatus.SUCCEEDED: 0, rb.RunStatus.FAILED: 1, rb.RunStatus.CANCELLED: 130}


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"Error: {message}", err=True)
    raise typer.Exit(code)


def _open(url: str | None) -> rb.Store:
    try:
        return rb.open_store(url)
    except rb.StoreError as error:
        _fail(str(error), 2)


def _get(store: rb.Store, run_id: str) -> rb.RunRecord:
    try:
        return store.get_run(run_id)
    except rb.RunNotFoundError as error:
        _fail(str(error), NOT_FOUND)


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def run_to_dict(record: rb.RunRecord) -> dict[str, Any]:
    """A run record as JSON-able data (input and output by their repr)."""
    data: dict[str, Any] = {
        "run_id": record.run_id,
        "flow": record.flow,
        "flow_version": record.flow_version,
        "status": record.status.value,
        "attempt": record.attempt,
        "params": record.params,
        "target": record.target,
        "created_at": record.created_at.isoformat(),
        "started_at": record.started_at.isoformat() if record.started_at else None,
        "ended_at": record.ended_at.isoformat() if record.ended_at else None,
        "rerun_of": record.rerun_of,
        "worker": record.worker,
        "lease_until": record.lease_until.isoformat() if record.lease_until else None,
        "error": None,
    }
    if record.error is not None:
        data["error"] = {
            "stage": record.error.stage,
            "type": record.error.error_type,
            "message": record.error.message,
            "traceback": record.error.traceback,
        }
    for field in ("input", "output"):
        value = getattr(record, field)
        data[field] = _unpickled_repr(value) if value is not None else None
    return data


def _unpickled_repr(data: bytes) -> str:
    try:
        return repr(pickle.loads(data))[:500]
    except Exception as error:  # the value's class may not be importable here
        return f"<{len(data)} bytes: {type(error).__name__}>"


@runs_app.command("list")
def list_runs(
    store: StoreOption = None,
    flow: Annotated[str | None, typer.Option(help="Only runs of this flow.")] = None,
    status: Annotated[
        str | None, typer.Option(help="Only runs with this status (e.g. failed).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """List stored runs, newest first."""
    wanted = None
    if status is not None:
        try:
            wanted = rb.RunStatus(status.lower())
        except ValueError:
            names = ", ".join(s.value for s in rb.RunStatus)
            _fail(f"no run status {status!r}; the statuses are {names}", 2)
    with _open(store) as opened:
        records = opened.list_runs(flow=flow, status=wanted, limit=limit)
    if as_json:
        typer.echo(json.dumps([run_to_dict(r) for r in records], indent=2))
        return
    if not records:
        typer.echo("No runs.")
        return
    typer.echo(f"{'RUN':<18} {'FLOW':<24} {'STATUS':<10} {'ATTEMPT':>7}  {'STARTED':<19}  ENDED")
    for r in records:
        typer.echo(
            f"{r.run_id:<18} {r.flow[:24]:<24} {r.status.value:<10} {r.attempt:>7}  "
            f"{_when(r.started_at):<19}  {_when(r.ended_at)}"
        )


@runs_app.command("show")
def show_run(run_id: RunArg, store: StoreOption = None, as_json: JsonOption = False) -> None:
    """Show one run: its record, each stage's status and counters, its last checkpoint."""
    with _open(store) as opened:
        record = _get(opened, run_id)
        stages = opened.stage_runs(record.run_id)
        checkpoint = opened.latest_checkpoint(record.run_id)
        letters = opened.dead_letters(run_id=record.run_id)
    if as_json:
        data = run_to_dict(record)
        data["stages"] = [
            {
                "stage": s.stage,
                "kind": s.kind,
                "status": s.status.value,
                "events_in": s.events_in,
                "events_out": s.events_out,
                "errors": s.errors,
                "retries": s.retries,
                "skipped": s.skipped,
                "dead_lettered": s.dead_lettered,
                "seconds": s.seconds,
            }
            for s in stages
        ]
        data["checkpoint"] = (
            {
                "checkpoint_id": checkpoint.checkpoint_id,
                "created_at": checkpoint.created_at.isoformat(),
                "positions": checkpoint.positions,
            }
            if checkpoint is not None
            else None
        )
        data["dead_letters"] = len(letters)
        typer.echo(json.dumps(data, indent=2))
        return
    typer.echo(f"run {record.run_id} of flow {record.flow!r}: {record.status.value.upper()}")
    typer.echo(f"  version {record.flow_version}, attempt {record.attempt}")
    typer.echo(f"  started {_when(record.started_at)}, ended {_when(record.ended_at)}")
    if record.target:
        typer.echo(f"  target {record.target}")
    if record.rerun_of:
        typer.echo(f"  re-run of {record.rerun_of}")
    if record.worker and record.status is rb.RunStatus.RUNNING:
        typer.echo(f"  running in {record.worker}, lease until {_when(record.lease_until)}")
    if record.error is not None:
        where = f"stage {record.error.stage!r}: " if record.error.stage else ""
        typer.echo(f"  error: {where}{record.error.error_type}: {record.error.message}")
    if stages:
        typer.echo(
            f"  {'stage':<24} {'status':<10} {'in':>9} {'out':>9} {'errors':>7} {'retries':>7} "
            f"{'skipped':>7} {'dead':>5}"
        )
        for s in stages:
            typer.echo(
                f"  {s.stage[:24]:<24} {s.status.value:<10} {s.events_in:>9} {s.events_out:>9} "
                f"{s.errors:>7} {s.retries:>7} {s.skipped:>7} {s.dead_lettered:>5}"
            )
    if checkpoint is not None:
        typer.echo(
            f"  last checkpoint #{checkpoint.checkpoint_id} at {_when(checkpoint.created_at)}: "
            f"sources at {json.dumps(checkpoint.positions)}"
        )
    if letters:
        typer.echo(
            f"  {len(letters)} dead letter(s): riverbed dead-letters list --run {record.run_id}"
        )


def _flow_of(record: rb.RunRecord, target: str | None) -> tuple[rb.Flow, str]:
    target = target or record.target
    if target is None:
        _fail(
            f"run {record.run_id} recorded no target to load its flow from (it was started "
            "from Python); give it: riverbed runs resume RUN module:attr",
            2,
        )
    try:
        return load_flow(target), target
    except (rb.TargetError, rb.FlowDefinitionError) as error:
        _fail(str(error), 2)


def _finish(result: rb.RunResult, as_json: bool) -> NoReturn:
    typer.echo(json.dumps(result.to_dict(), indent=2) if as_json else result.summary())
    raise typer.Exit(_EXIT.get(result.status, 1))


def _run_again(
    store: str | None,
    old_id: str,
    target: str | None,
    as_json: bool,
    header: str,
    **options: Any,
) -> NoReturn:
    """Load RUN's flow and run it with ``options`` (a resume or a re-run); print ``header``
    (formatted with the old and new run ids) first, unless printing JSON."""
    with _open(store) as opened:
        record = _get(opened, old_id)
        flow, found = _flow_of(record, target)
        new_id = options.pop("run_id", record.run_id)
        if not as_json:
            typer.echo(header.format(new=new_id, old=record.run_id))
        if "rerun_of" in options:
            options["rerun_of"] = record.run_id
        if "resume" in options:
            options["resume"] = record.run_id
        else:
            options["run_id"] = new_id
            options["params"] = record.params
        if flow.is_workflow:
            again = _workflow_again(flow, opened, record, new_id, found, options)
            _finish_workflow(again, as_json)
        try:
            result = flow.run(
                store=opened, raise_on_failure=False, target=found, progress=False, **options
            )
        except rb.RunNotResumableError as error:
            _fail(str(error))
        except ValueError as error:  # e.g. --rename of a stage that does not exist
            _fail(str(error), 2)
    _finish(result, as_json)


def _workflow_again(
    flow: rb.Flow,
    store: rb.Store,
    record: rb.RunRecord,
    new_id: str,
    target: str,
    options: dict[str, Any],
) -> rb.WorkflowResult:
    """A workflow run resumed (same run: its recorded steps are replayed), or re-run as a
    new run on the same input (``cache=True`` steps are not recomputed)."""
    try:
        if "resume" in options:
            return rb.run(flow, store=store, resume=record.run_id)
        given = pickle.loads(record.input) if record.input is not None else None
        return rb.run(
            flow, given, store=store, run_id=new_id, target=target, rerun_of=record.run_id
        )
    except rb.RunNotResumableError as error:
        _fail(str(error))


def _finish_workflow(result: rb.WorkflowResult, as_json: bool) -> NoReturn:
    report = {
        "run_id": result.run_id,
        "status": result.status.value,
        "output": repr(result.output),
        "replayed": list(result.replayed),
        "error": None if result.error is None else result.error.message,
    }
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        typer.echo(
            f"run {result.run_id}: {result.status.value.upper()}, output {result.output!r}"
            + (f" (replayed: {', '.join(result.replayed)})" if result.replayed else "")
        )
        if result.error is not None:
            typer.echo(
                f"  failed at stage {result.error.stage!r}: {result.error.error_type}: "
                f"{result.error.message}"
            )
    raise typer.Exit(_EXIT.get(result.status, 1))


@runs_app.command("resume")
def resume_run(
    run_id: RunArg,
    target: MaybeTarget = None,
    store: StoreOption = None,
    compatible: Compatible = False,
    rename: Rename = None,
    checkpoint_every: Annotated[
        float | None, typer.Option(help="Seconds between checkpoints.", show_default=False)
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Resume a crashed, failed or cancelled run from its last checkpoint (same run id)."""
    options: dict[str, Any] = {"resume": run_id, "compatible": compatible}
    if rename:
        options["renamed"] = _renamed(rename)
    if checkpoint_every is not None:
        options["checkpoint_interval"] = checkpoint_every
    _run_again(store, run_id, target, as_json, "run {old}", **options)


@runs_app.command("rerun")
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
    options: dict[str, Any] = {"run_id": uuid.uuid4().hex[:16], "compatible": compatible}
    if from_start and rename:
        _fail("--rename says where a checkpoint's state goes: not with --from-start", 2)
    if not from_start:
        options["rerun_of"] = run_id
        if rename:
            options["renamed"] = _renamed(rename)
    _run_again(store, run_id, target, as_json, "run {new} (re-run of {old})", **options)


@runs_app.command("cancel")
def cancel_run(run_id: RunArg, store: StoreOption = None, as_json: JsonOption = False) -> None:
    """Cancel a scheduled or running run (a running one stops at its next heartbeat)."""
    with _open(store) as opened:
        record = _get(opened, run_id)
        try:
            cancelled = opened.transition(
                record.run_id, rb.RunStatus.CANCELLED, ended_at=datetime.now(UTC)
            )
        except rb.InvalidTransitionError as error:
            _fail(str(error))
    if as_json:
        typer.echo(json.dumps(run_to_dict(cancelled), indent=2))
    else:
        typer.echo(f"run {record.run_id}: cancelled (was {record.status.value})")


@letters_app.command("list")
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
    with _open(store) as opened:
        run_id = _get(opened, run).run_id if run else None
        letters = opened.dead_letters(run_id=run_id, stage=stage, replayed=replayed)
    if as_json:
        rows = [
            {
                "id": letter.id,
                "run_id": letter.run_id,
                "flow": letter.flow,
                "stage": letter.stage,
                "event": letter.event_repr,
                "error_type": letter.error_type,
                "message": letter.message,
                "attempts": letter.attempts,
                "at": letter.at.isoformat(),
                "replayed_by": letter.replayed_by,
            }
            for letter in letters
        ]
        typer.echo(json.dumps(rows, indent=2))
        return
    if not letters:
        typer.echo("No dead letters.")
        return
    for letter in letters:
        typer.echo(
            f"#{letter.id} run {letter.run_id} stage {letter.stage!r}: {letter.error_type}: "
            f"{letter.message} (event {letter.event_repr[:80]}, {letter.attempts} attempt(s))"
        )


@letters_app.command("replay")
def replay_letters(
    target: MaybeTarget = None,
    store: StoreOption = None,
    run: Annotated[str | None, typer.Option(help="Only this run's dead letters.")] = None,
    stage: Annotated[str | None, typer.Option(help="Only this stage's.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Replay pending dead letters into the stage that failed them, as new runs (one per
    run and stage), once their cause is fixed; they are then marked replayed."""
    worst = 0
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
            flow, _ = _flow_of(_get(opened, origin), target)
            events = [pickle.loads(letter.event) for letter in group if letter.event]
            replay = flow.replay(failed_stage, events)
            new_id = uuid.uuid4().hex[:16]
            if not as_json:
                typer.echo(
                    f"run {new_id}: replaying {len(events)} event(s) of run {origin} into "
                    f"stage {failed_stage!r}"
                )
            result = replay.run(
                store=opened,
                run_id=new_id,
                raise_on_failure=False,
                params={"replay_of": origin, "stage": failed_stage},
            )
            opened.mark_replayed([letter.id for letter in group if letter.id is not None], new_id)
            if as_json:
                results.append(result.to_dict())
            else:
                typer.echo(result.summary())
            worst = max(worst, _EXIT.get(result.status, 1))
    if as_json:
        typer.echo(json.dumps(results, indent=2))
    raise typer.Exit(worst)


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
    try:
        flow = load_flow(target)
    except (rb.TargetError, rb.FlowDefinitionError) as error:
        _fail(str(error), 2)
    parsed: dict[str, Any] = {}
    for item in params or []:
        name, equals, value = item.partition("=")
        if not equals or not name:
            _fail(f"--param {item!r}: write NAME=VALUE", 2)
        try:
            parsed[name] = json.loads(value)
        except json.JSONDecodeError:
            parsed[name] = value
    payload = None
    if input_json is not None:
        try:
            payload = pickle.dumps(json.loads(input_json))
        except json.JSONDecodeError as error:
            _fail(f"--input is not JSON: {error}", 2)
    run_id = uuid.uuid4().hex[:16]
    record = rb.RunRecord(
        run_id=run_id,
        flow=flow.name,
        flow_version=flow.version,
        status=rb.RunStatus.SCHEDULED,
        params=parsed,
        input=payload,
        target=target,
        created_at=datetime.now(UTC),
    )
    with _open(store) as opened:
        opened.enqueue(record)
        if as_json:
            typer.echo(json.dumps(run_to_dict(opened.get_run(run_id)), indent=2))
            return
    typer.echo(run_id)


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
