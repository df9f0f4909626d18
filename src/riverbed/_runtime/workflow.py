"""The workflow runner: ``rb.run(flow, input)`` runs a flow's stages one after the other on
one input event, and records each stage's outputs in the store before the next starts.

A workflow is an ordinary flow that starts at ``flow.input()`` and ends at
``stream.output()`` (see ``riverbed._model.workflow``). The runner is a small interpreter:
it walks the stages in topological order, runs each through a one-stage ``ChainExecutor``
(so retries, failure policies, timeouts, counters and the step cache mean exactly what
they mean in streams), and commits a ``StepRecord`` of the stage's outputs per output port
(pickled) with its stage run. A stage that receives no event (after a filter dropped it,
or on a branch's other side) is not a step: nothing is called and nothing recorded.

Durability: the run's record (its input and target) is committed before its first step
starts, so that a crash during step 1 leaves a run to resume; each step's record is
committed (fsynced) before the next step starts, and the final status (with the pickled
output) in the same transaction as the last step: a workflow of N steps costs N + 1
commits. Concurrent workflows in one event loop share commits (group commit): commits
asked for while one is in flight are written together in the next one, each workflow
still waiting for its own to be durable. Every commit is fenced by the run's lease, which
a thread renews (a step longer than the lease does not lose it); a run cancelled from
outside (``riverbed runs cancel``) stops at the next step boundary.

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
import random
import signal
import threading
import time
import uuid
import weakref
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import TYPE_CHECKING, Any

from riverbed._errors import (
    LeaseLostError,
    RiverbedError,
    RunNotResumableError,
    StageFailedError,
)
from riverbed._model.flow import Flow
from riverbed._model.origin import origin_of
from riverbed._model.plan import Chain, make_plan
from riverbed._model.stages import Port, Stage, StageKind
from riverbed._model.workflow import is_workflow_output, workflow_ends
from riverbed._records import (
    DeadLetterRecord,
    Lease,
    RunRecord,
    RunStatus,
    StageRun,
    StageStatus,
    StepCommit,
    StepRecord,
)
from riverbed._runtime.cache import StepCache
from riverbed._runtime.clock import SystemClock
from riverbed._runtime.committer import committer
from riverbed._runtime.lease import Keeping, keep
from riverbed._runtime.observer import RunObserver
from riverbed._runtime.recording import (
    LEASE_SECONDS,
    WORKER,
    check_same_flow,
    crashed_if_dead,
    dead_letter_records,
    error_info,
    resolve_store,
    take_back,
)
from riverbed._runtime.recording import (
    stage_run as recorded_stage,
)
from riverbed._runtime.result import StageCounters, StageError, StageStats, event_repr
from riverbed._store.protocol import Store

if TYPE_CHECKING:
    from riverbed._runtime.chains.executor import ChainExecutor

logger = logging.getLogger("riverbed")

__all__ = ["WorkflowResult", "arun", "run"]

_STATEFUL = (StageKind.STATEFUL, StageKind.FOLD, StageKind.PROCESS)


class _Missing:
    """The type of ``MISSING``: "no input given" (None is a valid input)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


@dataclass(frozen=True)
class WorkflowResult:
    """The outcome of one workflow run (``rb.run`` / ``rb.arun``).

    >>> import riverbed as rb
    >>> flow = rb.Flow("double")
    >>> flow.input().map(lambda x: x * 2).output()
    >>> rb.run(flow, 21, store=False).output
    42
    """

    run_id: str
    flow: str
    status: RunStatus
    output: Any
    """The first (usually the only) event that reached ``output()``; None if none did."""
    outputs: tuple[Any, ...]
    """Every event that reached ``output()``, in order."""
    steps: tuple[StepRecord, ...]
    """The run's step records, replayed ones included, by ``seq``."""
    stages: Mapping[str, StageStats] = field(default_factory=dict)
    """Counters of the stages this call ran (replayed steps ran in an earlier attempt)."""
    replayed: tuple[str, ...] = ()
    """Stages whose step was replayed from its record instead of being called."""
    error: StageError | None = None
    """Why the run FAILED, if it did."""

    __module__ = "riverbed"

    @property
    def ok(self) -> bool:
        """True if the run SUCCEEDED."""
        return self.status is RunStatus.SUCCEEDED


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


def _shape(flow: Flow) -> _Shape:
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


# -- the runner --------------------------------------------------------------------------------


def run(
    flow: Flow,
    input: Any = MISSING,
    *,
    store: Store | str | bool | None = None,
    run_id: str | None = None,
    resume: str | None = None,
    target: str | None = None,
    rerun_of: str | None = None,
    observers: Sequence[RunObserver] = (),
) -> WorkflowResult:
    """Run the workflow ``flow`` on ``input``, recording every step in ``store``; return
    its result (a FAILED run is returned, not raised: see ``result.error``).

    ``store``: a ``Store``, a store URL, None for the default store (RIVERBED_STORE, else
    ``./.riverbed``), or False to record nothing (no durability; for tests and notebooks).
    ``resume``: the id of a run that failed, crashed or was cancelled: its recorded steps
    are replayed without calling their functions, and it goes on from the first
    unrecorded one (its recorded input is used; ``input`` may be left out). Resuming a run
    that succeeded returns its recorded result. ``target`` (``module:attr`` of the flow,
    found by itself when the flow is a module's attribute) is recorded so that ``riverbed
    runs resume``, ``riverbed runs recover`` and workers can load the flow again;
    ``rerun_of`` records the run this new one re-runs; ``observers`` are told when the run
    is recorded and when it ends (``RunObserver``).

    >>> import riverbed as rb
    >>> flow = rb.Flow("order")
    >>> flow.input().map(str.strip).map(str.title).output()
    >>> rb.run(flow, "  ada lovelace ", store=False).output
    'Ada Lovelace'
    """
    if _loop_running():
        raise RuntimeError(
            "rb.run() was called inside a running event loop, which it cannot block: use "
            "`await rb.arun(flow, input, ...)` there"
        )
    # Outside of any ``except`` block, so that no exception of riverbed's own becomes the
    # context of the user's errors (and of their stored tracebacks).
    return asyncio.run(
        _arun(
            flow,
            input,
            store,
            run_id,
            resume,
            blocking=True,
            target=target,
            rerun_of=rerun_of,
            observers=observers,
        )
    )


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


async def arun(
    flow: Flow,
    input: Any = MISSING,
    *,
    store: Store | str | bool | None = None,
    run_id: str | None = None,
    resume: str | None = None,
    target: str | None = None,
    rerun_of: str | None = None,
    observers: Sequence[RunObserver] = (),
) -> WorkflowResult:
    """``run`` for code inside an event loop. Many ``arun`` calls awaited at once on one
    store share their commits (group commit).

    >>> result = await rb.arun(flow, "order-17", store=store)  # doctest: +SKIP
    """
    return await _arun(
        flow,
        input,
        store,
        run_id,
        resume,
        blocking=False,
        target=target,
        rerun_of=rerun_of,
        observers=observers,
    )


def run_claimed(
    flow: Flow, store: Store, run_id: str, observers: Sequence[RunObserver] = ()
) -> WorkflowResult:
    """Run workflow run ``run_id``, which this process (a worker) claimed from the store's
    queue: its record is RUNNING here already and holds its input; steps recorded by a
    worker that died are replayed. SIGTERM or Ctrl-C stop it at the next step boundary
    and put it back into the queue (its result then says SCHEDULED)."""

    async def main() -> WorkflowResult:
        return await _arun(
            flow, MISSING, store, None, run_id, blocking=True, claimed=True, observers=observers
        )

    return asyncio.run(main())


async def _arun(
    flow: Flow,
    input: Any,
    store: Store | str | bool | None,
    run_id: str | None,
    resume: str | None,
    *,
    blocking: bool,
    claimed: bool = False,
    target: str | None = None,
    rerun_of: str | None = None,
    observers: Sequence[RunObserver] = (),
) -> WorkflowResult:
    if not isinstance(flow, Flow):
        raise TypeError(f"rb.run(flow, input) takes an rb.Flow first, got {flow!r:.80}")
    shape = _shape(flow)
    if input is MISSING and resume is None:
        raise TypeError(
            f"rb.run({flow.name!r}, ...) needs the workflow's input (or resume=RUN_ID to "
            "go on with a recorded run's input)"
        )
    opened = resolve_store(store)
    try:
        if opened is None and resume is not None:
            raise ValueError("resume= needs the store the run was recorded in: pass store=")
        execution = _Execution(
            flow, shape, opened, run_id or uuid.uuid4().hex[:16], blocking=blocking
        )
        execution.target, execution.rerun_of = target or origin_of(flow), rerun_of
        execution.claimed = claimed
        execution.observers = tuple(observers)
        result = await execution.run(input, resume)
        for observer in observers:
            observer.ended(result)
        return result
    finally:
        if opened is not None and opened is not store:
            opened.close()


class _Execution:
    """One attempt at one workflow run."""

    def __init__(
        self, flow: Flow, shape: _Shape, store: Store | None, run_id: str, *, blocking: bool
    ) -> None:
        # The local runner's modules load with the first workflow, not with ``import
        # riverbed`` (which stays light).
        from riverbed._runtime.failures import FailureLog

        self.flow = flow
        self.shape = shape
        self.store = store
        self.run_id = run_id
        self.failures = FailureLog(flow.name, max_errors=1000)
        self.clock = SystemClock()
        self.committer = committer(store, blocking=blocking) if store is not None else None
        self.cache = StepCache(store, run_id) if store is not None else None
        self.lease: Lease | None = None
        """The lease the run's commits are made under, once its record is RUNNING here."""
        self.keeper: Keeping | None = None
        self.stop: str | None = None
        """Why the run must stop at the next step boundary: "cancelled" (the store says
        so) or "released" (this worker is shutting down)."""
        self.steps: list[StepRecord] = []
        self.stats: dict[str, StageStats] = {}
        self.replayed: list[str] = []
        self.dead_letters_saved = 0
        self.target: str | None = None
        """``module:attr`` of the flow, recorded for workers and ``riverbed runs``."""
        self.rerun_of: str | None = None
        self.claimed = False
        """True for a run a worker claimed: interrupted, it goes back to the queue."""
        self.observers: tuple[RunObserver, ...] = ()

    async def run(self, input: Any, resume: str | None) -> WorkflowResult:
        recorded: dict[int, StepRecord] = {}
        if resume is not None:
            old = await self._take(resume, input)
            input = pickle.loads(old.input) if old.input is not None else None
            self.steps = await asyncio.to_thread(self.store_of().steps, old.run_id)
            if old.status is RunStatus.SUCCEEDED:
                outputs = pickle.loads(old.output) if old.output is not None else []
                return self._result(RunStatus.SUCCEEDED, outputs)
            recorded = {step.seq: step for step in self.steps}
        elif self.store is not None:
            await self._create(input)
        if self.store is not None and self.observers:
            record = await asyncio.to_thread(self.store.get_run, self.run_id)
            for observer in self.observers:
                observer.started(record)
        self._keep_lease()
        try:
            with _interrupts(self):
                return await self._walk(input, recorded)
        except LeaseLostError as lost:
            return self._lost(lost)
        except (asyncio.CancelledError, KeyboardInterrupt):
            await self._interrupted()
            raise
        finally:
            if self.keeper is not None:
                self.keeper.stop()

    def store_of(self) -> Store:
        assert self.store is not None
        return self.store

    async def _take(self, run_id: str, input: Any) -> RunRecord:
        """The stored run ``run_id``, RUNNING under this process (resumed, or claimed)."""
        store = self.store_of()
        if self.claimed:  # RUNNING under this very worker, which claimed it
            old = await asyncio.to_thread(store.get_run, run_id)
        else:
            old = await asyncio.to_thread(self._resumable, run_id, input)
        self.run_id = old.run_id
        if old.status is RunStatus.SUCCEEDED:
            return old
        if not self.claimed:
            old = await asyncio.to_thread(take_back, store, old, self.shape.version)
        self.lease = Lease.of(old)
        return old

    async def _create(self, input: Any) -> None:
        """Record the run (input, target) before its first step (a group commit)."""
        assert self.committer is not None
        record = self._record(input)
        await self.committer.commit(StepCommit(self.run_id, run=record))
        self.lease = Lease.of(record)

    def _keep_lease(self) -> None:
        if self.store is None or self.lease is None:
            return
        loop = asyncio.get_running_loop()

        def lost() -> None:
            self.stop = self.stop or "cancelled"

        self.keeper = keep(self.store, self.lease, on_lost=lost, loop=loop)

    async def _walk(self, input: Any, recorded: dict[int, StepRecord]) -> WorkflowResult:
        pending: dict[Port, list[Any]] = {Port(self.shape.input.name): [input]}
        steps = self.shape.steps
        for seq, chain in enumerate(steps):
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
    ) -> WorkflowResult | None:
        """Run and commit step ``seq``; the run's result if it ended with it."""
        stage = chain.head
        produced, stage_run, failure = await self._execute(chain, events)
        data = b""
        try:
            if failure is None:
                data = self._pickle(produced, f"stage {stage.name!r}'s outputs")
        except TypeError as error:  # the step cannot be recorded: it fails
            failure = self.failures.stop(stage.name, error, f"stage {stage.name!r}")
            stage_run = dataclasses.replace(stage_run, status=StageStatus.FAILED)
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
        return self._result(RunStatus.SUCCEEDED, outputs) if outputs is not None else None

    # -- one step -------------------------------------------------------------------------

    async def _execute(
        self, chain: Chain, events: list[Any]
    ) -> tuple[dict[str, list[Any]], StageRun, StageFailedError | None]:
        """Run one stage on its events; return its outputs per output port, its stage run,
        and the error that stopped it (policy STOP), if one did."""
        from riverbed._runtime.chains.executor import ChainExecutor

        stage = chain.head
        counters = StageCounters(stage.name, stage.kind.value)
        executor = ChainExecutor(
            chain,
            [counters],
            [{} if stage.kind in _STATEFUL else None],
            self.failures,
            self.clock,
            concurrency=stage.concurrency or 16,
            # A seed from the process's generator: seeding each executor from the OS's
            # randomness would cost a system call per step.
            seed=random.getrandbits(64),
            step_cache=self.cache,
            compiled=False,
        )
        started = datetime.now(UTC)
        begin = time.perf_counter()
        produced: dict[str, list[Any]] = {}
        failure: StageFailedError | None = None
        try:
            for outputs in (await executor.process(events), await executor.finish()):
                for key, items in outputs.items():
                    produced.setdefault(key, []).extend(items)
            await executor.close()
        except StageFailedError as error:
            failure = error
            await _close_quietly(executor)
        counters.seconds = time.perf_counter() - begin
        self.stats[stage.name] = counters.freeze()
        by_port = {str(port): port.name for port in chain.exits}
        named = {by_port[key]: items for key, items in produced.items() if key in by_port}
        stage_run = recorded_stage(
            self.run_id,
            stage.name,
            stage.kind.value,
            counters.values(),
            StageStatus.FAILED if failure is not None else StageStatus.SUCCEEDED,
            started_at=started,
            ended_at=datetime.now(UTC),
            attempt=self.lease.attempt if self.lease is not None else 1,
        )
        return named, stage_run, failure

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
        try:
            return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as error:
            raise TypeError(
                f"workflow {self.flow.name!r}, run {self.run_id}: {what} cannot be pickled "
                f"({type(error).__name__}: {error}); a workflow's input, its steps' outputs "
                "and its output are recorded in the store, so they must be picklable"
            ) from error

    # -- the store ------------------------------------------------------------------------

    def _record(self, input: Any) -> RunRecord:
        """The run's record, created before its first step."""
        now = datetime.now(UTC)
        return RunRecord(
            run_id=self.run_id,
            flow=self.flow.name,
            flow_version=self.shape.version,
            status=RunStatus.RUNNING,
            input=self._pickle(input, "the input"),
            input_repr=event_repr(input),
            created_at=now,
            started_at=now,
            worker=WORKER,
            lease_until=now + timedelta(seconds=LEASE_SECONDS),
            target=self.target,
            rerun_of=self.rerun_of,
        )

    async def _commit(
        self,
        commit: StepCommit,
        failure: StageFailedError | None,
        outputs: list[Any] | None = None,
    ) -> None:
        """Commit one step under the run's lease, ending the run FAILED with ``failure``,
        or SUCCEEDED with ``outputs`` if given."""
        if self.store is None or self.committer is None:
            return
        fields: dict[str, Any] = {}
        status = None
        if failure is not None:
            status = RunStatus.FAILED
            fields = {"ended_at": datetime.now(UTC), "error": error_info(self.failures.fatal)}
        elif outputs is not None:
            status = RunStatus.SUCCEEDED
            fields = {
                "ended_at": datetime.now(UTC),
                "output": self._pickle(outputs, "the output"),
                "output_repr": event_repr(outputs[0] if len(outputs) == 1 else outputs),
            }
        if status is not None:
            fields["lease_until"] = None
        letters = self._new_dead_letters()
        if letters:  # rare: kept apart, so that StepCommit stays small
            await asyncio.to_thread(self.store.add_dead_letters, letters, lease=self.lease)
        await self.committer.commit(
            dataclasses.replace(commit, status=status, fields=fields, lease=self.lease)
        )

    def _new_dead_letters(self) -> list[DeadLetterRecord]:
        fresh = self.failures.dead_letters[self.dead_letters_saved :]
        self.dead_letters_saved = len(self.failures.dead_letters)
        return dead_letter_records(self.run_id, self.flow.name, fresh)

    def _resumable(self, run_id: str, input: Any) -> RunRecord:
        """The stored run ``run_id``, after checking that this flow may resume it now."""
        store = self.store_of()
        run = store.get_run(run_id)
        check_same_flow(run, self.flow.name)
        if input is not MISSING and run.input is not None and pickle.loads(run.input) != input:
            raise ValueError(
                f"run {run.run_id} was started with another input; leave input out to "
                "resume it with its own (or start a new run for this input)"
            )
        if run.status is RunStatus.SCHEDULED:
            raise RunNotResumableError(
                f"run {run.run_id} is queued and has not started; a worker will run it",
                run_id=run.run_id,
            )
        return crashed_if_dead(store, run)

    # -- how a run stops early -------------------------------------------------------------

    def _lost(self, lost: LeaseLostError) -> WorkflowResult:
        """A commit found the run no longer this process's: cancelled (the result says
        so), or taken over (re-raised: another process runs it now)."""
        if lost.status is RunStatus.CANCELLED:
            return self._result(RunStatus.CANCELLED, [])
        raise lost

    async def _stopped(self) -> WorkflowResult:
        """Stop at a step boundary: cancelled from outside (the store says so already),
        or this worker shutting down (the run goes back to the queue)."""
        store, lease = self.store_of(), self.lease
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
        if self.store is None or self.lease is None:
            return
        store, lease = self.store, self.lease
        with contextlib.suppress(RiverbedError):
            if self.claimed:
                await asyncio.to_thread(store.release, lease)
            else:
                await asyncio.to_thread(
                    store.transition,
                    self.run_id,
                    RunStatus.CANCELLED,
                    lease=lease,
                    ended_at=datetime.now(UTC),
                    lease_until=None,
                )

    def _result(self, status: RunStatus, outputs: list[Any]) -> WorkflowResult:
        return WorkflowResult(
            run_id=self.run_id,
            flow=self.flow.name,
            status=status,
            output=outputs[0] if outputs else None,
            outputs=tuple(outputs),
            steps=tuple(sorted(self.steps, key=lambda step: step.seq)),
            stages=dict(self.stats),
            replayed=tuple(self.replayed),
            error=self.failures.fatal if status is RunStatus.FAILED else None,
        )


@contextlib.contextmanager
def _interrupts(execution: _Execution) -> Iterator[None]:
    """While a worker runs a claimed workflow in the main thread, SIGTERM and Ctrl-C stop
    it at the next step boundary and put it back into the queue. The handlers are
    Python's own, which run between two bytecodes even while a synchronous step keeps the
    event loop busy; observers are told (the worker stops after this run)."""
    if not execution.claimed or threading.current_thread() is not threading.main_thread():
        yield
        return
    outer = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}

    def release(number: int, frame: FrameType | None) -> None:
        execution.stop = "released"
        for observer in execution.observers:
            observer.stopping(signal.Signals(number).name)

    for number in outer:
        signal.signal(number, release)
    try:
        yield
    finally:
        for number, handler in outer.items():
            signal.signal(number, handler)


async def _close_quietly(executor: ChainExecutor) -> None:
    """Close a failed stage's sinks; the stage's own error is the one to report."""
    with contextlib.suppress(StageFailedError):
        await executor.close()


run.__module__ = arun.__module__ = "riverbed"  # public as riverbed.run and riverbed.arun
