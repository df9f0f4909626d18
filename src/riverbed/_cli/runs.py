"""``riverbed runs list | show | cancel | prune``: the runs a store holds, from a shell.
(``resume``, ``rerun`` and ``recover``, which run them again, are in ``again`` and
``recover``.)

Commands that only read open the store read-only and never write to it, nor unpickle
anything it holds.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

import riverbed as rb
from riverbed._cli import options as opt
from riverbed._cli.exits import ExitCode, command, fail
from riverbed._cli.render import (
    RunDetails,
    details_json,
    details_lines,
    emit_json,
    run_json,
    run_list_lines,
    when,
)
from riverbed._cli.store import open_store

__all__ = ["cancel_run", "list_runs", "prune_runs", "show_run"]


@command
def list_runs(
    store: opt.StoreOption = None,
    flow: Annotated[str | None, typer.Option(help="Only runs of this flow.")] = None,
    status: Annotated[
        str | None, typer.Option(help="Only runs with this status (e.g. failed).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first.")] = 50,
    as_json: opt.JsonOption = False,
) -> None:
    """List stored runs, newest first. A RUNNING run whose lease expired or whose process
    is gone shows as running*, with why (`riverbed runs recover` resumes it)."""
    wanted = None
    if status is not None:
        try:
            wanted = rb.RunStatus(status.lower())
        except ValueError:
            names = ", ".join(s.value for s in rb.RunStatus)
            fail(f"no run status {status!r}; the statuses are {names}", ExitCode.USAGE)
    with open_store(store, read_only=True) as opened:
        records = opened.list_runs(flow=flow, status=wanted, limit=limit)
    if as_json:
        emit_json([run_json(record) for record in records])
    elif not records:
        typer.echo("No runs.")
    else:
        typer.echo("\n".join(run_list_lines(records)))


def _details(store: rb.Store, run_id: str) -> RunDetails:
    record = store.get_run(run_id)
    attempts = {n: store.stage_runs(record.run_id, attempt=n) for n in range(1, record.attempt + 1)}
    return RunDetails(
        record=record,
        stages=store.stage_runs(record.run_id),
        attempts={n: stages for n, stages in attempts.items() if stages},
        history=store.history(record.run_id),
        checkpoint=store.latest_checkpoint(record.run_id),
        letters=len(store.dead_letters(run_id=record.run_id)),
    )


@command
def show_run(
    run_id: opt.RunArg, store: opt.StoreOption = None, as_json: opt.JsonOption = False
) -> None:
    """Show one run: its record and error (with the traceback), its history (every status
    change), each stage's status and counters (per attempt, when it ran several), its last
    checkpoint."""
    with open_store(store, read_only=True) as opened:
        shown = _details(opened, run_id)
    if as_json:
        emit_json(details_json(shown))
    else:
        typer.echo("\n".join(details_lines(shown)))


@command
def cancel_run(
    run_id: opt.RunArg, store: opt.StoreOption = None, as_json: opt.JsonOption = False
) -> None:
    """Cancel a scheduled or running run (a running one stops at its next heartbeat)."""
    with open_store(store) as opened:
        record = opened.get_run(run_id)
        cancelled = opened.transition(
            record.run_id, rb.RunStatus.CANCELLED, ended_at=datetime.now(UTC)
        )
    if as_json:
        emit_json(run_json(cancelled))
    else:
        typer.echo(f"run {record.run_id}: cancelled (was {record.status.value})")


OlderThan = Annotated[
    str,
    typer.Option(
        "--older-than",
        metavar="DURATION",
        help="Remove runs that ended this long ago or more: 30m, 12h, 7d, 1d12h...",
        show_default=False,
    ),
]


@command
def prune_runs(
    older_than: OlderThan, store: opt.StoreOption = None, as_json: opt.JsonOption = False
) -> None:
    """Remove the runs that ended (succeeded, failed or cancelled) before DURATION ago,
    with all the store keeps of them, to keep the store small. Runs scheduled, running or
    crashed are never removed."""
    before = datetime.now(UTC) - opt.duration("--older-than", older_than)
    with open_store(store) as opened:
        removed = opened.prune(finished_before=before)
    if as_json:
        emit_json({"pruned": removed, "finished_before": before.isoformat()})
    else:
        typer.echo(f"pruned {removed} run(s) that ended before {when(before)} UTC")
