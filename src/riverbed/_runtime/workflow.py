"""The workflow runner: ``rb.run(flow, input)`` runs a flow's stages one after the other on
one input event, and records each stage's outputs in the store before the next starts.

A workflow is an ordinary flow that starts at ``flow.input()`` and ends at
``stream.output()`` (see ``riverbed._model.workflow``). The runner is a small interpreter:
it walks the stages in topological order, runs each through a one-stage ``ChainExecutor``
(so retries, failure policies, timeouts, counters and the step cache mean exactly what
they mean in streams), and commits a ``StepRecord`` of the stage's outputs per output port
(pickled) with its stage run. A stage that receives no event (after a filter dropped it,
or on a branch's other side) is not a step: nothing is called and nothing recorded.

Durability: a step's record is committed (fsynced) before the next step starts. The run's
record is created in the same transaction as its first step, and its final status (with
the pickled output) is set in the same transaction as its last, so a workflow of N steps
costs N commits. Concurrent workflows in one event loop share commits (group commit):
steps that finish while a commit is in flight are committed together in the next one,
each workflow still waiting for its own step to be durable.

Resuming a run (``resume=RUN``) replays its recorded steps from their records, without
calling their functions, and goes on from the first unrecorded step; the function of a
step that was running when the process died is called again (at-least-once per step,
exactly-once per recorded step).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import pickle
import random
import time
import uuid
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from riverbed._errors import RunNotResumableError, StageFailedError
from riverbed._model.flow import Flow
from riverbed._model.plan import Chain, make_plan
from riverbed._model.stages import Port, Stage, StageKind
from riverbed._model.workflow import is_workflow_output, workflow_ends
from riverbed._runtime.cache import StepCache
from riverbed._runtime.clock import SystemClock
from riverbed._runtime.recording import (
    LEASE_SECONDS,
    WORKER,
    check_same_flow,
    crashed_if_dead,
    dead_letter_records,
    error_info,
    keep_lease,
    resolve_store,
)
from riverbed._runtime.recording import (
    stage_run as recorded_stage,
)
from riverbed._runtime.result import StageCounters, StageError, StageStats
from riverbed._store.protocol import Store

if TYPE_CHECKING:
    from riverbed._runtime.local.executor import ChainExecutor

from riverbed._store.records import (
    DeadLetterRecord,
    RunRecord,
    RunStatus,
    StageRun,
    StageStatus,
    StepCommit,
    StepRecord,
)

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


# -- group commit ------------------------------------------------------------------------------


WRITERS = 1
"""Transactions a committer has in flight at once. One groups the most steps per
transaction; more would overlap round trips, which W5 did not measure faster."""


class _Committer:
    """Commits the steps of the workflows running in one event loop on one store. A commit
    asked for while another is being written waits for it and goes into the next one with
    all others that arrived meanwhile: one transaction (one fsync) for many workflows."""

    def __init__(
        self, store: Store, loop: asyncio.AbstractEventLoop, *, blocking: bool = False
    ) -> None:
        self.store = store
        self.loop = loop
        self.blocking = blocking
        """Call the store in the loop's own thread: for ``rb.run``, whose loop runs nothing
        else, this saves a hand-over to a worker thread and back per commit."""
        self.queue: list[tuple[StepCommit, asyncio.Future[None]]] = []
        self.writers = 0
        """Writer tasks running. Counted by the tasks themselves, not by done callbacks,
        which run a loop iteration late: a commit arriving in between would find a writer
        that has already stopped looking at the queue, and wait forever."""
        self.tasks: set[asyncio.Task[None]] = set()
        """The writer tasks, referenced so that they are not garbage-collected."""
        self.commits = 0
        """Transactions written (for benchmarks: how well steps were grouped)."""

    async def commit(self, commit: StepCommit) -> None:
        """Return once ``commit`` is durable; raise its error if it failed."""
        if self.blocking:  # one workflow in this loop: nothing to group it with
            self.commits += 1
            self.store.commit_steps([commit])
            return
        done: asyncio.Future[None] = self.loop.create_future()
        self.queue.append((commit, done))
        if self.writers < WRITERS:
            self.writers += 1
            writer = self.loop.create_task(self._flush())
            self.tasks.add(writer)
            writer.add_done_callback(self.tasks.discard)
        await done

    async def _flush(self) -> None:
        try:
            while self.queue:
                batch, self.queue = self.queue, []
                await self._write(batch)
        finally:
            self.writers -= 1  # in the same step as the last look at the queue

    async def _call(self, commits: list[StepCommit]) -> None:
        await asyncio.to_thread(self.store.commit_steps, commits)

    async def _write(self, batch: list[tuple[StepCommit, asyncio.Future[None]]]) -> None:
        try:
            self.commits += 1
            await self._call([commit for commit, _ in batch])
        except Exception as error:
            if len(batch) == 1:
                _settle(batch[0][1], error)
                return
            # One bad commit (a duplicate run id...) rolled the group back: commit each
            # alone, so that the others go through and the culprit gets its own error.
            for commit, done in batch:
                try:
                    self.commits += 1
                    await self._call([commit])
                except Exception as own:
                    _settle(done, own)
                else:
                    _settle(done, None)
            return
        for _, done in batch:
            _settle(done, None)


def _settle(done: asyncio.Future[None], error: BaseException | None) -> None:
    if done.done():  # its workflow was cancelled while waiting
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)


_committers: weakref.WeakKeyDictionary[Store, _Committer] = weakref.WeakKeyDictionary()


def committer(store: Store, *, blocking: bool = False) -> _Committer:
    """The group committer of ``store`` in the running event loop (``blocking``: see
    ``_Committer.blocking``; only for a loop that runs nothing but one workflow)."""
    loop = asyncio.get_running_loop()
    known = _committers.get(store)
    if known is None or known.loop is not loop:
        known = _committers[store] = _Committer(store, loop, blocking=blocking)
    return known


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
) -> WorkflowResult:
    """Run the workflow ``flow`` on ``input``, recording every step in ``store``; return
    its result (a FAILED run is returned, not raised: see ``result.error``).

    ``store``: a ``Store``, a store URL, None for the default store (RIVERBED_STORE, else
    ``./.riverbed``), or False to record nothing (no durability; for tests and notebooks).
    ``resume``: the id of a run that failed or crashed: its recorded steps are replayed
    without calling their functions, and it goes on from the first unrecorded one (its
    recorded input is used; ``input`` may be left out). Resuming a run that succeeded
    returns its recorded result. ``target`` (``module:attr`` of the flow) is recorded so
    that ``riverbed runs resume`` and workers can load the flow again; ``rerun_of`` records
    the run this new one re-runs.

    >>> import riverbed as rb
    >>> flow = rb.Flow("order")
    >>> flow.input().map(str.strip).map(str.title).output()
    >>> rb.run(flow, "  ada lovelace ", store=False).output
    'Ada Lovelace'
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
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
            )
        )
    raise RuntimeError(
        "rb.run() was called inside a running event loop, which it cannot block: use "
        "`await rb.arun(flow, input, ...)` there"
    )


async def arun(
    flow: Flow,
    input: Any = MISSING,
    *,
    store: Store | str | bool | None = None,
    run_id: str | None = None,
    resume: str | None = None,
    target: str | None = None,
    rerun_of: str | None = None,
) -> WorkflowResult:
    """``run`` for code inside an event loop. Many ``arun`` calls awaited at once on one
    store share their commits (group commit).

    >>> result = await rb.arun(flow, "order-17", store=store)  # doctest: +SKIP
    """
    return await _arun(
        flow, input, store, run_id, resume, blocking=False, target=target, rerun_of=rerun_of
    )


def run_claimed(flow: Flow, store: Store, run_id: str) -> WorkflowResult:
    """Run workflow run ``run_id``, which this process (a worker) claimed from the store's
    queue: its record is RUNNING here already and holds its input; steps recorded by a
    worker that died are replayed."""
    return asyncio.run(_arun(flow, MISSING, store, None, run_id, blocking=True, claimed=True))


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
        execution.target, execution.rerun_of = target, rerun_of
        return await execution.run(input, resume, claimed=claimed)
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
        from riverbed._runtime.local.failures import FailureLog

        self.flow = flow
        self.shape = shape
        self.store = store
        self.run_id = run_id
        self.failures = FailureLog(flow.name, max_errors=1000)
        self.clock = SystemClock()
        self.committer = committer(store, blocking=blocking) if store is not None else None
        self.cache = StepCache(store, run_id) if store is not None else None
        self.created = False
        """True once the run's record is in the store."""
        self.steps: list[StepRecord] = []
        self.stats: dict[str, StageStats] = {}
        self.replayed: list[str] = []
        self.dead_letters_saved = 0
        self.target: str | None = None
        """``module:attr`` of the flow, recorded for workers and ``riverbed runs``."""
        self.rerun_of: str | None = None

    async def run(self, input: Any, resume: str | None, *, claimed: bool = False) -> WorkflowResult:
        recorded: dict[int, StepRecord] = {}
        if resume is not None:
            assert self.store is not None
            if claimed:  # RUNNING under this very worker, which claimed it
                old = await asyncio.to_thread(self.store.get_run, resume)
            else:
                old = await asyncio.to_thread(self._resumable, resume, input)
            self.run_id = old.run_id
            input = pickle.loads(old.input) if old.input is not None else None
            self.steps = await asyncio.to_thread(self.store.steps, old.run_id)
            if old.status is RunStatus.SUCCEEDED:
                outputs = pickle.loads(old.output) if old.output is not None else []
                return self._result(RunStatus.SUCCEEDED, outputs)
            recorded = {step.seq: step for step in self.steps}
            self.created = True
            if not claimed:
                await asyncio.to_thread(
                    self.store.transition,
                    old.run_id,
                    RunStatus.RUNNING,
                    attempt=old.attempt + 1,
                    worker=WORKER,
                    lease_until=datetime.now(UTC) + timedelta(seconds=LEASE_SECONDS),
                    flow_version=self.shape.version,
                    ended_at=None,
                    error=None,
                )
        record = self._record(input) if not self.created else None
        heartbeat = asyncio.ensure_future(self._heartbeat()) if self.store is not None else None
        try:
            return await self._walk(input, recorded, record)
        finally:
            if heartbeat is not None:
                heartbeat.cancel()

    async def _walk(
        self, input: Any, recorded: dict[int, StepRecord], record: RunRecord | None
    ) -> WorkflowResult:
        shape = self.shape
        pending: dict[Port, list[Any]] = {Port(shape.input.name): [input]}
        steps = shape.steps
        for seq, chain in enumerate(steps):
            stage = chain.head
            events = [event for port in stage.inputs for event in pending.get(port, ())]
            step = recorded.get(seq)
            if step is not None:
                if step.stage != stage.name:
                    raise RunNotResumableError(
                        f"run {self.run_id}'s step {seq} was stage {step.stage!r}, but flow "
                        f"{self.flow.name!r} now has {stage.name!r} there: its stages "
                        "changed order or names since; start a new run",
                        run_id=self.run_id,
                    )
                produced: dict[str, list[Any]] = pickle.loads(step.output)
                self.replayed.append(stage.name)
                self._route(stage, produced, pending)
                continue
            if not events:
                continue  # not a step: nothing reached this stage
            produced, stage_run, failure = await self._execute(chain, events)
            data = b""
            try:
                if failure is None:
                    data = self._pickle(produced, f"stage {stage.name!r}'s outputs")
            except TypeError as error:  # the step cannot be recorded: it fails
                failure = self.failures.stop(stage.name, error, f"stage {stage.name!r}")
                stage_run = dataclasses.replace(stage_run, status=StageStatus.FAILED)
            if failure is not None:
                await self._commit(StepCommit(self.run_id, stage_run=stage_run), record, failure)
                return self._result(RunStatus.FAILED, [])
            self._route(stage, produced, pending)
            last = not any(
                pending.get(port) for later in steps[seq + 1 :] for port in later.head.inputs
            )
            outputs = self._outputs(pending) if last else []
            step = StepRecord(self.run_id, seq, stage.name, data, datetime.now(UTC))
            self.steps.append(step)
            await self._commit(
                StepCommit(self.run_id, step=step, stage_run=stage_run),
                record,
                None,
                outputs if last else None,
            )
            record = None
            if last:
                return self._result(RunStatus.SUCCEEDED, outputs)
        outputs = self._outputs(pending)
        # No step ran in this attempt, or the last one left events nowhere but the output.
        await self._commit(StepCommit(self.run_id), record, None, outputs)
        return self._result(RunStatus.SUCCEEDED, outputs)

    # -- one step -------------------------------------------------------------------------

    async def _execute(
        self, chain: Chain, events: list[Any]
    ) -> tuple[dict[str, list[Any]], StageRun, StageFailedError | None]:
        """Run one stage on its events; return its outputs per output port, its stage run,
        and the error that stopped it (policy STOP), if one did."""
        from riverbed._runtime.local.executor import ChainExecutor

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
        """The run's record, to be created with its first commit."""
        now = datetime.now(UTC)
        return RunRecord(
            run_id=self.run_id,
            flow=self.flow.name,
            flow_version=self.shape.version,
            status=RunStatus.RUNNING,
            input=self._pickle(input, "the input") if self.store is not None else None,
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
        record: RunRecord | None,
        failure: StageFailedError | None,
        outputs: list[Any] | None = None,
    ) -> None:
        """Commit one step (creating the run first if ``record``), ending the run FAILED
        with ``failure``, or SUCCEEDED with ``outputs`` if given."""
        if self.store is None or self.committer is None:
            return
        fields: dict[str, Any] = {}
        status = None
        if failure is not None:
            status = RunStatus.FAILED
            fields = {"ended_at": datetime.now(UTC), "error": error_info(self.failures.fatal)}
        elif outputs is not None:
            status = RunStatus.SUCCEEDED
            fields = {"ended_at": datetime.now(UTC), "output": self._pickle(outputs, "the output")}
        if status is not None:
            fields["lease_until"] = None
        letters = self._new_dead_letters()
        if letters:  # rare: kept apart, so that StepCommit stays small
            if record is not None:
                await self.committer.commit(StepCommit(self.run_id, run=record))
                record = None
                self.created = True
            await asyncio.to_thread(self.store.add_dead_letters, letters)
        full = StepCommit(
            commit.run_id,
            step=commit.step,
            stage_run=commit.stage_run,
            run=record,
            status=status,
            fields=fields,
        )
        await self.committer.commit(full)
        self.created = True

    def _new_dead_letters(self) -> list[DeadLetterRecord]:
        fresh = self.failures.dead_letters[self.dead_letters_saved :]
        self.dead_letters_saved = len(self.failures.dead_letters)
        return dead_letter_records(self.run_id, self.flow.name, fresh)

    def _resumable(self, run_id: str, input: Any) -> RunRecord:
        """The stored run ``run_id``, after checking that this flow may resume it now."""
        assert self.store is not None
        run = self.store.get_run(run_id)
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
        return crashed_if_dead(self.store, run)

    async def _heartbeat(self) -> None:
        """Renew the run's lease while it runs, so that no one resumes it meanwhile.
        (A workflow cancelled while it runs is not stopped between its steps yet.)"""
        assert self.store is not None
        await keep_lease(self.store, self.run_id, on_lost=lambda: None, ready=lambda: self.created)

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


async def _close_quietly(executor: ChainExecutor) -> None:
    """Close a failed stage's sinks; the stage's own error is the one to report."""
    with contextlib.suppress(StageFailedError):
        await executor.close()


run.__module__ = arun.__module__ = "riverbed"  # public as riverbed.run and riverbed.arun
