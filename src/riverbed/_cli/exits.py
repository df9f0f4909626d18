"""What a ``riverbed`` command exits with: the one enum of exit codes, the one function
that maps how a run ended (or the riverbed error that stopped a command) to them, and the
one way a command reports an error: one line on stderr, never a traceback."""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable
from typing import NoReturn, ParamSpec, TypeVar

import typer

import riverbed as rb

__all__ = ["ExitCode", "command", "exit_code", "fail", "message"]

P = ParamSpec("P")
T = TypeVar("T")


class ExitCode(enum.IntEnum):
    """What the ``riverbed`` process exits with."""

    OK = 0
    """The command did its job; for a run, it SUCCEEDED."""
    FAILED = 1
    """The run FAILED; the action was refused; the store failed (unreachable past its
    retries, damaged, not writable) or the run's lease was lost; or an unexpected error
    (shown with its traceback)."""
    USAGE = 2
    """The command was wrong: a bad option, TARGET or store URL, or a malformed flow."""
    NOT_FOUND = 4
    """No stored run has this id."""
    CANCELLED = 130
    """The run was CANCELLED (Ctrl-C): 128 + SIGINT, as shells report it."""


_BY_STATUS = {
    rb.RunStatus.SUCCEEDED: ExitCode.OK,
    rb.RunStatus.FAILED: ExitCode.FAILED,
    rb.RunStatus.CANCELLED: ExitCode.CANCELLED,
}
USAGE_ERRORS = (rb.TargetError, rb.FlowDefinitionError, rb.FlowSerializationError)
"""Riverbed errors that say the command was wrong (exit 2), not that the run failed."""


def exit_code(outcome: rb.RunStatus | BaseException) -> ExitCode:
    """The exit code for how a run ended, or for the riverbed error that stopped a
    command. A store that stayed unreachable, a lost lease, a refused resume: 1, the
    command was right; a bad TARGET or flow: 2; an unknown run: 4."""
    if isinstance(outcome, rb.RunStatus):
        return _BY_STATUS.get(outcome, ExitCode.FAILED)
    if isinstance(outcome, rb.RunNotFoundError):
        return ExitCode.NOT_FOUND
    if isinstance(outcome, USAGE_ERRORS):
        return ExitCode.USAGE
    return ExitCode.FAILED


def message(error: rb.RiverbedError) -> str:
    """A riverbed error as the one line a command prints (after ``Error: ``)."""
    if isinstance(error, rb.InternalError):
        return f"internal error (a bug in riverbed: please report it): {error}"
    if isinstance(error, rb.FlowDefinitionError | rb.FlowSerializationError):
        return f"{type(error).__name__}: {error}"
    return str(error)


def fail(text: str, code: ExitCode = ExitCode.FAILED) -> NoReturn:
    """Print ``Error: text`` on stderr and exit with ``code``."""
    typer.echo(f"Error: {text}", err=True)
    raise typer.Exit(code)


def command(function: Callable[P, T]) -> Callable[P, T]:
    """A command whose riverbed errors are one line on stderr and their exit code."""

    @functools.wraps(function)
    def wrapped(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return function(*args, **kwargs)
        except rb.RiverbedError as error:
            fail(message(error), exit_code(error))

    return wrapped
