"""Specs of the operators that call the user's function off the fused loop: ``parallel_map``
(one call per event, on N workers) and ``batch_map`` (one call per list of events).

Both are ``PROCESS`` stages, so the flow stays frozen data: a spec holds the settings and
the user's function, serializes by import reference and is fingerprinted into the stage's
version like any processor. Unlike other processors they await the user's calls (pools,
coroutines, retries with backoff), which a synchronous ``Processor`` cannot: each runner
executes them with its own code (``riverbed._runtime.chains.parallel`` for the local one),
over the same run-owned state dict, so checkpoints include what is in flight or buffered.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from riverbed._errors import FlowDefinitionError
from riverbed._model import callables
from riverbed._model.process import Processor, ProcessorSpec
from riverbed._model.settings import StageOptions, stage_settings

if TYPE_CHECKING:
    from riverbed._model.streams import Stream

__all__ = ["MODES", "BatchMap", "ParallelMap", "RunnerOperatorSpec"]

Mode = Literal["thread", "process", "async"]
MODES: tuple[str, ...] = ("thread", "process", "async")
GAPS: tuple[str, ...] = ("wait", "skip")

IN_FLIGHT_PER_WORKER = 4
"""An ordered map keeps at most ``workers * IN_FLIGHT_PER_WORKER`` events between taking
one and emitting it (with ``gap="wait"``): enough to keep every worker busy while a slow
event holds up the ones behind it, without letting memory grow behind a stuck one."""


class RunnerOperatorSpec(ProcessorSpec):
    """Base of the specs that a runner executes with its own code (they await calls)."""

    keyed: ClassVar[bool] = False  # takes any stream, keyed or not: fn gets the event as is
    emits_keyed: ClassVar[bool] = False

    def create(self, state: dict[str, Any]) -> Processor:
        """Not a synchronous processor: a runner executes this spec itself."""
        raise TypeError(
            f"{self.operator} is executed by the runner (it awaits its calls); it has no "
            "synchronous Processor: run the flow (flow.run, riverbed.testing.run_flow)"
        )


@dataclass(frozen=True)
class ParallelMap(RunnerOperatorSpec):
    """``fn(event)`` for each event on ``workers`` workers; see ``Stream.parallel_map``.

    >>> ParallelMap(abs, workers=2).operator
    'parallel_map'
    """

    fn: Callable[[Any], Any]
    workers: int
    mode: Mode = "thread"
    ordered: bool = True
    gap: Literal["wait", "skip"] = "wait"
    max_buffered: int = 1000
    """With ``gap="skip"``: how many results may wait behind a missing one before they
    are emitted past it."""

    operator: ClassVar[str] = "parallel_map"

    @property
    def window(self) -> int:
        """Most events taken but not yet emitted while an earlier one is missing."""
        return self.workers * IN_FLIGHT_PER_WORKER


@dataclass(frozen=True)
class BatchMap(RunnerOperatorSpec):
    """``fn(list_of_events)`` -> a list of as many outputs; see ``Stream.batch_map``.

    >>> BatchMap(list, max_size=100, max_wait=0.5).operator
    'batch_map'
    """

    fn: Callable[[list[Any]], Any]
    max_size: int
    max_wait: float | None = None
    """Seconds after the first waiting event when a partial batch is called anyway; None
    waits for ``max_size`` events (or the end of the stream)."""

    operator: ClassVar[str] = "batch_map"


def parallel_map_spec(
    fn: Any,
    *,
    workers: Any,
    mode: Any,
    ordered: Any,
    gap: Any,
    max_buffered: Any,
    stage: str,
    flow: str,
) -> ParallelMap:
    """A checked ``ParallelMap``: each wrong setting is a ``FlowDefinitionError`` naming
    the stage, the function and the fix."""
    callables.require_callable(fn, stage=stage, role="the parallel_map function", flow=flow)
    where = f"parallel_map stage {stage!r} ({callables.describe(fn)})"

    def fail(message: str) -> FlowDefinitionError:
        return FlowDefinitionError(f"{where}: {message}", flow=flow, stage=stage)

    if not _is_int(workers) or workers < 1:
        raise fail(f"workers must be an int >= 1, got {workers!r}")
    if mode not in MODES:
        raise fail(f"mode must be one of {list(MODES)}, got {mode!r}")
    if not isinstance(ordered, bool):
        raise fail(f"ordered must be True or False, got {ordered!r}")
    if gap not in GAPS:
        raise fail(
            f"gap must be 'wait' (hold results behind a missing one) or 'skip' (emit them "
            f"past it after max_buffered), got {gap!r}"
        )
    if not _is_int(max_buffered) or max_buffered < 1:
        raise fail(f"max_buffered must be an int >= 1, got {max_buffered!r}")
    is_async = callables.is_async(fn)
    if mode == "async" and not is_async:
        raise fail(
            "mode='async' needs an async def function; for a blocking function use "
            "mode='thread', for CPU-bound Python mode='process'"
        )
    if mode != "async" and is_async:
        raise fail(f"mode={mode!r} runs plain functions, but this one is async: use mode='async'")
    if mode == "process" and callables.import_ref(fn) is None:
        raise fail(
            "mode='process' sends the function to worker processes by name, and this one "
            "cannot be imported by name (a lambda, a closure, a local function, a partial or "
            "a bound method); move it to module level as a named def"
        )
    callables.check_arity(fn, 1, stage=stage, role="the parallel_map function", flow=flow)
    return ParallelMap(fn, workers, mode, ordered, gap, max_buffered)


def batch_map_spec(fn: Any, *, max_size: Any, max_wait: Any, stage: str, flow: str) -> BatchMap:
    """A checked ``BatchMap`` (see ``parallel_map_spec``)."""
    callables.require_callable(fn, stage=stage, role="the batch_map function", flow=flow)
    where = f"batch_map stage {stage!r} ({callables.describe(fn)})"
    if not _is_int(max_size) or max_size < 1:
        raise FlowDefinitionError(
            f"{where}: max_size must be an int >= 1, got {max_size!r}", flow=flow, stage=stage
        )
    if max_wait is not None and (
        isinstance(max_wait, bool)
        or not isinstance(max_wait, int | float)
        or not 0 < max_wait < math.inf
    ):
        raise FlowDefinitionError(
            f"{where}: max_wait must be a finite number of seconds > 0 (or None to wait for "
            f"max_size events), got {max_wait!r}",
            flow=flow,
            stage=stage,
        )
    callables.check_arity(fn, 1, stage=stage, role="the batch_map function (a list)", flow=flow)
    return BatchMap(fn, max_size, None if max_wait is None else float(max_wait))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def add_parallel_map(
    stream: Stream, fn: Any, name: str | None, policy: StageOptions, **settings: Any
) -> Stream:
    """The body of ``Stream.parallel_map``: check, then add the ``PROCESS`` stage."""
    _refuse_concurrency(policy, "parallel_map", fn)
    stage = _claim(stream, fn, name, "parallel_map")
    spec = parallel_map_spec(fn, stage=stage, flow=stream.flow.name, **settings)
    _check_policy(policy, stage, stream.flow.name, fn)
    return stream.process(spec, name=stage, **policy)


def add_batch_map(
    stream: Stream, fn: Any, name: str | None, policy: StageOptions, **settings: Any
) -> Stream:
    """The body of ``Stream.batch_map``: check, then add the ``PROCESS`` stage."""
    _refuse_concurrency(policy, "batch_map", fn)
    stage = _claim(stream, fn, name, "batch_map")
    spec = batch_map_spec(fn, stage=stage, flow=stream.flow.name, **settings)
    _check_policy(policy, stage, stream.flow.name, fn)
    return stream.process(spec, name=stage, **policy)


def _refuse_concurrency(policy: StageOptions, operator: str, fn: Any) -> None:
    """``concurrency=`` is refused: the operator's own setting bounds its calls."""
    if "concurrency" in policy and callable(fn):
        knob = "workers" if operator == "parallel_map" else "max_size"
        raise TypeError(
            f"{operator}({callables.describe(fn)}): concurrency= does not apply here; "
            f"{knob}= sets how much runs at once"
        )


def _check_policy(policy: StageOptions, stage: str, flow: str, fn: Any) -> None:
    """The failure settings, checked with messages naming the user's function (not the
    spec, which ``Stream.process`` would name)."""
    stage_settings(policy, stage, flow, fn)


def _claim(stream: Stream, fn: Any, name: str | None, operator: str) -> str:
    """The stage's name: ``name``, or the function's name (the operator's for a lambda)."""
    derived = callables.short_name(fn) if callable(fn) else operator
    return stream.flow._claim_name(
        name if name is not None else (operator if derived == "lambda" else derived),
        explicit=name is not None,
    )
