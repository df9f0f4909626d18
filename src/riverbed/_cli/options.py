"""The options that several commands share, and the parsing of what users type into them
(NAME=VALUE parameters, OLD=NEW renames, seconds, durations like ``7d``, JSON input). A
value that does not parse is one ``Error:`` line and exit 2, saying what to write."""

from __future__ import annotations

import json
import os
import re
from datetime import timedelta
from typing import Annotated, Any

import typer

import riverbed as rb
from riverbed._cli.exits import ExitCode, fail

__all__ = [
    "CheckpointInterval",
    "Compatible",
    "DeprecatedCheckpointEvery",
    "JsonOption",
    "MaybeTarget",
    "Parallelism",
    "Params",
    "RayAddress",
    "Rename",
    "RunArg",
    "RunnerName",
    "StoreOption",
    "Target",
    "checkpoint_options",
    "duration",
    "json_input",
    "parameters",
    "positive_seconds",
    "renamed",
    "runner_options",
]

StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="Store URL (default: $RIVERBED_STORE, else ./.riverbed).",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
Target = Annotated[
    str,
    typer.Argument(
        help="module:attr or path/to/file.py:attr: a Flow, or a function returning one.",
        metavar="TARGET",
        show_default=False,
    ),
]
MaybeTarget = Annotated[
    str | None,
    typer.Argument(
        help="module:attr of the flow (default: the one the run recorded).", show_default=False
    ),
]
RunArg = Annotated[str, typer.Argument(help="A run id (or a unique prefix of 6+ characters).")]
Params = Annotated[
    list[str] | None,
    typer.Option(
        "--param",
        "-p",
        metavar="NAME=VALUE",
        help="A parameter of the run (VALUE as JSON if it parses), passed to a TARGET that is "
        "a function as a keyword argument (repeatable).",
        show_default=False,
    ),
]
Compatible = Annotated[
    bool,
    typer.Option("--compatible", help="Go on although the flow changed since the checkpoint."),
]
Rename = Annotated[
    list[str] | None,
    typer.Option(
        "--rename",
        metavar="OLD=NEW",
        help="A stage renamed since the checkpoint: its state goes to NEW (repeatable).",
        show_default=False,
    ),
]
CheckpointInterval = Annotated[
    float | None,
    typer.Option(
        "--checkpoint-interval",
        help="Seconds between checkpoints (> 0; default: 5, so that a crashed run resumes).",
        show_default=False,
    ),
]
RunnerName = Annotated[
    str | None,
    typer.Option(
        "--runner",
        help="What executes the runs: local (this process) or ray (a Ray cluster; "
        "pip install 'riverbed[ray]'). Default: $RIVERBED_RUNNER, else local.",
        show_default=False,
    ),
]
RayAddress = Annotated[
    str | None,
    typer.Option(
        "--address",
        help="With --runner ray: the cluster to join (auto, ray://HOST:10001); default: a "
        "new local Ray instance using every core.",
        show_default=False,
    ),
]
Parallelism = Annotated[
    int | None,
    typer.Option(
        "--parallelism",
        min=1,
        help="With --runner ray: actors per stage (default: the cluster's CPUs).",
        show_default=False,
    ),
]
DeprecatedCheckpointEvery = Annotated[
    float | None,
    typer.Option("--checkpoint-every", hidden=True, show_default=False),
]
"""The old spelling of --checkpoint-interval, still accepted (with a warning)."""


def parameters(pairs: list[str] | None) -> dict[str, Any]:
    """``-p NAME=VALUE`` options as a run's params: VALUE as JSON if it parses (``3``,
    ``true``, ``[1, 2]``), else as the text it is (``2026-11-26``)."""
    parsed: dict[str, Any] = {}
    for pair in pairs or ():
        name, equals, value = pair.partition("=")
        if not equals or not name:
            fail(f"--param {pair!r}: write NAME=VALUE", ExitCode.USAGE)
        try:
            parsed[name] = json.loads(value)
        except json.JSONDecodeError:
            parsed[name] = value
    return parsed


def renamed(pairs: list[str] | None) -> dict[str, str]:
    """``--rename OLD=NEW`` options as the ``renamed=`` mapping of a run."""
    mapping = {}
    for pair in pairs or ():
        old, sep, new = pair.partition("=")
        if not (sep and old and new):
            fail(f"--rename takes OLD=NEW (two stage names), got {pair!r}", ExitCode.USAGE)
        mapping[old] = new
    return mapping


def positive_seconds(option: str, value: float | None) -> float | None:
    """``value`` if it is None or a number of seconds > 0; else a usage error naming
    ``option``."""
    if value is not None and not value > 0:  # `not >` also refuses NaN
        fail(f"{option} must be a number of seconds > 0, got {value:g}", ExitCode.USAGE)
    return value


def runner_options(
    name: str | None, address: str | None, parallelism: int | None
) -> dict[str, Any]:
    """``--runner``, ``--address`` and ``--parallelism`` as the ``runner`` option of a
    run (none: the default runner, ``$RIVERBED_RUNNER`` else local)."""
    chosen = name or os.environ.get("RIVERBED_RUNNER") or "local"
    if chosen not in ("local", "ray"):
        fail(f"--runner takes local or ray, got {chosen!r}", ExitCode.USAGE)
    if chosen == "local":
        if address is not None or parallelism is not None:
            fail("--address and --parallelism go with --runner ray", ExitCode.USAGE)
        return {} if name is None else {"runner": None}
    address = address or os.environ.get("RIVERBED_RAY_ADDRESS") or None
    return {"runner": rb.RayRunner(address, parallelism=parallelism)}


def checkpoint_options(interval: float | None, every: float | None) -> dict[str, Any]:
    """``--checkpoint-interval`` (or its old spelling ``--checkpoint-every``) as the
    ``checkpoint_interval`` option of a run: the same name as in ``Flow.run``."""
    if every is not None:
        if interval is not None:
            fail(
                "give --checkpoint-interval only (--checkpoint-every is its old name)",
                ExitCode.USAGE,
            )
        typer.echo("Warning: --checkpoint-every is now --checkpoint-interval", err=True)
        interval = every
    seconds = positive_seconds("--checkpoint-interval", interval)
    return {} if seconds is None else {"checkpoint_interval": seconds}


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def duration(option: str, text: str) -> timedelta:
    """A duration written like ``30m``, ``12h``, ``7d`` or ``1d12h`` (units s, m, h, d, w),
    > 0; anything else is a usage error naming ``option``."""
    cleaned = text.strip().lower()
    parts = _DURATION.findall(cleaned)
    seconds = sum(float(number) * _UNITS[unit] for number, unit in parts)
    if not parts or "".join(n + u for n, u in parts) != cleaned or seconds <= 0:
        fail(
            f"{option} takes a duration such as 30m, 12h, 7d or 1d12h (units s, m, h, d, w), "
            f"got {text!r}",
            ExitCode.USAGE,
        )
    return timedelta(seconds=seconds)


def json_input(text: str | None) -> tuple[bool, Any]:
    """``--input JSON`` parsed: (given, value); not JSON is a usage error."""
    if text is None:
        return False, None
    try:
        return True, json.loads(text)
    except json.JSONDecodeError as error:
        fail(f"--input is not JSON: {error}", ExitCode.USAGE)
