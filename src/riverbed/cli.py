"""The ``riverbed`` command line: run a flow, draw it, say the version.

    riverbed run app:flow               run a flow on the local engine, print its summary
    riverbed graph app:flow             its Mermaid flowchart (--format text | json)
    riverbed version

TARGET is ``module:attr`` or ``path/to/file.py:attr`` (see ``load_flow``). Exit codes:
0 the run succeeded, 1 it failed (or the store failed under it), 2 the command was wrong
(a bad TARGET or option, a flow definition error), 130 the run was cancelled (Ctrl-C).
Like every interface, this module uses only what ``riverbed`` exports.
"""

from __future__ import annotations

import enum
import json
from typing import Annotated, Any, NoReturn

import typer

import riverbed as rb
from riverbed._cli_runs import letters_app, runs_app, schedule, worker
from riverbed._targets import load_flow

__all__ = ["ExitCode", "GraphFormat", "app", "load_flow", "main"]


class ExitCode(enum.IntEnum):
    """What the ``riverbed`` process exits with."""

    OK = 0
    """The command did its job; for ``run``, the run SUCCEEDED."""
    FAILED = 1
    """The run FAILED, or could not go on (its store stayed unreachable, another process
    took it over), or riverbed or the flow's module raised an unexpected error."""
    USAGE = 2
    """The command was wrong: bad TARGET or option, or the flow is malformed."""
    CANCELLED = 130
    """The run was CANCELLED (Ctrl-C): 128 + SIGINT, as shells report it."""


class GraphFormat(enum.StrEnum):
    """What ``riverbed graph`` prints."""

    MERMAID = "mermaid"
    """A Mermaid flowchart (``Flow.to_mermaid``), for Markdown or mermaid.live."""
    TEXT = "text"
    """One line per stage (``Flow.describe``); also shows flows that do not validate."""
    JSON = "json"
    """The flow serialized (``Flow.to_json``), callables by import reference."""


_EXIT_CODES = {
    rb.RunStatus.SUCCEEDED: ExitCode.OK,
    rb.RunStatus.FAILED: ExitCode.FAILED,
    rb.RunStatus.CANCELLED: ExitCode.CANCELLED,
}
_FLOW_ERRORS = (rb.FlowDefinitionError, rb.FlowSerializationError)


# -- the commands -------------------------------------------------------------------------

app = typer.Typer(
    name="riverbed",
    help="Run and inspect riverbed flows. TARGET is module:attr or path/to/file.py:attr.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # locals of user code may hold secrets
)

Target = Annotated[
    str,
    typer.Argument(
        help="module:attr or path/to/file.py:attr: a Flow, or a function returning one.",
        metavar="TARGET",
        show_default=False,
    ),
]


@app.command()
def run(
    target: Target,
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            help="Store URL to record the run in (default: $RIVERBED_STORE, else ./.riverbed).",
            show_default=False,
        ),
    ] = None,
    checkpoint_every: Annotated[
        float | None,
        typer.Option(
            help="Seconds between checkpoints (default: 5, so that a crashed run resumes).",
            show_default=False,
        ),
    ] = None,
    input_json: Annotated[
        str | None,
        typer.Option(
            "--input",
            help="A workflow's input, as JSON: runs it with rb.run and prints its output.",
            show_default=False,
        ),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(min=1, help="Events per batch (default: the engine's).", show_default=False),
    ] = None,
    progress: Annotated[
        bool | None,
        typer.Option(
            "--progress/--no-progress",
            help="Live progress display (default: on a terminal, off with --json).",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the result as JSON instead of a table.")
    ] = False,
) -> None:
    """Run a flow on the local engine until its sources end, then print its summary.

    Prints ``run ID`` once the run is recorded in the store (so that ``riverbed runs
    resume ID`` finds it from then on). Exits 0 if the run SUCCEEDED, 1 if it FAILED or
    the store failed, 130 if it was CANCELLED (Ctrl-C, SIGTERM, ``riverbed runs cancel``).
    """
    options: dict[str, Any] = {"progress": False if as_json and progress is None else progress}
    if batch_size is not None:
        options["batch_size"] = batch_size
    if checkpoint_every is not None:
        options["checkpoint_interval"] = checkpoint_every
    flow = _load(target)
    announce: list[rb.RunObserver] = [] if as_json else [_Announce()]
    if input_json is not None:
        _run_workflow(flow, input_json, store, target, as_json, announce)
    try:
        result = flow.run(
            raise_on_failure=False, store=store, target=target, observers=announce, **options
        )
    except _FLOW_ERRORS as error:
        _usage_error(error)
    except rb.RiverbedError as error:  # the store failed, the run was taken over...
        _failed(error)
    except KeyboardInterrupt:  # while importing, before the engine handles Ctrl-C itself
        typer.echo("Cancelled.", err=True)
        raise typer.Exit(ExitCode.CANCELLED) from None
    typer.echo(json.dumps(result.to_dict(), indent=2) if as_json else result.summary())
    raise typer.Exit(_EXIT_CODES.get(result.status, ExitCode.FAILED))


class _Announce(rb.RunObserver):
    """Prints ``run ID`` once the run is in the store."""

    def started(self, run: rb.RunRecord) -> None:
        typer.echo(f"run {run.run_id}")


def _failed(error: Exception) -> NoReturn:
    """A run that could not go on for a reason outside its flow: one line, exit 1."""
    typer.echo(f"Error: {error}", err=True)
    raise typer.Exit(ExitCode.FAILED)


def _run_workflow(
    flow: rb.Flow,
    input_json: str,
    store: str | None,
    target: str,
    as_json: bool,
    observers: list[rb.RunObserver],
) -> NoReturn:
    """``riverbed run TARGET --input JSON``: one workflow run; its output as JSON."""
    try:
        given = json.loads(input_json)
    except json.JSONDecodeError as error:
        typer.echo(f"Error: --input is not JSON: {error}", err=True)
        raise typer.Exit(ExitCode.USAGE) from None
    try:
        result = rb.run(flow, given, store=store, target=target, observers=observers)
    except _FLOW_ERRORS as error:
        _usage_error(error)
    except rb.RiverbedError as error:
        _failed(error)
    report = {
        "run_id": result.run_id,
        "status": result.status.value,
        "output": result.output,
        "steps": len(result.steps),
        "replayed": list(result.replayed),
        "error": None
        if result.error is None
        else {
            "stage": result.error.stage,
            "type": result.error.error_type,
            "message": result.error.message,
        },
    }
    if as_json:
        typer.echo(json.dumps(report, indent=2, default=repr))
    elif result.ok:
        typer.echo(json.dumps(result.output, default=repr))
    else:
        why = result.error
        where = f"stage {why.stage!r}: {why.error_type}: {why.message}" if why else ""
        typer.echo(f"run {result.run_id} {result.status.value.upper()} {where}", err=True)
    raise typer.Exit(_EXIT_CODES.get(result.status, ExitCode.FAILED))


@app.command()
def graph(
    target: Target,
    output_format: Annotated[
        GraphFormat, typer.Option("--format", "-f", help="What to print.")
    ] = GraphFormat.MERMAID,
) -> None:
    """Print a flow's graph: a Mermaid flowchart, a text listing, or its JSON."""
    flow = _load(target)
    show = {
        GraphFormat.MERMAID: flow.to_mermaid,
        GraphFormat.TEXT: flow.describe,
        GraphFormat.JSON: flow.to_json,
    }[output_format]
    try:
        text = show()
    except _FLOW_ERRORS as error:
        _usage_error(error)
    typer.echo(text.rstrip("\n"))


@app.command()
def version() -> None:
    """Print riverbed's version."""
    typer.echo(rb.__version__)


def _load(target: str) -> rb.Flow:
    try:
        return load_flow(target)
    except (rb.TargetError, *_FLOW_ERRORS) as error:
        _usage_error(error)


def _usage_error(error: Exception) -> NoReturn:
    kind = "" if isinstance(error, rb.TargetError) else f"{type(error).__name__}: "
    typer.echo(f"Error: {kind}{error}", err=True)
    raise typer.Exit(ExitCode.USAGE)


app.add_typer(runs_app, name="runs")
app.add_typer(letters_app, name="dead-letters")
app.command()(schedule)
app.command()(worker)


def main() -> None:
    """The ``riverbed`` console script."""
    app(prog_name="riverbed")


if __name__ == "__main__":
    main()
