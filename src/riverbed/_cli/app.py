"""The ``riverbed`` command: its commands put together, ``--version``, and the two that
only look at a flow (``graph``, ``version``)."""

from __future__ import annotations

import enum
from typing import Annotated

import typer

import riverbed as rb
from riverbed._cli import options as opt
from riverbed._cli.again import rerun, resume_run
from riverbed._cli.exits import command
from riverbed._cli.letters import discard_letters, list_letters, replay_letters
from riverbed._cli.queue import schedule, worker
from riverbed._cli.recover import recover_runs
from riverbed._cli.run import run
from riverbed._cli.runs import cancel_run, list_runs, prune_runs, show_run
from riverbed._cli.targets import load

__all__ = ["GraphFormat", "app", "main"]


class GraphFormat(enum.StrEnum):
    """What ``riverbed graph`` prints."""

    MERMAID = "mermaid"
    """A Mermaid flowchart (``Flow.to_mermaid``), for Markdown or mermaid.live."""
    TEXT = "text"
    """One line per stage (``Flow.describe``); also shows flows that do not validate."""
    JSON = "json"
    """The flow serialized (``Flow.to_json``), callables by import reference."""


# rich_markup_mode=None: plain help (click's), paragraphs rewrapped to the terminal, and
# usage errors as plain lines. Rich's boxes kept the docstrings' own line breaks and cut
# sentences at 80 columns.
app = typer.Typer(
    name="riverbed",
    help="Run and inspect riverbed flows. TARGET is module:attr or path/to/file.py:attr.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_show_locals=False,  # locals of user code may hold secrets
)


def _print_version(wanted: bool) -> None:
    if wanted:
        typer.echo(rb.__version__)
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print riverbed's version and exit.",
            callback=_print_version,
            is_eager=True,
        ),
    ] = False,
) -> None:
    """Run and inspect riverbed flows. TARGET is module:attr or path/to/file.py:attr."""


@command
def graph(
    target: opt.Target,
    output_format: Annotated[
        GraphFormat, typer.Option("--format", "-f", help="What to print.")
    ] = GraphFormat.MERMAID,
) -> None:
    """Print a flow's graph: a Mermaid flowchart, a text listing, or its JSON."""
    flow = load(target)
    show = {
        GraphFormat.MERMAID: flow.to_mermaid,
        GraphFormat.TEXT: flow.describe,
        GraphFormat.JSON: flow.to_json,
    }[output_format]
    typer.echo(show().rstrip("\n"))


def version() -> None:
    """Print riverbed's version (as --version does)."""
    typer.echo(rb.__version__)


runs_app = typer.Typer(
    help="Stored runs: list, show, resume, re-run, cancel, recover, prune.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
for name, function in (
    ("list", list_runs),
    ("show", show_run),
    ("resume", resume_run),
    ("rerun", rerun),
    ("cancel", cancel_run),
    ("recover", recover_runs),
    ("prune", prune_runs),
):
    runs_app.command(name)(function)

letters_app = typer.Typer(
    help="Dead letters: list them, replay them, discard them.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
letters_app.command("list")(list_letters)
letters_app.command("replay")(replay_letters)
letters_app.command("discard")(discard_letters)

app.command()(run)
app.command()(graph)
app.command()(version)
app.add_typer(runs_app, name="runs")
app.add_typer(letters_app, name="dead-letters")
app.command()(schedule)
app.command()(worker)


def main() -> None:
    """The ``riverbed`` console script."""
    app(prog_name="riverbed")
