"""``riverbed run TARGET``: run a flow, here or on Ray (``--runner ray``), recorded in the
store; a workflow with ``--input JSON``."""

from __future__ import annotations

from typing import Annotated, Any

import typer

import riverbed as rb
from riverbed._cli import options as opt
from riverbed._cli.exits import ExitCode, command, exit_code
from riverbed._cli.failure import failure_lines
from riverbed._cli.render import emit_json, json_stdout, result_json, result_text
from riverbed._cli.targets import load

__all__ = ["Announce", "run"]

InputJson = Annotated[
    str | None,
    typer.Option(
        "--input",
        help="A workflow's input, as JSON: runs it with rb.run and prints its output.",
        show_default=False,
    ),
]
BatchSize = Annotated[
    int | None,
    typer.Option(min=1, help="Events per batch (default: the engine's).", show_default=False),
]
MetricsPort = Annotated[
    int | None,
    typer.Option(
        min=1,
        max=65535,
        help="Serve the run's Prometheus metrics at http://127.0.0.1:PORT/metrics while it "
        "runs (needs riverbed[serve]).",
        show_default=False,
    ),
]
Progress = Annotated[
    bool | None,
    typer.Option(
        "--progress/--no-progress",
        help="Live progress display (default: on a terminal, off with --json).",
        show_default=False,
    ),
]


class Announce(rb.RunObserver):
    """Prints ``run ID`` once the run is in the store (from then on, ``riverbed runs
    resume ID`` finds it)."""

    def started(self, run: rb.RunRecord) -> None:
        """The run is recorded: say its id."""
        typer.echo(f"run {run.run_id}")


@command
def run(
    target: opt.Target,
    store: opt.StoreOption = None,
    params: opt.Params = None,
    checkpoint_interval: opt.CheckpointInterval = None,
    checkpoint_every: opt.DeprecatedCheckpointEvery = None,
    input_json: InputJson = None,
    batch_size: BatchSize = None,
    progress: Progress = None,
    metrics_port: MetricsPort = None,
    runner: opt.RunnerName = None,
    address: opt.RayAddress = None,
    parallelism: opt.Parallelism = None,
    as_json: opt.JsonOption = False,
) -> None:
    """Run a flow until its sources end, then print its summary: in this process, or on a
    Ray cluster with --runner ray.

    Prints ``run ID`` once the run is recorded in the store (so that ``riverbed runs
    resume ID`` finds it from then on). Exits 0 if the run SUCCEEDED, 1 if it FAILED or
    the store failed, 130 if it was CANCELLED (Ctrl-C, SIGTERM, ``riverbed runs cancel``).
    With --json, stdout holds the JSON alone: what the flow prints goes to stderr.
    """
    options: dict[str, Any] = {
        "progress": False if as_json and progress is None else progress,
        **opt.checkpoint_options(checkpoint_interval, checkpoint_every),
    }
    if batch_size is not None:
        options["batch_size"] = batch_size
    if metrics_port is not None:
        options["metrics_port"] = metrics_port
    chosen = opt.runner_options(runner, address, parallelism)
    given, value = opt.json_input(input_json)
    parsed = opt.parameters(params)
    announce: list[rb.RunObserver] = [] if as_json else [Announce()]
    try:
        flow = load(target, parsed)
    except KeyboardInterrupt:  # while importing, before the engine handles Ctrl-C itself
        typer.echo("Cancelled.", err=True)
        raise typer.Exit(ExitCode.CANCELLED) from None
    with json_stdout(as_json):
        if given:
            result = rb.run(flow, value, store=store, target=target, observers=announce, **chosen)
        else:
            if parsed:
                options["params"] = parsed
            result = flow.run(
                raise_on_failure=False,
                store=store,
                target=target,
                observers=announce,
                **options,
                **chosen,
            )
    _report(result, as_json, workflow=given)


def _report(result: rb.RunResult, as_json: bool, *, workflow: bool) -> None:
    """Print the result and exit with its code. A workflow's output, as JSON, is what
    ``run --input`` prints when it succeeds; a failure goes to stderr."""
    if as_json:
        emit_json(result_json(result))
    elif not workflow:
        typer.echo(result_text(result))
    elif result.ok:
        emit_json(result_json(result)["output"], indent=None)
    else:
        why = result.error
        where = f"stage {why.stage!r}: {why.error_type}: {why.message}" if why else ""
        lines = [f"run {result.run_id} {result.status.value.upper()} {where}".rstrip()]
        if why is not None:
            lines += failure_lines(result.run_id, why.traceback)
        typer.echo("\n".join(lines), err=True)
    raise typer.Exit(exit_code(result.status))
