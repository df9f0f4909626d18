"""``riverbed dead-letters list | replay``: the events stages could not process, listed,
and replayed into the stage that failed them once the cause is fixed (one new run per
run and stage; see ``stored`` for what a replay run records)."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

import riverbed as rb
from riverbed._cli import options as opt
from riverbed._cli.again import new_run_id
from riverbed._cli.exits import ExitCode, command, exit_code, fail
from riverbed._cli.render import emit_json, json_stdout, letter_line, result_json, result_text
from riverbed._cli.store import open_store
from riverbed._cli.stored import flow_of_run, mark_if_replayed, replay_params

__all__ = ["discard_letters", "list_letters", "replay", "replay_letters"]

OnlyRun = Annotated[str | None, typer.Option("--run", help="Only this run's dead letters.")]
OnlyStage = Annotated[str | None, typer.Option("--stage", help="Only this stage's.")]


@command
def list_letters(
    store: opt.StoreOption = None,
    run: OnlyRun = None,
    stage: OnlyStage = None,
    replayed: Annotated[
        bool, typer.Option("--replayed/--pending", help="Replayed ones, or those pending.")
    ] = False,
    as_json: opt.JsonOption = False,
) -> None:
    """List dead letters (by default those not replayed yet), oldest first."""
    with open_store(store, read_only=True) as opened:
        run_id = opened.get_run(run).run_id if run else None
        letters = opened.dead_letters(run_id=run_id, stage=stage, replayed=replayed)
    if as_json:
        emit_json([letter.to_dict() for letter in letters])
    elif not letters:
        typer.echo("No dead letters.")
    else:
        typer.echo("\n".join(letter_line(letter) for letter in letters))


@command
def replay_letters(
    target: opt.MaybeTarget = None,
    store: opt.StoreOption = None,
    run: OnlyRun = None,
    stage: OnlyStage = None,
    as_json: opt.JsonOption = False,
) -> None:
    """Replay pending dead letters into the stage that failed them, as new runs (one per
    run and stage), once their cause is fixed. Letters are marked replayed when their
    replay run SUCCEEDED; those of a replay that failed stay pending (resume it with
    `riverbed runs resume`). Letters whose event could not be pickled cannot be replayed."""
    worst = ExitCode.OK
    reports: list[dict[str, Any]] = []
    with open_store(store) as opened, json_stdout(as_json):
        run_id = opened.get_run(run).run_id if run else None
        letters = opened.dead_letters(run_id=run_id, stage=stage, replayed=False)
        groups: dict[tuple[str, str], list[rb.DeadLetterRecord]] = defaultdict(list)
        for letter in letters:
            groups[(letter.run_id, letter.stage)].append(letter)
        for (origin, failed_stage), group in groups.items():
            report, code = _replay_group(opened, origin, failed_stage, group, target, as_json)
            reports.append(report)
            worst = max(worst, code)
    if as_json:
        emit_json(reports)
    elif not letters:
        typer.echo("No dead letters to replay.")
    raise typer.Exit(worst)


def _unreplayable(origin: str, stage: str, letters: list[rb.DeadLetterRecord]) -> None:
    """Say on stderr which letters cannot be replayed, and why."""
    ids = ", ".join(f"#{letter.id}" for letter in letters)
    typer.echo(
        f"Error: {len(letters)} dead letter(s) of run {origin} (stage {stage!r}) cannot be "
        f"replayed: {ids}: their events could not be pickled when they were stored, so "
        "only their repr is kept (`riverbed dead-letters list`); they stay pending",
        err=True,
    )


def _replay_group(
    store: rb.Store,
    origin: str,
    stage: str,
    group: list[rb.DeadLetterRecord],
    target: str | None,
    as_json: bool,
) -> tuple[dict[str, Any], ExitCode]:
    """Replay one run's letters of one stage as a new run; its JSON report and exit code."""
    report: dict[str, Any] = {"run_id": None, "replay_of": origin, "stage": stage}
    unpicklable = [letter for letter in group if not letter.replayable]
    fit = [letter for letter in group if letter.replayable]
    code = ExitCode.OK
    if unpicklable:
        _unreplayable(origin, stage, unpicklable)
        report["not_replayable"] = [letter.id for letter in unpicklable]
        code = ExitCode.FAILED
    if not fit:
        return report, code
    new_id = new_run_id()
    if not as_json:
        typer.echo(
            f"run {new_id}: replaying {len(fit)} event(s) of run {origin} into stage {stage!r}"
        )
    result = replay(store, origin, stage, fit, target, new_id)
    report.update(run_id=new_id, result=result_json(result), replayed=[x.id for x in fit])
    if not as_json:
        typer.echo(result_text(result))
        if not result.ok:
            typer.echo(
                f"  the letters stay pending: once the cause is fixed, `riverbed runs resume "
                f"{new_id}` goes on with this replay"
            )
    return report, max(code, exit_code(result.status))


def replay(
    store: rb.Store,
    origin: str,
    stage: str,
    letters: list[rb.DeadLetterRecord],
    target: str | None,
    new_id: str,
) -> rb.RunResult:
    """Replay ``letters`` (replayable ones, of run ``origin``, failed by ``stage``) as the
    new run ``new_id``, marking them replayed if it succeeds: what `riverbed dead-letters
    replay` and the dashboard's replay button do."""
    params = replay_params(origin, stage, letters)
    stored = flow_of_run(store, _replay_record(store.get_run(origin), new_id, params), target)
    result = stored.flow.run(
        store=store, run_id=new_id, raise_on_failure=False, progress=False, params=params
    )
    mark_if_replayed(store, stored, new_id, result.status)
    return result


LetterIds = Annotated[
    list[int], typer.Argument(help="The ids of the dead letters to discard.", show_default=False)
]


@command
def discard_letters(
    ids: LetterIds, store: opt.StoreOption = None, as_json: opt.JsonOption = False
) -> None:
    """Discard pending dead letters by id (`riverbed dead-letters list` shows them): given
    up on, they are deleted. Replayed letters are kept."""
    with open_store(store) as opened:
        count = opened.discard_dead_letters(ids)
    if as_json:
        emit_json({"discarded": count})
    else:
        typer.echo(f"discarded {count} dead letter(s)")
    if count < len(set(ids)):
        fail(
            f"{len(set(ids)) - count} of the ids given name no pending dead letter "
            "(replayed already, discarded, or never stored)"
        )


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
