"""``riverbed runs recover``: every interrupted run (crashed, or running in a process that
is gone or whose lease expired) resumed here one after the other, or put into the queue
for workers (``--queue``)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Annotated, Any, NoReturn

import typer

import riverbed as rb
from riverbed._cli import options as opt
from riverbed._cli.again import again
from riverbed._cli.exits import ExitCode, command, message
from riverbed._cli.render import (
    emit_json,
    json_stdout,
    recovery_json,
    recovery_summary,
    result_text,
)
from riverbed._cli.store import open_store
from riverbed._cli.stored import is_replay

__all__ = ["Action", "Recovery", "recover_runs"]

_RECOVER_LIMIT = 100_000
"""Interrupted runs looked at per status by one ``runs recover``: all, in practice."""


class Action(enum.Enum):
    """What ``runs recover`` did with one interrupted run."""

    RESUMED = "resumed"
    """Resumed here; its result says how it ended."""
    QUEUED = "queued"
    """Put into the queue (SCHEDULED): the next worker resumes it."""
    REFUSED = "refused"
    """Not resumed: riverbed refused (the message says why)."""
    PYTHON = "python"
    """Left alone: no target to load its flow from (started from Python), or a replay of
    dead letters, which workers cannot run; the message says how to resume it."""


@dataclass(frozen=True)
class Recovery:
    """What ``runs recover`` did with one interrupted run."""

    record: rb.RunRecord
    action: Action
    message: str = ""
    result: rb.RunResult | None = None

    @property
    def ok(self) -> bool:
        """False if it was refused, or resumed and did not succeed."""
        if self.result is not None:
            return self.result.ok
        return self.action is not Action.REFUSED

    def to_dict(self) -> dict[str, Any]:
        """The recovery as JSON-able data (``render.recovery_json``)."""
        return recovery_json(self.record, self.action.value, self.message, self.result)


def _interrupted(store: rb.Store) -> list[rb.RunRecord]:
    """Every interrupted run, oldest first: CRASHED ones, and RUNNING ones whose lease
    expired or whose process is gone, which are recorded CRASHED now
    (``rb.crashed_if_dead``: not if a worker took one over meanwhile). Runs still running
    somewhere are left alone."""
    found: list[rb.RunRecord] = []
    for status in (rb.RunStatus.RUNNING, rb.RunStatus.CRASHED):
        found += store.list_runs(status=status, limit=_RECOVER_LIMIT)
    found.sort(key=lambda run: run.created_at)
    crashed = []
    for run in found:
        if run.status is rb.RunStatus.RUNNING and rb.interruption(run) is None:
            continue  # alive, as far as its record says: not this command's to touch
        try:
            crashed.append(rb.crashed_if_dead(store, run))
        except rb.RunNotResumableError:
            continue  # another process took it over meanwhile
    return crashed


def _recover(store: rb.Store, run: rb.RunRecord, queue: bool, options: dict[str, Any]) -> Recovery:
    """Resume one interrupted run here, or put it into the queue (``queue``)."""
    if run.target is None and not is_replay(run):
        how = f'flow.run(resume="{run.run_id}") or rb.run(flow, resume="{run.run_id}")'
        return Recovery(run, Action.PYTHON, f"started from Python, no target: resume it with {how}")
    if queue and run.target is None:
        how = f"riverbed runs resume {run.run_id}"
        return Recovery(run, Action.PYTHON, f"a replay of dead letters, not for workers: {how}")
    try:
        if queue:
            store.transition(run.run_id, rb.RunStatus.SCHEDULED, lease_until=None)
            return Recovery(run, Action.QUEUED, "in the queue: the next worker resumes it")
        result = again(store, run, None, **options)
    except rb.RiverbedError as error:
        return Recovery(run, Action.REFUSED, message(error))
    return Recovery(run, Action.RESUMED, result=result)


Queue = Annotated[
    bool, typer.Option("--queue", help="Put them into the queue for workers instead.")
]


@command
def recover_runs(
    store: opt.StoreOption = None,
    queue: Queue = False,
    checkpoint_interval: opt.CheckpointInterval = None,
    checkpoint_every: opt.DeprecatedCheckpointEvery = None,
    as_json: opt.JsonOption = False,
) -> None:
    """Resume every interrupted run (crashed, or running in a process that is gone or
    whose lease expired), here one after the other, or put them into the queue for
    workers with --queue. Exits 0 if all those it resumed succeeded (or were queued)."""
    options = opt.checkpoint_options(checkpoint_interval, checkpoint_every)
    done: list[Recovery] = []
    with open_store(store) as opened, json_stdout(as_json):
        for run in _interrupted(opened):
            if not as_json:
                typer.echo(f"run {run.run_id} of flow {run.flow!r} (attempt {run.attempt}):")
            recovery = _recover(opened, run, queue, options)
            done.append(recovery)
            if not as_json:
                shown = result_text(recovery.result) if recovery.result else None
                typer.echo(shown or f"  {recovery.message}")
            if recovery.result and recovery.result.status is rb.RunStatus.CANCELLED:
                break  # Ctrl-C: stop recovering
    _report(done, as_json)


def _report(done: list[Recovery], as_json: bool) -> NoReturn:
    if as_json:
        emit_json([recovery.to_dict() for recovery in done])
    else:
        typer.echo(recovery_summary([recovery.action.value for recovery in done]))
    if any(r.result and r.result.status is rb.RunStatus.CANCELLED for r in done):
        raise typer.Exit(ExitCode.CANCELLED)
    raise typer.Exit(ExitCode.OK if all(recovery.ok for recovery in done) else ExitCode.FAILED)
