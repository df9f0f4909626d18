"""A TARGET typed on the command line, loaded (``riverbed._targets.load_flow``): a bad
TARGET, a malformed flow or a syntax error in the flow's file is one ``Error:`` line and
exit 2, not a traceback."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import typer

import riverbed as rb
from riverbed._cli.exits import ExitCode, fail
from riverbed._cli.failure import shown_path
from riverbed._targets import as_flow, find_target

__all__ = ["load"]


def load(target: str, params: Mapping[str, Any] | None = None) -> rb.Flow:
    """The flow ``target`` names; a function is called with ``params`` as keywords. A Flow
    given parameters only records them with its runs: said on stderr, with the fix."""
    try:
        found = find_target(target)
    except SyntaxError as error:  # the user's file does not parse: where, in one line
        where = f" ({shown_path(error.filename)}, line {error.lineno})" if error.filename else ""
        fail(f"{type(error).__name__}: {error.msg}{where}", ExitCode.USAGE)
    if params and isinstance(found, rb.Flow):
        names = ", ".join(params)
        typer.echo(
            f"Warning: {target!r} is a Flow, which takes no parameters: {names} are only "
            "recorded with the run. To use them, point TARGET at a function that takes them "
            "as keyword arguments and returns the Flow",
            err=True,
        )
    return as_flow(found, target, params or {})
