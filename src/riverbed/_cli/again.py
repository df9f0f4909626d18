"""Running a stored run again: ``riverbed runs resume`` (the same run, from its last
checkpoint or step) and ``riverbed runs rerun`` (a new run), and ``again``, which
``runs recover`` uses too. A replay of dead letters replays its letters again."""

from __future__ import annotations

import pickle
import uuid
from typing import Annotated, Any, NoReturn

import typer

import riverbed as rb
from riverbed._cli import options as opt
from riverbed._cli.exits import ExitCode, command, exit_code, fail
from riverbed._cli.render import emit_json, json_stdout, result_json, result_text
from riverbed._cli.store import open_store
from riverbed._cli.stored import flow_of_run, mark_if_replayed

__all__ = ["again", "new_run_id", "rerun", "resume_run"]


def new_run_id() -> str:
    """A fresh run id, as the runtime makes them."""
    return uuid.uuid4().hex[:16]


def again(
    store: rb.Store,
    record: rb.RunRecord,
    target: str | None,
    *,
    new_id: str | None = None,
    **options: Any,
) -> rb.RunResult:
    """Run ``record``'s flow again: resumed (``new_id`` None: same run, from its last
    checkpoint or step), or re-run as the new run ``new_id``, on the run's recorded input
    if it had one (a workflow's). One path for streams and workflows: ``rb.run`` takes
    every option given here for both, and refuses one that only a stream can take
    (``--rename`` of a workflow's run), which is a usage error. A replay run replays its
    dead letters again, and marks them replayed once it succeeded."""
    if new_id is None:
        # Settled here, fenced, before the runtime reads the run: of two resumes that both
        # found it dead, the second is then refused instead of taking the first's attempt.
        record = rb.crashed_if_dead(store, record)
        options["resume"] = record.run_id
    else:
        options.update(run_id=new_id, params=record.params)
    stored = flow_of_run(store, record, target)
    if stored.recorded_target is not None:
        options["target"] = stored.recorded_target
    try:
        result = rb.run(
            stored.flow,
            *_recorded_input(record, new_id),
            store=store,
            raise_on_failure=False,
            progress=False,
            **options,
        )
    except (TypeError, ValueError) as error:  # --rename of a stage that does not exist...
        if isinstance(error, rb.RiverbedError):
            raise
        fail(str(error), ExitCode.USAGE)
    mark_if_replayed(store, stored, result.run_id, result.status)
    return result


def _recorded_input(record: rb.RunRecord, new_id: str | None) -> tuple[Any, ...]:
    """What a re-run is given as its input: the run's recorded one, if it had one (a
    workflow's; a resumed run goes on with its own)."""
    if new_id is None or record.input is None:
        return ()
    return (pickle.loads(record.input),)


def _finish(result: rb.RunResult, as_json: bool) -> NoReturn:
    if as_json:
        emit_json(result_json(result))
    else:
        typer.echo(result_text(result))
    raise typer.Exit(exit_code(result.status))


@command
def resume_run(
    run_id: opt.RunArg,
    target: opt.MaybeTarget = None,
    store: opt.StoreOption = None,
    compatible: opt.Compatible = False,
    rename: opt.Rename = None,
    checkpoint_interval: opt.CheckpointInterval = None,
    checkpoint_every: opt.DeprecatedCheckpointEvery = None,
    runner: opt.RunnerName = None,
    address: opt.RayAddress = None,
    parallelism: opt.Parallelism = None,
    as_json: opt.JsonOption = False,
) -> None:
    """Resume a crashed, failed or cancelled run from its last checkpoint (same run id),
    here or on Ray (--runner ray)."""
    options: dict[str, Any] = {
        "compatible": compatible,
        **opt.checkpoint_options(checkpoint_interval, checkpoint_every),
        **opt.runner_options(runner, address, parallelism),
    }
    if rename:
        options["renamed"] = opt.renamed(rename)
    with open_store(store) as opened:
        record = opened.get_run(run_id)
        if not as_json:
            typer.echo(f"run {record.run_id}")
        with json_stdout(as_json):
            result = again(opened, record, target, **options)
    _finish(result, as_json)


FromStart = Annotated[
    bool, typer.Option("--from-start", help="Start from the beginning, not the checkpoint.")
]


@command
def rerun(
    run_id: opt.RunArg,
    target: opt.MaybeTarget = None,
    store: opt.StoreOption = None,
    compatible: opt.Compatible = False,
    rename: opt.Rename = None,
    from_start: FromStart = False,
    runner: opt.RunnerName = None,
    address: opt.RayAddress = None,
    parallelism: opt.Parallelism = None,
    as_json: opt.JsonOption = False,
) -> None:
    """Run a flow again as a new run, from the last checkpoint of RUN (or from the start),
    here or on Ray (--runner ray)."""
    new_id = new_run_id()
    options: dict[str, Any] = {
        "compatible": compatible,
        **opt.runner_options(runner, address, parallelism),
    }
    if from_start and rename:
        fail(
            "--rename says where a checkpoint's state goes: not with --from-start",
            ExitCode.USAGE,
        )
    with open_store(store) as opened:
        record = opened.get_run(run_id)
        if not from_start:
            options["rerun_of"] = record.run_id
            if rename:
                options["renamed"] = opt.renamed(rename)
        if not as_json:
            typer.echo(f"run {new_id} (re-run of {record.run_id})")
        with json_stdout(as_json):
            result = again(opened, record, target, new_id=new_id, **options)
    _finish(result, as_json)
