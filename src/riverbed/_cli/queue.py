"""The run queue from a shell: ``riverbed schedule`` puts a run of a flow into the store's
queue; ``riverbed worker`` takes runs from it and runs them, logging one line on stderr
per run it takes and per run it finishes (``-v``: more)."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from typing import Annotated

import typer

import riverbed as rb
from riverbed._cli import options as opt
from riverbed._cli.exits import ExitCode, command, fail
from riverbed._cli.failure import failure_lines
from riverbed._cli.render import emit_json, run_json, stage_lines
from riverbed._cli.store import open_store
from riverbed._cli.targets import load

__all__ = ["schedule", "worker"]


@command
def schedule(
    target: opt.Target,
    store: opt.StoreOption = None,
    params: opt.Params = None,
    input_json: Annotated[
        str | None, typer.Option("--input", help="The run's input, as JSON.", show_default=False)
    ] = None,
    queue: Annotated[
        str,
        typer.Option(
            "--queue",
            help="The queue the run waits in; only workers serving it (worker --queue) take it.",
        ),
    ] = "default",
    as_json: opt.JsonOption = False,
) -> None:
    """Put a run of a flow into the store's queue for a worker to run; print its id.

    Parameters (-p NAME=VALUE) are recorded with the run; when TARGET is a function, the
    worker calls it with them as keyword arguments to build the flow (checked here)."""
    parsed = opt.parameters(params)
    given, value = opt.json_input(input_json)
    load(target, parsed)  # its mistakes said the CLI's way (exit 2), before anything is queued
    with open_store(store) as opened:
        with _queue_usage():
            run_id = rb.schedule(
                target, *([value] if given else []), store=opened, params=parsed, queue=queue
            )
        if as_json:
            emit_json(run_json(opened.get_run(run_id)))
            return
    typer.echo(run_id)


class _Verbose(rb.Worker):
    """A worker that, after each run, logs the run's stage counters and, for a failure,
    where it failed (``riverbed worker -v``)."""

    def run_one(self) -> rb.RunRecord | None:
        """Claim one run, run it, then log its details."""
        record = super().run_one()
        if record is not None:
            lines = stage_lines(self.store.stage_runs(record.run_id), "    ")
            if record.error is not None:
                lines += failure_lines(record.run_id, record.error.traceback, "    ")
            _log.info("run %s:\n%s", record.run_id, "\n".join(lines))
        return record


_log = logging.getLogger("riverbed")


@contextlib.contextmanager
def _log_to_stderr(verbose: bool) -> Iterator[None]:
    """While the worker runs, riverbed's log goes to stderr, each record with its time:
    INFO (the runs it takes and finishes) and up; with ``verbose``, DEBUG too."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    level = _log.level
    _log.addHandler(handler)
    _log.setLevel(logging.DEBUG if verbose else logging.INFO)
    try:
        yield
    finally:  # the CLI runs in tests too: leave the logger as it was found
        _log.removeHandler(handler)
        _log.setLevel(level)


Poll = Annotated[
    float,
    typer.Option(help="The longest wait between claims when idle, in seconds (> 0)."),
]
Queues = Annotated[
    list[str] | None,
    typer.Option(
        "--queue",
        "-q",
        help="A queue whose runs this worker takes (repeat for several; default: default).",
        show_default=False,
    ),
]


@contextlib.contextmanager
def _queue_usage() -> Iterator[None]:
    """A queue name that is not one (ValueError, saying what a name is): a usage error."""
    try:
        yield
    except ValueError as error:
        fail(f"--queue: {error}", ExitCode.USAGE)


Verbose = Annotated[
    bool, typer.Option("--verbose", "-v", help="Log more: each run's stage counters.")
]


@command
def worker(
    store: opt.StoreOption = None,
    once: Annotated[bool, typer.Option("--once", help="Run at most one run, then exit.")] = False,
    max_runs: Annotated[
        int | None,
        typer.Option(min=1, help="Exit after this many runs.", show_default=False),
    ] = None,
    idle_exit: Annotated[
        float | None,
        typer.Option(help="Exit after the queue was empty this many seconds.", show_default=False),
    ] = None,
    poll: Poll = 1.0,
    queue: Queues = None,
    checkpoint_interval: opt.CheckpointInterval = None,
    checkpoint_every: opt.DeprecatedCheckpointEvery = None,
    runner: opt.RunnerName = None,
    address: opt.RayAddress = None,
    parallelism: opt.Parallelism = None,
    verbose: Verbose = False,
) -> None:
    """Claim runs from the store's queue and run them, one at a time, until stopped: the
    runs of the default queue, or of each --queue given. Logs one line on stderr per run
    it takes and per run it finishes (-v: more). SIGTERM or Ctrl-C put the run it holds
    back into the queue, then it exits. With --runner ray, the runs it takes execute on a
    Ray cluster."""
    opt.positive_seconds("--poll", poll)
    if idle_exit is not None and not idle_exit >= 0:
        fail(f"--idle-exit must be a number of seconds >= 0, got {idle_exit:g}", ExitCode.USAGE)
    options = opt.checkpoint_options(checkpoint_interval, checkpoint_every)
    chosen = opt.runner_options(runner, address, parallelism)
    kind = _Verbose if verbose else rb.Worker
    with open_store(store) as opened, _log_to_stderr(verbose):
        with _queue_usage():
            taker = kind(
                opened,
                runner=chosen.get("runner"),
                queues=queue or ["default"],
                poll=poll,
                idle_exit=0 if once else idle_exit,
                max_runs=1 if once else max_runs,
                **options,
            )
        try:
            count = taker.run()
        except KeyboardInterrupt:
            count = len(taker.done)
    typer.echo(f"worker {taker.name}: {count} run(s)")
