"""The per-stage settings every builder method takes as keyword arguments (``on_error``,
``retry``, ``timeout``, ``concurrency``, ``cache``, and a workflow step's declared data
``reads`` / ``writes`` and ``queue``), checked once for all of them."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

from riverbed._errors import FlowDefinitionError
from riverbed._model import callables
from riverbed._model.policy import OnError, Retry
from riverbed._model.stages import CACHEABLE
from riverbed._records import check_queue

__all__ = ["CACHEABLE", "SETTINGS", "StageOptions", "check_step_queue", "stage_settings"]


class StageOptions(TypedDict, total=False):
    """The per-stage settings, as keywords of every builder method (``map``, ``sink``,
    ``window``...), typed for type checkers and editors; checked at run time by
    ``stage_settings`` for code that has neither."""

    on_error: OnError
    """What a failure of the stage's function does (default: the flow's ``on_error``)."""
    retry: Retry
    """How often, and how spaced, a failing call is tried again (default: the flow's)."""
    timeout: float
    """Seconds a call may take; a sync function with a timeout runs in a thread."""
    concurrency: int
    """Calls of an async function (or of a sync one with a timeout) in flight at once."""
    cache: bool
    """Memoize the stage's outputs in the store's step cache (pure operators only)."""
    reads: Sequence[str]
    """Workflows: the context keys the step reads (see docs/workflows.md, declared data)."""
    writes: Sequence[str]
    """Workflows: the context keys the step adds to the context."""
    queue: str
    """Workflows: the named queue whose workers run the step, as a run of its own
    (``riverbed worker --queue NAME``); by default the workflow's own run runs it."""


SETTINGS = frozenset(StageOptions.__annotations__)


def stage_settings(policy: Mapping[str, Any], stage: str, flow: str, fn: Any) -> dict[str, Any]:
    """Check the per-stage settings a builder method received as keyword arguments."""
    where = f"stage {stage!r} ({callables.describe(fn)})"
    unknown = set(policy) - SETTINGS
    if unknown:
        raise TypeError(
            f"{where}: unknown setting(s) {sorted(unknown)}; the settings are {sorted(SETTINGS)}"
        )
    on_error = policy.get("on_error")
    if on_error is not None and not isinstance(on_error, OnError):
        raise TypeError(f"{where}: on_error takes an rb.OnError, got {on_error!r}")
    retry = policy.get("retry")
    if retry is not None and not isinstance(retry, Retry):
        raise TypeError(f"{where}: retry takes an rb.Retry, got {retry!r}")
    timeout = policy.get("timeout")
    # bool is an int, and NaN compares false with everything: both would slip past "<= 0".
    if timeout is not None and (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not 0 < timeout < math.inf
    ):
        raise FlowDefinitionError(
            f"{where}: timeout must be a finite number of seconds > 0, got {timeout!r}",
            flow=flow,
            stage=stage,
        )
    check_step_queue(policy.get("queue"), where, stage, flow)
    cache = policy.get("cache")
    if cache is not None and not isinstance(cache, bool):
        raise TypeError(f"{where}: cache takes True or False, got {cache!r}")
    concurrency = policy.get("concurrency")
    if concurrency is not None and (
        isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1
    ):
        raise FlowDefinitionError(
            f"{where}: concurrency must be an int >= 1, got {concurrency!r}",
            flow=flow,
            stage=stage,
        )
    if (
        concurrency is not None
        and timeout is None
        and not callables.is_async(getattr(fn, "write_batch", fn))
    ):
        raise FlowDefinitionError(
            f"{where}: concurrency= applies to async functions (and to sync ones with a "
            "timeout=, which run in threads); this one is synchronous and runs one call at "
            "a time: remove concurrency=, or make the function async def",
            flow=flow,
            stage=stage,
        )
    fields = dict(policy)
    if fields.get("cache") is None:
        fields.pop("cache", None)
    for name in ("reads", "writes"):
        if name in fields:
            fields[name] = context_keys(fields[name], f"{where}: {name}")
    return fields


def context_keys(keys: Any, where: str) -> tuple[str, ...]:
    """Declared context keys as a tuple of distinct non-empty strings (a lone string is
    one key, not its letters)."""
    if isinstance(keys, str):
        keys = (keys,)
    if not isinstance(keys, Sequence | set | frozenset) or not all(
        isinstance(key, str) and key for key in keys
    ):
        raise TypeError(f"{where} takes context keys (non-empty strings), got {keys!r:.80}")
    unique = tuple(dict.fromkeys(keys))
    if len(unique) != len(tuple(keys)):
        raise FlowDefinitionError(f"{where} names a key twice: {list(keys)!r:.80}")
    return unique


def check_step_queue(queue: Any, where: str, stage: str, flow: str | None = None) -> None:
    """A step's ``queue=`` (a stage setting, or a graph node's ``"queue"``): None, or a
    queue name (else an error saying what one is)."""
    if queue is None:
        return
    try:
        check_queue(queue)
    except ValueError as error:
        raise FlowDefinitionError(f"{where}: queue: {error}", flow=flow, stage=stage) from None
