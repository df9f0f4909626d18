"""A stream run from start to end, whatever the runner: where it starts (new, resumed,
re-run, claimed from the queue), its record RUNNING under this process's lease, the
runner executing it, and its end recorded; with Ctrl-C and SIGTERM, a lease lost, and
observers told along the way. However the run ends (its flow failed, it was stopped or
cancelled, riverbed itself failed), the store is left with it ended or resumable, never
RUNNING under a process that has stopped.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from riverbed._errors import RunFailedError
from riverbed._model.plan import make_plan
from riverbed._model.policy import OnError
from riverbed._model.sinks import Capture
from riverbed._records import RunRecord, RunStatus, new_run_id
from riverbed._runtime.cache import StepCache
from riverbed._runtime.clock import SystemClock
from riverbed._runtime.config import RunConfig
from riverbed._runtime.lifecycle import RunLifecycle
from riverbed._runtime.observer import Observers
from riverbed._runtime.restore import RestorePoint, rerun_point, restore_point, restored
from riverbed._runtime.result import RunResult
from riverbed._runtime.runner import Runner
from riverbed._runtime.stream import StreamRun
from riverbed._runtime.workflow import WorkflowRun, execute_workflow
from riverbed._store.protocol import Store

if TYPE_CHECKING:
    from riverbed._model.flow import Flow

__all__ = ["INTERRUPTS", "execute", "execute_stream"]

logger = logging.getLogger("riverbed")

INTERRUPTS = (signal.SIGINT, signal.SIGTERM)
"""The signals that stop a run cleanly (the first) or at once (the second)."""


async def execute_stream(
    flow: Flow,
    config: RunConfig,
    store: Store | None,
    runner: Runner,
    *,
    handle_signals: bool = False,
) -> RunResult:
    """Run stream ``flow`` with ``runner``, recorded in ``store`` (None: nowhere), and
    return its result (see the module docstring). ``handle_signals``: Ctrl-C and SIGTERM
    stop it cleanly (in the main thread only)."""
    plan = make_plan(
        flow.name,
        flow.stages,
        on_error=flow.on_error,
        retry=flow.retry,
        exchange_before=runner.exchange_before,
    )
    observers = Observers(config.observers)
    run = StreamRun(
        flow,
        plan,
        config,
        config.run_id or new_run_id(),
        config.clock or SystemClock(),
        observers,
    )
    captured = {  # what capturing sinks held before: the result has the rest
        stage.name: len(stage.fn.items)
        for stage in flow.stages
        if stage.is_sink and isinstance(stage.fn, Capture)
    }
    started = datetime.now(UTC)
    if store is not None:
        _begin(run, store, runner.where)
    elif config.resume is not None or config.rerun_of is not None:
        raise ValueError("resume= and rerun_of= need the store of the run: pass store=")
    try:
        with _interruptible(run, handle_signals), _watched(run):
            error = await runner.run_stream(run)
    except BaseException as escaped:  # cancelled from outside, or a bug of riverbed
        cancelled = isinstance(escaped, asyncio.CancelledError | KeyboardInterrupt)
        if not cancelled:
            run.failures.record("<engine>", None, escaped, 1, OnError.STOP)
        await _end(run, started, captured, RunStatus.CANCELLED if cancelled else RunStatus.FAILED)
        raise
    result = await _end(run, started, captured, run.control.status(error))
    if result.status is RunStatus.FAILED and config.raise_on_failure:
        raise _failed(result, error)
    return result


async def execute(
    flow: Flow,
    config: RunConfig,
    store: Store | None,
    runner: Runner,
    *,
    handle_signals: bool = False,
) -> RunResult:
    """Run ``flow``, stream or workflow alike, as ``config`` says: the one entry for a
    run that goes on from a record (``resume``, ``rerun_of``, ``claimed``), so that a
    worker or an interface never asks which kind of flow it holds. A workflow takes the
    options that mean something for it (ids, target, observers; its input is the
    recorded one) and records steps instead of checkpoints."""
    if not flow.is_workflow:
        return await execute_stream(flow, config, store, runner, handle_signals=handle_signals)
    spec = WorkflowRun(
        flow,
        run_id=config.run_id,
        resume=config.resume or config.claimed,
        claimed=config.claimed is not None,
        target=config.target,
        rerun_of=config.rerun_of,
        params=config.params,
        observers=tuple(config.observers),
        blocking=handle_signals,
    )
    return await execute_workflow(spec, store, runner)


def _begin(run: StreamRun, store: Store, runner: str) -> None:
    """Where the run starts, its state restored, and its record RUNNING here (nothing is
    recorded when this fails: a run that may not resume, a store away)."""
    config, flow = run.config, run.flow
    point, mode = _restore_point(run, store)
    run.restore(restored(point, flow, set(run.states), config.renamed))
    run.start_point = point
    if point is not None and mode != "rerun":
        run.run_id = run.failures.run_id = point.run.run_id
    lifecycle = RunLifecycle(store, flow, run.run_id, version=flow.version, runner=runner)
    if mode == "claimed":
        record = lifecycle.claimed()
    elif mode == "resume":
        assert point is not None
        record = lifecycle.take_back(point.run)
    else:
        rerun_of = point.run.run_id if point is not None else None
        fields = {"params": config.params, "target": config.target, "rerun_of": rerun_of}
        record = lifecycle.create(lifecycle.new_record(**fields))
    run.lifecycle = lifecycle
    run.step_cache = StepCache(store, run.run_id)
    run.observers.tell("started", record)


def _restore_point(run: StreamRun, store: Store) -> tuple[RestorePoint | None, str]:
    """Where this run starts, and how: new, resuming, re-running or claimed."""
    config, flow = run.config, run.flow
    if config.resume is not None:
        return restore_point(store, config.resume, flow, compatible=config.compatible), "resume"
    if config.rerun_of is not None:
        return rerun_point(store, config.rerun_of, flow, compatible=config.compatible), "rerun"
    if config.claimed is not None:
        point = restore_point(
            store, config.claimed, flow, compatible=config.compatible, claimed=True
        )
        return point, "claimed"
    return None, "new"


@contextmanager
def _interruptible(run: StreamRun, handle_signals: bool) -> Iterator[None]:
    """While the run goes: its lease kept (lost: it stops at once), and, in the main
    thread, Ctrl-C and SIGTERM stop it cleanly (a second one at once)."""
    loop = asyncio.get_running_loop()
    if run.lifecycle is not None:
        run.lifecycle.keep_lease(run.control.lose, loop)
    signals = handle_signals and threading.current_thread() is threading.main_thread()
    interrupts = [0]

    def interrupt(number: int) -> None:
        run.observers.tell("stopping", signal.Signals(number).name)
        interrupts[0] += 1
        if interrupts[0] > 1:
            run.control.abort()
            return
        run.control.releasing = run.config.claimed is not None
        run.control.stop()
        logger.warning(
            "flow %r: stopping; draining events in flight (Ctrl-C again to stop at once)",
            run.flow.name,
        )

    if signals:
        for number in INTERRUPTS:
            loop.add_signal_handler(number, interrupt, number)
    try:
        yield
    finally:
        if signals:
            for number in INTERRUPTS:
                loop.remove_signal_handler(number)
        if run.lifecycle is not None:
            run.lifecycle.stop_keeping()


@contextmanager
def _watched(run: StreamRun) -> Iterator[None]:
    """Observers that want them are told the live counters at their interval."""
    ticker = run.observers.ticker(lambda: run.counters)
    try:
        yield
    finally:
        if ticker is not None:
            ticker.cancel()


async def _end(
    run: StreamRun, started: datetime, captured: dict[str, int], status: RunStatus
) -> RunResult:
    """The run's result, recorded in the store (fenced by its lease): with the status the
    store holds, if the run was cancelled from outside meanwhile."""
    result = _result(run, started, captured, status)
    if run.lifecycle is not None:
        release = status is RunStatus.SCHEDULED
        record: RunRecord = await asyncio.to_thread(run.lifecycle.finish, result, release=release)
        if record.status is not result.status:
            result = dataclasses.replace(result, status=record.status)
    run.observers.tell("ended", result)
    return result


def _result(
    run: StreamRun, started: datetime, captured: dict[str, int], status: RunStatus
) -> RunResult:
    flow = run.flow
    return RunResult(
        run_id=run.run_id,
        flow=flow.name,
        flow_version=flow.version,
        status=status,
        started_at=started,
        ended_at=datetime.now(UTC),
        stages={name: counters.freeze() for name, counters in run.counters.items()},
        outputs={name: flow.stage(name).fn.items[start:] for name, start in captured.items()},
        dead_letters=tuple(run.failures.dead_letters),
        errors=tuple(run.failures.errors),
        error=run.failures.fatal,
        positions={name: dict(parts) for name, parts in run.positions.items()},
    )


def _failed(result: RunResult, error: BaseException | None) -> RunFailedError:
    reason = result.error
    what = (
        f"stage {reason.stage!r}: {reason.error_type}: {reason.message}"
        if reason is not None
        else repr(error)
    )
    failed = RunFailedError(
        f"run {result.run_id} of flow {result.flow!r} failed at {what}", result=result
    )
    failed.__cause__ = error
    return failed
