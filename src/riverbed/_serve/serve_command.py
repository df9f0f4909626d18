"""``riverbed serve TARGET``: run a flow as an HTTP service (docs/serve.md)."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from riverbed._cli import options as opt
from riverbed._cli.exits import command
from riverbed._cli.targets import load

__all__ = ["serve"]

Host = Annotated[
    str,
    typer.Option(help="Address to listen on (127.0.0.1: this machine only; 0.0.0.0: all)."),
]
Port = Annotated[int, typer.Option(min=0, max=65535, help="TCP port to listen on.")]
Token = Annotated[
    str | None,
    typer.Option(
        help="Bearer token every endpoint but /healthz and /readyz requires "
        "(default: $RIVERBED_TOKEN; none: no token asked).",
        show_default=False,
    ),
]
MaxBody = Annotated[int, typer.Option(min=1, help="Bytes a request body may have.")]
ServeStore = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="Store URL: the run is recorded and a 202 means the events are in a committed "
        "checkpoint. Without it, nothing is recorded and 202 means queued in memory.",
        show_default=False,
    ),
]


@command
def serve(
    target: opt.Target,
    store: ServeStore = None,
    host: Host = "127.0.0.1",
    port: Port = 8000,
    token: Token = None,
    max_body: MaxBody = 1_000_000,
    checkpoint_interval: opt.CheckpointInterval = None,
) -> None:
    """Run a flow as an HTTP service: POST /events/SOURCE feeds its rb.http sources,
    GET /metrics has its Prometheus metrics, /docs its OpenAPI page. Ctrl-C stops it: the
    sources end, what was accepted drains through the flow."""
    try:
        import uvicorn

        from riverbed._serve.app import service_app
    except ImportError as error:
        typer.echo(f"riverbed serve needs pip install 'riverbed[serve]' ({error})", err=True)
        raise typer.Exit(2) from None
    flow = load(target)
    options = {} if checkpoint_interval is None else {"checkpoint_interval": checkpoint_interval}
    app = service_app(
        flow,
        store=store if store is not None else False,
        token=token or os.environ.get("RIVERBED_TOKEN") or None,
        max_body=max_body,
        options={"target": target, **options},
    )
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False)
