"""``riverbed ui``: the web dashboard over a store, served by uvicorn (the ``serve``
extra: ``pip install 'riverbed[serve]'``).

The command lives here, beside the dashboard whose buttons reuse the CLI's paths, and
``riverbed.cli`` adds it to the ``riverbed`` command: ``riverbed._cli`` never imports the
dashboard (the two packages would import each other). Nothing of FastAPI or uvicorn is
imported until the command runs."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from riverbed._cli import options as opt
from riverbed._cli.exits import ExitCode, command, fail
from riverbed._cli.store import open_store

__all__ = ["TOKEN_VAR", "ui"]

TOKEN_VAR = "RIVERBED_TOKEN"
"""The environment variable that gives the dashboard's token when --token is not given."""

Host = Annotated[
    str, typer.Option(help="Address to listen on: another machine reaches it only if told.")
]
Port = Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")]
Token = Annotated[
    str | None,
    typer.Option(
        help=f"A token every request must show (default: ${TOKEN_VAR}); open the "
        "dashboard once with ?token=TOKEN.",
        show_default=False,
    ),
]


@command
def ui(
    store: opt.StoreOption = None,
    host: Host = "127.0.0.1",
    port: Port = 8000,
    token: Token = None,
) -> None:
    """Serve the web dashboard of a store: runs, their stages, errors and checkpoints,
    dead letters, the queue and its workers, with buttons to resume, re-run, cancel,
    replay and discard. Runs started by its buttons run in this process: start it where
    the flows' code can be imported. Stop it with Ctrl-C."""
    try:
        import uvicorn

        from riverbed._serve.ui import dashboard_app
    except ImportError as error:
        fail(
            f"the dashboard needs the serve extra ({error.name} is missing): "
            "pip install 'riverbed[serve]'",
            ExitCode.USAGE,
        )
    token = token or os.environ.get(TOKEN_VAR) or None
    with open_store(store) as opened:
        app = dashboard_app(opened, token=token)
        typer.echo(f"riverbed dashboard of {opened.url} on http://{host}:{port}/", err=True)
        uvicorn.run(app, host=host, port=port, log_level="warning")
