"""Workflows: a flow's stages run one after the other on one input event, each step's
outputs recorded in the store before the next starts. Runner-neutral: each step runs
through ``Runner.run_step`` (the local runner runs it in-process), and the run's record,
lease and commits are its ``RunLifecycle``'s, as a stream's.

A workflow is an ordinary flow that starts at ``flow.input()`` and ends at
``stream.output()`` (see ``riverbed._model.workflow``). The walk takes the stages in
topological order, runs each as a one-stage chain (so retries, failure policies,
timeouts, counters and the step cache mean exactly what they mean in streams), and
commits a ``StepRecord`` of the stage's outputs per output port (pickled) with its stage
run. A stage that receives no event (after a filter dropped it, or on a branch's other
side) is not a step: nothing is called and nothing recorded.

Durability: the run's record (its input and target) is committed before its first step
starts, so that a crash during step 1 leaves a run to resume; each step's record is
committed (fsynced) before the next step starts, and the final status (with the pickled
output) in the same transaction as the last step: a workflow of N steps costs N + 1
commits. Concurrent workflows in one event loop share commits (group commit). Every
commit is fenced by the run's lease, renewed from a thread (a step longer than the lease
does not lose it); a run cancelled from outside (``riverbed runs cancel``) stops at the
next step boundary.

Resuming a run (``resume=RUN``) replays its recorded steps from their records, without
calling their functions, and goes on from the first unrecorded step; the function of a
step that was running when the process died is called again (at-least-once per step,
exactly-once per recorded step).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import pickle
import signal
import threading
import time
import uuid
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import FrameType
from typing import Any

from riverbed._errors import LeaseLostError, RiverbedError, RunNotResumableError, StageFailedError
from riverbed._model import data as declared
from riverbed._model.flow import Flow
from riverbed._model.plan import Chain, make_plan
from riverbed._model.stages import Port, Stage
from riverbed._model.workflow import is_workflow_output, workflow_ends
from riverbed._records import RunRecord, RunStatus, StageStatus, StepCommit, StepRecord
from riverbed._runtime.cache import StepCache
from riverbed._runtime.clock import SystemClock
from riverbed._runtime.failures import FailureLog
from riverbed._runtime.lifecycle import RunLifecycle
from riverbed._runtime.observer import Observers, RunObserver
from riverbed._runtime.restore import check_same_flow, crashed_if_dead
from riverbed._runtime.result import RunResult, StageCounters, StageStats, event_repr
from riverbed._runtime.runner import Runner, Step
from riverbed._store.protocol import Store

__all__ = ["MISSING", "WorkflowRun", "execute_workflow"]

logger = logging.getLogger("riverbed")


class _Missing:
    """The type of ``MISSING``: "no input given" (None is a valid input)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


@dataclass(frozen=True)
class _Shape:
    """What a flow's workflow runs are made of, worked out once per flow."""

    stages: tuple[Stage, ...]
    input: Stage
    output: Stage | None
    steps: tuple[Chain, ...]
    """One chain per stage that is a step, in topological order (the output excluded)."""
    version: str


_shapes: weakref.WeakKeyDictionary[Flow, _Shape] = weakref.WeakKeyDictionary()


def shape_of(flow: Flow) -> _Shape:
    """The workflow shape of ``flow`` (checked, planned without fusion); cached while the
    flow's stages stay the same objects."""
    stages = flow.stages
    known = _shapes.get(flow)
    if (
        known is not None
        and len(known.stages) == len(stages)
        and all(a is b for a, b in zip(known.stages, stages, strict=True))
    ):
        return known
    source, output = workflow_ends(flow.name, stages)
    plan = make_plan(flow.name, stages, on_error=flow.on_error, retry=flow.retry, fuse=False)
    steps = tuple(chain for chain in plan.chains if not is_workflow_output(chain.head))
    shape = _Shape(stages, source, output, steps, flow.version)
    _shapes[flow] = shape
    return shape


@dataclass
class WorkflowRun:
    """How one workflow run is to start: with ``input`` (new), or going on with run
    ``resume`` (resumed, or ``claimed`` by a worker from the queue)."""

    flow: Flow
    input: Any = MISSING
    run_id: str | None = None
    resume: str | None = None
    claimed: bool = False
    """True for a run a worker claimed: interrupted, it goes back to the queue."""
    target: str | None = None
    rerun_of: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    """Parameters recorded with a new run (JSON-able)."""
    observers: tuple[RunObserver, ...] = ()
    blocking: bool = False
    """True when the event loop runs nothing but this workflow (``rb.run``): commits are
    made in the loop's thread, saving a hand-over per commit."""


async def execute_workflow(spec: WorkflowRun, store: Store | None, runner: Runner) -> RunResult:
    """Run the workflow ``spec`` describes with ``runner``, recorded in ``store`` (None:
    nowhere); a FAILED run is returned, not raised (see ``result.error``)."""
    flow = spec.flow
    if not isinstance(flow, Flow):
        raise TypeError(f"rb.run(flow, input) takes an rb.Flow first, got {flow!r:.80}")
    shape = shape_of(flow)
    if spec.input is MISSING and spec.resume is None and spec.rerun_of is not None:
        spec.input = await asyncio.to_thread(_recorded_input, store, spec.rerun_of, flow)
    if spec.input is MISSING and spec.resume is None:
        raise TypeError(
            f"rb.run({flow.name!r}, ...) needs the workflow's input (or resume=RUN_ID to "
            "go on with a recorded run's input)"
        )
    if store is None and spec.resume is not None:
        raise ValueError("resume= needs the store the run was recorded in: pass store=")
    if spec.input is not MISSING and declared.declares_data(shape.stages):
        declared.check_input(flow.name, shape.input, spec.input)
    execution = _Execution(spec, shape, store, runner)
    result = await execution.run()
    execution.observers.tell("ended", result)
    return result


def _recorded_input(store: Store | None, run_id: str, flow: Flow) -> Any:
    """The input run ``run_id`` was started with: a re-run (``rerun_of=``) without an
    input of its own runs on it again."""
    if store is None:
        raise ValueError("rerun_of= needs the store the run was recorded in: pass store=")
    run = store.get_run(run_id)
    check_same_flow(run, flow.name)
    return pickle.loads(run.input) if run.input is not None else None


class _Execution:
    """One attempt at one workflow run."""

    def __init__(self, spec: WorkflowRun, shape: _Shape, store: Store | None, runner: Runner):
        self.spec = spec
        self.flow = spec.flow
        self.shape = shape
        self.store = store
        self.runner = runner
        self.run_id = spec.run_id or uuid.uuid4().hex[:16]
        self.failures = FailureLog(self.flow.name, run_id=self.run_id, max_errors=1000)
        self.clock = SystemClock()
        self.observers = Observers(spec.observers)
        self.failures.on_dead_letter = lambda letter: self.observers.tell("dead_letter", letter)
        self.lifecycle = (
            RunLifecycle(store, self.flow, self.run_id, version=shape.version, runner=runner.where)
            if store is not None
            else None
        )
        self.cache = StepCache(store, self.run_id) if store is not None else None
        self.stop: str | None = None
        """Why the run must stop at the next step boundary: "cancelled" (the store says
        so) or "released" (this worker is shutting down)."""
        self.started = datetime.now(UTC)
        self.steps: list[StepRecord] = []
        self.stats: dict[str, StageStats] = {}
        self.replayed: list[str] = []

    async def run(self) -> RunResult:
        recorded: dict[int, StepRecord] = {}
        input = self.spec.input
        if self.spec.resume is not None:
            old = await self._take(self.spec.resume, input)
            input = pickle.loads(old.input) if old.input is not None else None
            self.steps = await asyncio.to_thread(self._store().steps, old.run_id)
            if old.status is RunStatus.SUCCEEDED:
                outputs = pickle.loads(old.output) if old.output is not None else []
                return self._result(RunStatus.SUCCEEDED, outputs)
            recorded = {step.seq: step for step in self.steps}
        elif self.lifecycle is not None:
            await self._create(input)
        return await self._go(input, recorded)

    async def _go(self, input: Any, recorded: dict[int, StepRecord]) -> RunResult:
        if self.lifecycle is not None:
            self.lifecycle.keep_lease(self._lost_lease, asyncio.get_running_loop())
        try:
            with _interrupts(self):
                return await self._walk(input, recorded)
        except LeaseLostError as lost:
            if lost.status is RunStatus.CANCELLED:
                return self._result(RunStatus.CANCELLED, [])
            raise  # taken over: another process runs it now
        except (asyncio.CancelledError, KeyboardInterrupt):
            await self._interrupted()
            raise
        finally:
            if self.lifecycle is not None:
                self.lifecycle.stop_keeping()

    def _store(self) -> Store:
        assert self.store is not None
        return self.store

    def _lifecycle(self) -> RunLifecycle:
        assert self.lifecycle is not None
        return self.lifecycle

    def _lost_lease(self) -> None:
        self.stop = self.stop or "cancelled"

    async def _take(self, run_id: str, input: Any) -> RunRecord:
        """The stored run ``run_id``, RUNNING under this process (resumed, or claimed)."""
        lifecycle = self._lifecycle()
        if self.spec.claimed:  # RUNNING under this very worker, which claimed it
            lifecycle.run_id = run_id
            old = await asyncio.to_thread(lifecycle.claimed)
        else:
            old = await asyncio.to_thread(self._resumable, run_id, input)
            if old.status is not RunStatus.SUCCEEDED:
                old = await asyncio.to_thread(lifecycle.take_back, old)
        self.run_id = lifecycle.run_id = self.failures.run_id = old.run_id
        self.cache = StepCache(self._store(), self.run_id)
        if old.status is not RunStatus.SUCCEEDED:
            self.observers.tell("started", old)
        return old

    async def _create(self, input: Any) -> None:
        """Record the run (input, target) before its first step (a group commit)."""
        lifecycle = self._lifecycle()
        record = lifecycle.new_record(
            input=self._pickle(input, "the input"),
            input_repr=event_repr(input),
            target=self.spec.target,
            rerun_of=self.spec.rerun_of,
            params=dict(self.spec.params),
        )
        await lifecycle.create_grouped(record, blocking=self.spec.blocking)
        self.observers.tell("started", record)

    def _resumable(self, run_id: str, input: Any) -> RunRecord:
        """The stored run ``run_id``, after checking that this flow may resume it now."""
        store = self._store()
        run = store.get_run(run_id)
        check_same_flow(run, self.flow.name)
        if input is not MISSING and run.input is not None and pickle.loads(run.input) != input:
            raise ValueError(
                f"run {run.run_id} was started with another input; leave input out to "
                "resume it with its own (or start a new run for this input)"
            )
        # A queued run (SCHEDULED) is taken from the queue and run here, now: the
        # transition is a compare-and-set, so a worker claiming it at once wins or loses.
        return crashed_if_dead(store, run)

    # -- the walk ----------------------------------------------------------------------------

    async def _walk(self, input: Any, recorded: dict[int, StepRecord]) -> RunResult:
        pending: dict[Port, list[Any]] = {Port(self.shape.input.name): [input]}
        for seq, chain in enumerate(self.shape.steps):
            stage = chain.head
            step = recorded.get(seq)
            if step is not None:
                self._replay(seq, stage, step, pending)
                continue
            events = [event for port in stage.inputs for event in pending.get(port, ())]
            if not events:
                continue  # not a step: nothing reached this stage
            if self.stop is not None:
                return await self._stopped()
            done = await self._step(seq, chain, events, pending)
            if done is not None:
                return done
        outputs = self._outputs(pending)
        # No step ran in this attempt, or the last one left events nowhere but the output.
        await self._commit(StepCommit(self.run_id), None, outputs)
        return self._result(RunStatus.SUCCEEDED, outputs)

    def _replay(
        self, seq: int, stage: Stage, step: StepRecord, pending: dict[Port, list[Any]]
    ) -> None:
        """Go past step ``seq`` with its recorded outputs, without calling it."""
        if step.stage != stage.name:
            raise RunNotResumableError(
                f"run {self.run_id}'s step {seq} was stage {step.stage!r}, but flow "
                f"{self.flow.name!r} now has {stage.name!r} there: its stages changed "
                "order or names since; start a new run",
                run_id=self.run_id,
            )
        self.replayed.append(stage.name)
        self._route(stage, pickle.loads(step.output), pending)

    async def _step(
        self, seq: int, chain: Chain, events: list[Any], pending: dict[Port, list[Any]]
    ) -> RunResult | None:
        """Run and commit step ``seq``; the run's result if it ended with it."""
        stage = chain.head
        produced, counters, failure, started = await self._execute(chain, events)
        data = b""
        try:
            if failure is None and declared.declares_data(self.shape.stages):
                declared.check_step(stage, events, [e for out in produced.values() for e in out])
            if failure is None:
                data = self._pickle(produced, f"stage {stage.name!r}'s outputs")
        except (TypeError, ValueError) as error:  # the step broke its contract: it fails
            failure = self.failures.stop(stage.name, error, f"stage {stage.name!r}")
        stage_run = self._stage_run(stage, counters, failure, started)
        if failure is not None:
            await self._commit(StepCommit(self.run_id, stage_run=stage_run), failure)
            return self._result(RunStatus.FAILED, [])
        self._route(stage, produced, pending)
        later = self.shape.steps[seq + 1 :]
        last = not any(pending.get(port) for step in later for port in step.head.inputs)
        outputs = self._outputs(pending) if last else None
        record = StepRecord(self.run_id, seq, stage.name, data, datetime.now(UTC))
        self.steps.append(record)
        await self._commit(StepCommit(self.run_id, step=record, stage_run=stage_run), None, outputs)
        self.observers.tell("checkpoint", seq)
        return self._result(RunStatus.SUCCEEDED, outputs) if outputs is not None else None

    async def _execute(
        self, chain: Chain, events: list[Any]
    ) -> tuple[dict[str, list[Any]], StageCounters, StageFailedError | None, datetime]:
        """Run one stage on its events through the runner; its outputs per output port,
        its counters, the error that stopped it (policy STOP) if one did, when it began."""
        stage = chain.head
        counters = StageCounters(stage.name, stage.kind)
        started = datetime.now(UTC)
        begin = time.perf_counter()
        produced: dict[str, list[Any]] = {}
        failure: StageFailedError | None = None
        step = Step(chain, events, counters, self.failures, self.clock, self.cache)
        try:
            produced = await self.runner.run_step(step)
        except StageFailedError as error:
            failure = error
        counters.seconds = time.perf_counter() - begin
        self.stats[stage.name] = counters.freeze()
        return produced, counters, failure, started

    def _stage_run(
        self,
        stage: Stage,
        counters: StageCounters,
        failure: StageFailedError | None,
        started: datetime,
    ) -> Any:
        status = StageStatus.FAILED if failure is not None else StageStatus.SUCCEEDED
        if self.lifecycle is None:
            return None
        return self.lifecycle.stage_run(
            stage.name, counters.values(), status, started_at=started, ended_at=datetime.now(UTC)
        )

    def _route(
        self, stage: Stage, produced: dict[str, list[Any]], pending: dict[Port, Any]
    ) -> None:
        for name, items in produced.items():
            pending[Port(stage.name, name)] = items

    def _outputs(self, pending: dict[Port, list[Any]]) -> list[Any]:
        output = self.shape.output
        if output is None:
            return []
        return [event for port in output.inputs for event in pending.get(port, ())]

    def _pickle(self, value: Any, what: str) -> bytes:
        return record_bytes(value, what, self.flow.name, self.run_id)

    async def _commit(
        self,
        commit: StepCommit,
        failure: StageFailedError | None,
        outputs: list[Any] | None = None,
    ) -> None:
        """Commit one step under the run's lease, ending the run FAILED with ``failure``,
        or SUCCEEDED with ``outputs`` if given."""
        lifecycle = self.lifecycle
        if lifecycle is None:
            return
        fields: dict[str, Any] = {}
        status = None
        if failure is not None:
            status = RunStatus.FAILED
            fields = {"ended_at": datetime.now(UTC), "error": self.failures.fatal}
        elif outputs is not None:
            status = RunStatus.SUCCEEDED
            fields = {
                "ended_at": datetime.now(UTC),
                "output": self._pickle(outputs, "the output"),
                "output_repr": event_repr(outputs[0] if len(outputs) == 1 else outputs),
            }
        if status is not None:
            fields["lease_until"] = None
        if self.failures.dead_letters:  # rare: kept apart, so that StepCommit stays small
            await asyncio.to_thread(lifecycle.save_letters, list(self.failures.dead_letters))
        full = dataclasses.replace(commit, status=status, fields=fields, lease=lifecycle.lease)
        await lifecycle.commit(full, blocking=self.spec.blocking)

    # -- how a run stops early -------------------------------------------------------------

    async def _stopped(self) -> RunResult:
        """Stop at a step boundary: cancelled from outside (the store says so already),
        or this worker shutting down (the run goes back to the queue)."""
        store, lease = self._store(), self._lifecycle().lease
        assert lease is not None
        if self.stop == "released" and await asyncio.to_thread(store.release, lease):
            logger.warning("workflow run %s: back in the queue (the worker stops)", self.run_id)
            return self._result(RunStatus.SCHEDULED, [])
        record = await asyncio.to_thread(store.get_run, self.run_id)
        if record.status is RunStatus.RUNNING and record.worker != lease.worker:
            raise LeaseLostError(
                f"run {self.run_id} was taken over by {record.worker}",
                run_id=self.run_id,
                status=record.status,
                holder=record.worker,
            )
        return self._result(record.status, [])

    async def _interrupted(self) -> None:
        """The run's task was cancelled (Ctrl-C): record it CANCELLED, or put it back into
        the queue if a worker claimed it, so that it is never left RUNNING."""
        lifecycle = self.lifecycle
        if lifecycle is None or lifecycle.lease is None:
            return
        with contextlib.suppress(RiverbedError):
            await asyncio.to_thread(lifecycle.interrupted, release=self.spec.claimed)

    def _result(self, status: RunStatus, outputs: list[Any]) -> RunResult:
        output = self.shape.output
        return RunResult(
            run_id=self.run_id,
            flow=self.flow.name,
            flow_version=self.shape.version,
            status=status,
            started_at=self.started,
            ended_at=datetime.now(UTC),
            stages=dict(self.stats),
            outputs={output.name: list(outputs)} if output is not None else {},
            dead_letters=tuple(self.failures.dead_letters),
            errors=tuple(self.failures.errors),
            error=self.failures.fatal if status is RunStatus.FAILED else None,
            output=outputs[0] if outputs else None,
            steps=tuple(sorted(self.steps, key=lambda step: step.seq)),
            replayed=tuple(self.replayed),
        )


@contextlib.contextmanager
def _interrupts(execution: _Execution) -> Iterator[None]:
    """While a worker runs a claimed workflow in the main thread, SIGTERM and Ctrl-C stop
    it at the next step boundary and put it back into the queue. The handlers are
    Python's own, which run between two bytecodes even while a synchronous step keeps the
    event loop busy; observers are told (the worker stops after this run)."""
    if not execution.spec.claimed or threading.current_thread() is not threading.main_thread():
        yield
        return
    outer = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}

    def release(number: int, frame: FrameType | None) -> None:
        execution.stop = "released"
        execution.observers.tell("stopping", signal.Signals(number).name)

    for number in outer:
        signal.signal(number, release)
    try:
        yield
    finally:
        for number, handler in outer.items():
            signal.signal(number, handler)


def record_bytes(value: Any, what: str, flow: str, run_id: str) -> bytes:
    """``value`` pickled as the store records it; a TypeError saying what cannot be
    recorded and why when it cannot be pickled. A runner that runs steps elsewhere calls it
    where the step ran, since the value could not travel back either."""
    try:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as error:
        raise TypeError(
            f"workflow {flow!r}, run {run_id}: {what} cannot be pickled "
            f"({type(error).__name__}: {error}); a workflow's input, its steps' outputs "
            "and its output are recorded in the store, so they must be picklable"
        ) from error
