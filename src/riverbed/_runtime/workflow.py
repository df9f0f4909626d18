"""Workflows: a flow's stages run on one input event, each step's outputs recorded in the
store before anything downstream of it starts; independent branches run at once.
Runner-neutral: each step runs through ``Runner.run_step`` (the local runner runs it
in-process), and the run's record, lease and commits are its ``RunLifecycle``'s, as a
stream's.

A workflow is an ordinary flow that starts at ``flow.input()`` and ends at
``stream.output()`` (see ``riverbed._model.workflow``), or one built from a graph given as
data (``riverbed._model.dag``). The walk (``riverbed._runtime.frontier`` says which steps
may start) starts every step whose inputs are settled, each as a one-stage chain (so
retries, failure policies, timeouts, counters and the step cache mean exactly what they
mean in streams) in a task of its own, and commits a ``StepRecord`` of the stage's
outputs per output port (pickled) with its stage run as each one finishes. A step's
``seq`` is its stage's place in topological order, whatever order the steps finish in. A
stage that receives no event (after a filter dropped it, or on a branch's other side) is
not a step: nothing is called and nothing recorded. A step that fails (policy STOP) ends
the run FAILED; the steps of other branches still running are cancelled, unrecorded, and
run again on resume.

Durability: the run's record (its input and target) is committed before its first step
starts, so that a crash during step 1 leaves a run to resume; each step's record is
committed (fsynced) before the next step starts, and the final status (with the pickled
output) in the same transaction as the last step: a workflow of N steps costs N + 1
commits (one more when a graph node ignores an arrival after its step was committed:
its stage run is committed again with the count). Concurrent workflows in one event loop
share commits (group commit). Every commit is fenced by the run's lease, renewed from a
thread (a step longer than the lease does not lose it); a run cancelled from outside
(``riverbed runs cancel``) stops at the next step boundary.

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
import time
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

from riverbed._errors import LeaseLostError, RiverbedError, RunNotResumableError, StageFailedError
from riverbed._model import data as declared
from riverbed._model.flow import Flow
from riverbed._model.plan import Chain
from riverbed._model.stages import Port, Stage
from riverbed._records import (
    RunRecord,
    RunStatus,
    StageStatus,
    StepCommit,
    StepRecord,
    new_run_id,
)
from riverbed._runtime import queued
from riverbed._runtime.cache import StepCache
from riverbed._runtime.clock import SystemClock
from riverbed._runtime.failures import FailureLog
from riverbed._runtime.frontier import Frontier
from riverbed._runtime.lifecycle import RunLifecycle
from riverbed._runtime.observer import Observers, RunObserver
from riverbed._runtime.restore import check_same_flow, crashed_if_dead
from riverbed._runtime.result import RunResult, StageCounters, StageStats, event_repr
from riverbed._runtime.runner import Runner, Step
from riverbed._runtime.workflow_shape import MISSING, Shape, shape_of
from riverbed._runtime.workflow_signals import released_on_signal
from riverbed._store.protocol import Store

__all__ = ["WorkflowRun", "execute_workflow", "record_bytes"]

logger = logging.getLogger("riverbed")


class _Outcome(NamedTuple):
    """What a step's run gives back."""

    produced: dict[str, list[Any]] | None
    """Its outputs per output port; None for a step run the run stopped waiting for (it
    must stop, ``stop``): not a step to commit."""
    counters: StageCounters
    failure: StageFailedError | None
    """The error that stopped it (policy STOP), or None."""
    started: datetime
    events: list[Any]
    """What it received (its declared reads are checked against them)."""


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
    if run.step is not None:
        raise ValueError(
            f"run {run_id} is step {run.step!r} of run {run.parent}, run on a queue for it: "
            f"re-run {run.parent} instead"
        )
    return pickle.loads(run.input) if run.input is not None else None


class _Execution:
    """One attempt at one workflow run."""

    def __init__(self, spec: WorkflowRun, shape: Shape, store: Store | None, runner: Runner):
        self.spec = spec
        self.flow = spec.flow
        self.shape = shape
        self.store = store
        self.runner = runner
        self.run_id = spec.run_id or new_run_id()
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
        self.finished: dict[str, tuple[StageCounters, datetime]] = {}
        """The counters and start of each step committed in this attempt."""
        self.record: RunRecord | None = None
        """The run as stored (created, resumed or claimed); None without a store."""
        self.step: str | None = None
        """For a step run (one step of another workflow run, on its stage's queue): the
        stage it runs; see ``riverbed._runtime.queued``."""

    async def run(self) -> RunResult:
        recorded: dict[int, StepRecord] = {}
        input = self.spec.input
        if self.spec.resume is not None:
            old = await self._take(self.spec.resume, input)
            self.record = old
            input = pickle.loads(old.input) if old.input is not None else None
            self.steps = await asyncio.to_thread(self._store().steps, old.run_id)
            if old.status is RunStatus.SUCCEEDED:
                outputs = pickle.loads(old.output) if old.output is not None else []
                return self._result(RunStatus.SUCCEEDED, outputs)
            if old.step is not None:  # a step run: that one step, on its events
                self.step = old.step
                return await self._go(self._only(old.step, input))
            recorded = {step.seq: step for step in self.steps}
        elif self.lifecycle is not None:
            await self._create(input)
        return await self._go(self._walk(input, recorded))

    async def _go(self, walk: Coroutine[Any, Any, RunResult]) -> RunResult:
        if self.lifecycle is not None:
            self.lifecycle.keep_lease(self._lost_lease, asyncio.get_running_loop())
        try:
            with released_on_signal(self):
                return await walk
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
        self.record = record
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
        """Start every step that may start (replaying recorded ones), commit each as it
        finishes, until none is left; independent branches run at once."""
        frontier = Frontier(self.shape.steps, self.shape.input, input)
        running: dict[asyncio.Task[_Outcome], int] = {}
        left = False  # a step run was left running: the run stops once the others end
        try:
            while True:
                held, alone = self._launch(frontier, recorded, running)
                if alone is not None:  # one step, nothing else running: no task needed
                    seq, chain, events = alone
                    outcome = await self._execute(chain, events)
                    if outcome.produced is None:
                        return await self._stopped()
                    if (ended := await self._step(seq, outcome, frontier, False)) is not None:
                        return ended
                    continue
                if not running:
                    if held or left:
                        return await self._stopped()
                    break
                done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in sorted(done, key=running.__getitem__):
                    seq = running.pop(task)
                    outcome = task.result()
                    if outcome.produced is None:
                        left = True
                        continue
                    ended = await self._step(seq, outcome, frontier, bool(running) or left)
                    if ended is not None:
                        return ended
        finally:
            for task in running:  # the run ended (failed) while other branches ran
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
        outputs = self._outputs(frontier.pending)
        # No step ran in this attempt, or the last one left events nowhere but the output.
        await self._commit(StepCommit(self.run_id), None, outputs)
        return self._result(RunStatus.SUCCEEDED, outputs)

    def _launch(
        self,
        frontier: Frontier,
        recorded: dict[int, StepRecord],
        running: dict[asyncio.Task[_Outcome], int],
    ) -> tuple[bool, tuple[int, Chain, list[Any]] | None]:
        """Replay the recorded steps that may start and start the others as tasks. Returns
        whether a step was held back because the run must stop (``self.stop``), and the
        one step to run in place when it is the only one (the common chain: a task per
        step would only cost time)."""
        held = False
        starting: list[tuple[int, Chain, list[Any]]] = []
        progressed = True
        while progressed:
            progressed = False
            for seq, chain, events in frontier.ready():
                step = recorded.get(seq)
                if step is not None:
                    self._replay(seq, chain.head, step, frontier)
                    progressed = True
                elif self.stop is not None:
                    held = True
                else:
                    frontier.start(chain.head.name)
                    starting.append((seq, chain, events))
        if len(starting) == 1 and not running:
            return held, starting[0]
        for seq, chain, events in starting:
            running[asyncio.ensure_future(self._execute(chain, events))] = seq
        return held, None

    def _replay(self, seq: int, stage: Stage, step: StepRecord, frontier: Frontier) -> None:
        """Go past step ``seq`` with its recorded outputs, without calling it."""
        if step.stage != stage.name:
            raise RunNotResumableError(
                f"run {self.run_id}'s step {seq} was stage {step.stage!r}, but flow "
                f"{self.flow.name!r} now has {stage.name!r} there: its stages changed "
                "order or names since; start a new run",
                run_id=self.run_id,
            )
        self.replayed.append(stage.name)
        frontier.finish(stage, pickle.loads(step.output), step.at.timestamp())

    async def _step(
        self, seq: int, outcome: _Outcome, frontier: Frontier, others_running: bool
    ) -> RunResult | None:
        """Commit step ``seq``, which finished with ``outcome``; the run's result if it
        ended with it."""
        stage = self.shape.steps[seq].head
        produced, counters, failure, started, events = outcome
        assert produced is not None  # a step run left running is no step to commit
        data = b""
        try:
            if failure is None and declared.declares_data(self.shape.stages):
                declared.check_step(stage, events, [e for out in produced.values() for e in out])
            if failure is None:
                data = self._pickle(produced, f"stage {stage.name!r}'s outputs")
        except (TypeError, ValueError) as error:  # the step broke its contract: it fails
            failure = self.failures.stop(stage.name, error, f"stage {stage.name!r}")
        counters.skipped += frontier.late.get(stage.name, 0)
        self.stats[stage.name] = counters.freeze()
        stage_run = self._stage_run(stage, counters, failure, started)
        if failure is not None:
            await self._commit(StepCommit(self.run_id, stage_run=stage_run), failure)
            return self._result(RunStatus.FAILED, [])
        self.finished[stage.name] = (counters, started)
        for node in frontier.finish(stage, produced, time.time()):
            await self._ignored(node)
        last = not others_running and not frontier.would_run_more()
        outputs = self._outputs(frontier.pending) if last else None
        record = StepRecord(self.run_id, seq, stage.name, data, datetime.now(UTC))
        self.steps.append(record)
        await self._commit(StepCommit(self.run_id, step=record, stage_run=stage_run), None, outputs)
        self.observers.tell("checkpoint", seq)
        return self._result(RunStatus.SUCCEEDED, outputs) if outputs is not None else None

    async def _ignored(self, node: str) -> None:
        """An upstream node delivered to graph node ``node`` after it started (fan-in
        ``any`` or ``count:N``): ignored, and counted in its stage run's ``skipped``; if
        the node's step is committed already, its stage run is committed again."""
        logger.info("workflow run %s: node %r ignores a later arrival", self.run_id, node)
        known = self.finished.get(node)
        if known is None:
            return  # still running: counted when it is committed
        counters, started = known
        counters.skipped += 1
        self.stats[node] = counters.freeze()
        stage = next(chain.head for chain in self.shape.steps if chain.head.name == node)
        stage_run = self._stage_run(stage, counters, None, started)
        await self._commit(StepCommit(self.run_id, stage_run=stage_run), None)

    async def _execute(self, chain: Chain, events: list[Any]) -> _Outcome:
        """Run one stage on its events through the runner (or, for a stage that names a
        queue, as a step run there); its outputs per output port, its counters, the
        error that stopped it (policy STOP) if one did, when it began."""
        stage = chain.head
        if stage.queue is not None and self.step is None:
            return await self._on_queue(stage, events)
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
        return _Outcome(produced, counters, failure, started, events)

    async def _on_queue(self, stage: Stage, events: list[Any]) -> _Outcome:
        """Run ``stage`` on ``events`` as a step run on its queue, and wait for it."""
        started = datetime.now(UTC)
        produced, counters, failure = await queued.step_on_queue(
            self.store, self.record, stage, events, self.failures, lambda: self.stop
        )
        return _Outcome(produced, counters, failure, started, events)

    async def _only(self, name: str, events: Any) -> RunResult:
        """A step run: run stage ``name`` on ``events``, and end with its outputs by port
        (which the workflow run that queued it records as its step)."""
        chain = next((chain for chain in self.shape.steps if chain.head.name == name), None)
        if chain is None:
            raise RunNotResumableError(
                f"run {self.run_id} is step {name!r} of run {self.record and self.record.parent}"
                f", but flow {self.flow.name!r} has no such step now: start a new run",
                run_id=self.run_id,
            )
        produced, counters, failure, started, _ = await self._execute(chain, events)
        self.stats[name] = counters.freeze()
        stage_run = self._stage_run(chain.head, counters, failure, started)
        if failure is not None:
            await self._commit(StepCommit(self.run_id, stage_run=stage_run), failure)
            return self._result(RunStatus.FAILED, [])
        await self._commit(StepCommit(self.run_id, stage_run=stage_run), None, [produced])
        return self._result(RunStatus.SUCCEEDED, [produced])

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
