"""The local engine: runs a flow's plan in one process on one asyncio event loop.

One task per source partition reads batches; one task per chain takes batches from its
bounded input channel, runs them through the chain (see ``executor``) and puts what comes
out into the channels of the chains downstream. Bounded channels are the backpressure: a
full channel suspends the writer, so a fast source waits for a slow sink. End of stream
travels as a marker from every writer; a chain ends when all its writers have ended.

A source with one partition whose only reader is a synchronous chain runs that chain in
its own task, with no channel between them; a generator is then pulled one event at a
time straight through the chain's loop (operator chaining of the source, as Flink does).
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
import signal
import threading
import time
import uuid
from collections.abc import Awaitable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Unpack

from riverbed._errors import (
    InternalError,
    LeaseLostError,
    RiverbedError,
    RunFailedError,
    SourceError,
    StageFailedError,
)
from riverbed._model.origin import origin_of
from riverbed._model.plan import Plan, make_plan
from riverbed._model.policy import OnError
from riverbed._model.sinks import Capture
from riverbed._model.stages import Port, Stage, StageKind
from riverbed._runtime.cache import StepCache
from riverbed._runtime.chains.executor import ChainExecutor, Outputs
from riverbed._runtime.clock import Clock, SystemClock
from riverbed._runtime.failures import FailureLog
from riverbed._runtime.local.channel import TICK, Barrier, Channel
from riverbed._runtime.local.checkpoints import Checkpointer
from riverbed._runtime.local.durable import DurableRun, Injector, writer_name
from riverbed._runtime.local.progress import LiveProgress, wants_progress
from riverbed._runtime.observer import RunObserver
from riverbed._runtime.options import DEFAULT, DEFAULT_CHECKPOINT_INTERVAL, Default, RunOptions
from riverbed._runtime.recording import (
    RestorePoint,
    RunRecorder,
    resolve_store,
)
from riverbed._runtime.result import RunResult, RunStatus, StageCounters
from riverbed._store.protocol import Store

if TYPE_CHECKING:
    from riverbed._model.flow import Flow

__all__ = ["arun_flow", "run_flow"]

logger = logging.getLogger("riverbed")

_STATEFUL_KINDS = (StageKind.STATEFUL, StageKind.FOLD, StageKind.PROCESS)
"""Stages whose memory (a dict per stage, held by the run) checkpoints snapshot."""

_STOPPED = object()
"""What an interrupted read returns: the source stops cleanly."""

POLL_INTERVAL = 0.01
"""Seconds to wait before asking a source again after it said "nothing yet"."""

INTERRUPTS = (signal.SIGINT, signal.SIGTERM)
"""The signals that stop a run cleanly (the first) or at once (the second)."""


class LocalRun(DurableRun):
    """One run of one flow on the local engine."""

    def __init__(
        self,
        flow: Flow,
        *,
        batch_size: int = 1000,
        progress: bool | None = None,
        clock: Clock | None = None,
        concurrency: int = 16,
        channel_capacity: int = 4,
        run_id: str | None = None,
        max_errors: int = 1000,
        seed: int | None = None,
        raise_on_failure: bool = True,
        store: Store | str | bool | None = None,
        checkpoint_interval: float | Default | None = DEFAULT,
        checkpoint_events: int | None = None,
        resume: str | None = None,
        rerun_of: str | None = None,
        compatible: bool = False,
        renamed: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        target: str | None = None,
        claimed: str | None = None,
        observers: Sequence[RunObserver] = (),
    ) -> None:
        _check_int("batch_size", batch_size, 1)
        _check_int("concurrency", concurrency, 1)
        _check_int("channel_capacity", channel_capacity, 1)
        _check_int("max_errors", max_errors, 0)
        if checkpoint_events is not None:
            _check_int("checkpoint_events", checkpoint_events, 1)
        if isinstance(checkpoint_interval, Default):
            # Recorded runs are resumable by default (see DEFAULT_CHECKPOINT_INTERVAL); a
            # run on a test's clock, whose time only moves when told, takes none unasked.
            chosen = store is False or checkpoint_events is not None or clock is not None
            checkpoint_interval = None if chosen else DEFAULT_CHECKPOINT_INTERVAL
        if checkpoint_interval is not None and not (
            isinstance(checkpoint_interval, int | float) and checkpoint_interval > 0
        ):
            raise ValueError(
                f"checkpoint_interval must be a number of seconds > 0, got {checkpoint_interval!r}"
            )
        self.flow = flow
        self.plan: Plan = make_plan(
            flow.name, flow.stages, on_error=flow.on_error, retry=flow.retry
        )
        self.version = flow.version
        self.batch_size = batch_size
        self.show_progress = wants_progress(progress)
        self.clock = clock or SystemClock()
        self.concurrency = concurrency
        self.capacity = channel_capacity
        self.run_id = run_id or uuid.uuid4().hex[:16]
        self.seed = seed
        self.raise_on_failure = raise_on_failure
        self.failures = FailureLog(flow.name, max_errors=max_errors)
        fused = {s.name: chain for chain in self.plan.chains for s in chain.stages}
        self.counters = {
            stage.name: StageCounters(
                stage.name,
                stage.kind.value,
                tuple(s.name for s in fused[stage.name].stages if s.name != stage.name)
                if stage.name in fused
                else (),
            )
            for stage in flow.stages
        }
        self.states: dict[str, dict[Any, Any]] = {
            stage.name: {} for stage in flow.stages if stage.kind in _STATEFUL_KINDS
        }
        self.positions: dict[str, dict[str, Any]] = {}
        self._downstream = {
            chain.name: list(
                dict.fromkeys(
                    name for port in chain.exits for name in self.plan.readers.get(port, ())
                )
            )
            for chain in self.plan.chains
        }
        """Per chain, the chains reading it (each once, though it may read several ports)."""
        self.store_option = store
        self.checkpoint_interval = checkpoint_interval
        self.checkpoint_events = checkpoint_events
        self.resume = resume
        self.rerun_of = rerun_of
        self.claimed = claimed
        self.target = target or origin_of(flow)
        if sum(x is not None for x in (resume, rerun_of, claimed)) > 1:
            raise ValueError("give at most one of resume=, rerun_of= (and a claimed run)")
        self.compatible = compatible
        self.renamed = _check_renamed(renamed, resume or rerun_of)
        self.params = dict(params or {})
        self.checkpointer: Checkpointer | None = None
        self.recorder: RunRecorder | None = None
        self._start_positions: dict[str, dict[str, Any]] = {}
        self._partition_names: dict[str, list[str]] = {}
        self._finished: set[str] = set()
        self._prepared: dict[str, Any] = {}
        """Transactional sinks' writes of the checkpoint resumed from, to commit again."""
        self.stopping = False
        self.aborted = False
        self.releasing = False
        """Set when the run stops to go back to the queue (a worker interrupted)."""
        self.lost = False
        """Set when the run's lease was lost: cancelled from outside, or taken over."""
        self.observers: tuple[RunObserver, ...] = tuple(observers)
        self._helpers: list[asyncio.Task[None]] = []
        self._captured: dict[str, int] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._reading: set[asyncio.Task[Any]] = set()
        self._interrupts = 0
        self._error: BaseException | None = None

    # -- the run --------------------------------------------------------------------------

    async def execute(self, *, handle_signals: bool = False) -> RunResult:
        """Run to the end (or to a stop) and return the result; with a store, record it
        there from start to end, with its checkpoints. However the run ends (its flow
        failed, it was stopped or cancelled, riverbed itself failed), the store is left
        with it ended or resumable, never RUNNING under a process that has stopped."""
        started = datetime.now(UTC)
        self._captured = {  # what capturing sinks held before: the result has the rest
            stage.name: len(stage.fn.items)
            for stage in self.flow.stages
            if stage.is_sink and isinstance(stage.fn, Capture)
        }
        store = resolve_store(self.store_option)
        restore = await self._start_record(store)
        try:
            status, error = await self._run_to_end(store, restore, handle_signals)
        except BaseException as escaped:  # cancelled from outside, or a bug of riverbed
            cancelled = isinstance(escaped, asyncio.CancelledError | KeyboardInterrupt)
            if not cancelled:
                self.failures.record("<engine>", None, escaped, 1, OnError.STOP)
            status = RunStatus.CANCELLED if cancelled else RunStatus.FAILED
            await self._end_record(started, status)
            raise
        self._error = error
        return await self._end_record(started, status)

    async def _start_record(self, store: Store | None) -> RestorePoint | None:
        """Where the run starts, and its record RUNNING under this process (nothing is
        recorded when this fails: a run that may not resume, a store away)."""
        if store is None:
            if self.resume is not None or self.rerun_of is not None:
                raise ValueError("resume= and rerun_of= need the store of the run: pass store=")
            return None
        restore, mode = await asyncio.to_thread(self._restore_point, store)
        if restore is not None:
            if mode != "rerun":
                self.run_id = restore.run.run_id
            self._restore(restore)
        self.recorder = RunRecorder(
            store,
            self.flow,
            self.run_id,
            params=self.params,
            restore=restore,
            mode=mode,
            target=self.target,
        )
        record = await asyncio.to_thread(self.recorder.start)
        for observer in self.observers:
            observer.started(record)
        return restore

    async def _run_to_end(
        self, store: Store | None, restore: RestorePoint | None, handle_signals: bool
    ) -> tuple[RunStatus, BaseException | None]:
        """Start every task, wait for the end, take the final checkpoint, close the sinks;
        return how the run ended and the error that stopped it."""
        executors = self._executors(store)
        loop = asyncio.get_running_loop()
        signals = handle_signals and threading.current_thread() is threading.main_thread()
        display = ticker = None
        error: BaseException | None = None
        try:
            if self.recorder is not None and (self.checkpoint_interval or self.checkpoint_events):
                self.checkpointer = self._checkpointer(restore)
            await self._commit_prepared()
            if self.recorder is not None:
                self.recorder.keep_lease(self._lease_lost, loop)
            if self.checkpointer is not None:
                self._helpers.append(loop.create_task(self.checkpointer.run()))
            drained = restore is not None and bool(restore.meta.get("ended"))
            if not drained:  # a run resumed after its last checkpoint has nothing to do
                self._start_tasks(loop, executors)
            display, ticker = self._start_progress(loop)
            if signals:
                for number in INTERRUPTS:
                    loop.add_signal_handler(number, self._on_interrupt, number)
            error = await self._wait()
            if error is None and self.checkpointer is not None and not (self.aborted or drained):
                await self._final_checkpoint(executors)
        except StageFailedError as failure:  # a source could not list its partitions
            error = failure
        except RiverbedError as failure:  # the store failed a checkpoint: the run cannot go on
            if not isinstance(failure, LeaseLostError):
                raise
        finally:
            if signals:
                for number in INTERRUPTS:
                    loop.remove_signal_handler(number)
            error = await self._wind_down(executors, error)
            status = self._status(error)
            if ticker is not None:
                ticker.cancel()
            if display is not None:
                display.stop(status.value)
        return status, error

    def _status(self, error: BaseException | None) -> RunStatus:
        """How the run ended, as this process saw it (the store may know better: a run
        cancelled from outside meanwhile)."""
        if self.lost:
            return RunStatus.CANCELLED
        if error is not None:
            return RunStatus.FAILED
        if self.stopping or self.aborted:
            return RunStatus.SCHEDULED if self.releasing else RunStatus.CANCELLED
        return RunStatus.SUCCEEDED

    async def _wind_down(
        self, executors: list[ChainExecutor], error: BaseException | None
    ) -> BaseException | None:
        """Stop the helpers, commit what transactional sinks hold (no checkpoints), close
        every sink; the first error wins."""
        for task in self._helpers:
            task.cancel()
        if self.checkpointer is None and not self.lost:
            error = error or await self._commit_unchecked()
        for executor in executors:
            closing_error = await self._close(executor)
            error = error or closing_error
        return error

    async def _end_record(self, started: datetime, status: RunStatus) -> RunResult:
        """The run's result, recorded in the store (fenced by its lease): with the status
        the store holds, if the run was cancelled from outside meanwhile."""
        result = self._result(started, status)
        if self.recorder is not None:
            record = await asyncio.to_thread(
                self.recorder.finish, result, release=status is RunStatus.SCHEDULED
            )
            if record.status is not result.status:
                result = dataclasses.replace(result, status=record.status)
        for observer in self.observers:
            observer.ended(result)
        return result

    def _result(self, started: datetime, status: RunStatus) -> RunResult:
        outputs = {
            name: self.flow.stage(name).fn.items[start:] for name, start in self._captured.items()
        }
        return RunResult(
            run_id=self.run_id,
            flow=self.flow.name,
            flow_version=self.version,
            status=status,
            started_at=started,
            ended_at=datetime.now(UTC),
            stages={name: counters.freeze() for name, counters in self.counters.items()},
            outputs=outputs,
            dead_letters=tuple(self.failures.dead_letters),
            errors=tuple(self.failures.errors),
            error=self.failures.fatal,
            positions={name: dict(parts) for name, parts in self.positions.items()},
        )

    def _executors(self, store: Store | None) -> list[ChainExecutor]:
        return [
            ChainExecutor(
                chain,
                [self.counters[s.name] for s in chain.stages],
                [self.states.get(s.name) for s in chain.stages],
                self.failures,
                self.clock,
                concurrency=self.concurrency,
                seed=self.seed,
                finished=chain.name in self._finished,
                step_cache=StepCache(store, self.run_id) if store is not None else None,
            )
            for chain in self.plan.chains
        ]

    def _start_tasks(self, loop: asyncio.AbstractEventLoop, executors: list[ChainExecutor]) -> None:
        """One task per source partition and one per chain, joined by bounded channels;
        a source of one partition read by one synchronous chain alone runs that chain in
        its own task, without a channel between them (see ``_read``)."""
        partitions = {source.name: self._partitions(source) for source in self.plan.sources}
        channels = self._channels(partitions)
        by_name = {executor.chain.name: executor for executor in executors}
        attached: dict[str, ChainExecutor] = {}
        for source in self.plan.sources:
            readers = self.plan.readers.get(Port(source.name), ())
            if len(partitions[source.name]) == 1 and len(readers) == 1:
                chain = by_name[readers[0]].chain
                if by_name[readers[0]].attachable and len(chain.head.inputs) == 1:
                    attached[source.name] = by_name[readers[0]]
        for source in self.plan.sources:
            targets = [channels[name] for name in self.plan.readers.get(Port(source.name), ())]
            self.positions[source.name] = {}
            for partition in partitions[source.name]:
                task = self._read(source, partition, targets, attached.get(source.name), channels)
                self._tasks.append(loop.create_task(task, name=source.name))
        own = {executor.chain.name for executor in attached.values()}
        for executor in executors:
            if executor.chain.name not in own:
                task = self._run_chain(executor, channels)
                self._tasks.append(loop.create_task(task, name=executor.chain.name))

    async def _wait(self) -> BaseException | None:
        """Wait for every task; on the first failure, cancel the rest. Returns the error."""
        pending = set(self._tasks)
        error: BaseException | None = None
        try:
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_EXCEPTION)
                for task in done:
                    if task.cancelled() or task.exception() is None or error is not None:
                        continue
                    error = task.exception()
                if error is not None:
                    break
        except asyncio.CancelledError:
            self._cancel_all()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            raise
        if pending:
            self._cancel_all()
            await asyncio.gather(*pending, return_exceptions=True)
        if self.lost:
            return None  # no longer this process's run: nothing of it is recorded
        if error is not None and not isinstance(error, StageFailedError):
            self.failures.record("<engine>", None, error, 1, OnError.STOP)
            internal = InternalError(f"riverbed's local engine failed: {error!r}")
            internal.__cause__ = error
            return internal
        return error

    def _cancel_all(self) -> None:
        for task in self._tasks:
            task.cancel()

    def _channels(self, partitions: dict[str, list[str]]) -> dict[str, Channel]:
        """One channel per chain, knowing its writers: each partition of a source it reads,
        and each chain it reads (by the name ``_writer`` gives them)."""
        sources = {source.name for source in self.plan.sources}
        chain_of = {s.name: chain.name for chain in self.plan.chains for s in chain.stages}
        channels = {}
        for chain in self.plan.chains:
            writers: dict[str, None] = {}
            for port in chain.head.inputs:
                if port.stage in sources:
                    writers.update(
                        dict.fromkeys(writer_name(port.stage, p) for p in partitions[port.stage])
                    )
                else:
                    writers[chain_of[port.stage]] = None
            channels[chain.name] = Channel(self.capacity, list(writers))
        return channels

    async def _read(
        self,
        source: Stage,
        partition: str,
        targets: Sequence[Channel],
        chain: ChainExecutor | None,
        channels: dict[str, Channel],
    ) -> None:
        """Read one source partition until it ends or the run is stopping, handing each
        batch to the channels of its readers, or straight to ``chain`` when the source is
        its only input. A reader that can ``pull`` then feeds the chain's loop one event
        at a time as it makes them, with no batch list in between."""
        counters = self.counters[source.name]
        positions = self.positions[source.name]
        start = self._start_positions.get(source.name, {}).get(partition)
        if start is not None:
            positions[partition] = start
        try:
            reader = source.fn.open(partition, start)
            try:
                if chain is not None and callable(getattr(reader, "pull", None)):
                    await self._pull(source, partition, reader, chain, channels)
                else:
                    await self._read_batches(source, partition, reader, targets, chain, channels)
            finally:
                closing = reader.close()
                if inspect.isawaitable(closing):
                    await closing
        except StageFailedError:
            raise  # a stage of the attached chain failed: already recorded
        except Exception as error:
            counters.errors += 1
            what = f"source {source.name!r} (partition {partition!r}) failed"
            raise self.failures.stop(source.name, error, what) from error
        positions[partition] = reader.position()
        if self.checkpointer is not None:
            self.checkpointer.ended(
                writer_name(source.name, partition), self._source_part(source, partition)
            )
        if chain is not None:
            await self._end_chain(chain, channels)
        else:
            for channel in targets:
                await channel.end(writer_name(source.name, partition))

    async def _read_batches(
        self,
        source: Stage,
        partition: str,
        reader: Any,
        targets: Sequence[Channel],
        chain: ChainExecutor | None,
        channels: dict[str, Channel],
    ) -> None:
        counters = self.counters[source.name]
        read = reader.read
        writer = writer_name(source.name, partition)
        inject = self._injector(source, partition, targets, chain, channels)
        while not self.stopping:
            if inject is not None:
                await inject()
            started = time.perf_counter()
            batch = read(self.batch_size)
            waited = inspect.isawaitable(batch)
            if waited:
                batch = await self._await_read(batch, inject)
                if batch is _STOPPED:
                    break
            counters.seconds += time.perf_counter() - started
            if batch is None:
                break
            if type(batch) is not list:
                raise SourceError(
                    f"source {source.name!r}: read() returned {type(batch).__name__}; "
                    "it must return a list of events, [] for none yet, or None at end"
                )
            if not batch:
                await self.clock.sleep(POLL_INTERVAL)
                continue
            counters.events_out += len(batch)
            self.positions[source.name][partition] = reader.position()
            if self.checkpointer is not None:
                self.checkpointer.count(len(batch))
            if chain is not None:
                await self._step(chain, channels, chain.process(batch))
            else:
                for channel in targets:
                    await channel.put(batch, writer)
            if not waited:  # a synchronous reader, and channels with room, never
                await asyncio.sleep(0)  # suspend this task: let the other partitions run

    async def _pull(
        self,
        source: Stage,
        partition: str,
        reader: Any,
        chain: ChainExecutor,
        channels: dict[str, Channel],
    ) -> None:
        counters = self.counters[source.name]
        inject = self._injector(source, partition, (), chain, channels)
        while not self.stopping:
            if inject is not None:
                await inject()
            try:
                await self._step(chain, channels, chain.process(reader.pull(self.batch_size)))
            finally:  # count also a batch that a STOP ended half way
                taken = chain.taken
                reader.pulled(taken)
                counters.events_out += taken
                self.positions[source.name][partition] = reader.position()
            if self.checkpointer is not None:
                self.checkpointer.count(taken)
            if taken < self.batch_size:
                break
            await asyncio.sleep(0)  # no channel to wait on: let the other tasks run

    async def _await_read(self, pending: Any, inject: Injector | None) -> Any:
        """Await a source's read (with checkpoints on, see ``_read_or_checkpoint``); a
        first Ctrl-C cancels a read that waits for events (an idle stream), which ends this
        source as a clean stop."""
        task = asyncio.current_task()
        assert task is not None
        self._reading.add(task)
        try:
            if inject is None:
                return await pending
            return await self._read_or_checkpoint(pending, inject)
        except asyncio.CancelledError:
            if not self.stopping or self.aborted:
                raise
            task.uncancel()
            return _STOPPED
        finally:
            self._reading.discard(task)

    async def _read_or_checkpoint(self, pending: Any, inject: Injector) -> Any:
        """Await a read, taking the partition's part of every checkpoint that comes due
        meanwhile: its position has not moved since its last batch, so its barrier can go
        in while the read waits (for data that may be long in coming). The read itself is
        never cancelled for it, only when the partition stops."""
        checkpointer = self.checkpointer
        assert checkpointer is not None
        read = asyncio.ensure_future(pending)
        try:
            while not read.done():
                await inject()
                await asyncio.wait(
                    (read, checkpointer.triggered()), return_when=asyncio.FIRST_COMPLETED
                )
            return read.result()
        finally:
            if not read.done():  # the run stops, or failed: the read goes with it
                read.cancel()
                await asyncio.wait((read,))

    async def _run_chain(self, executor: ChainExecutor, channels: dict[str, Channel]) -> None:
        """Run a chain on the batches of its input channel, then end it. A chain with
        timers (``executor.tick_interval``) gets clock ticks through the same channel, in
        order with its batches; so does an operator that wakes it (``executor.wake``). A
        barrier makes it take its part of a checkpoint."""
        channel = channels[executor.chain.name]
        executor.wake = channel.nudge
        interval = executor.tick_interval
        ticker = None
        if interval is not None:
            ticker = asyncio.get_running_loop().create_task(self._tick(channel, interval))
        try:
            while (item := await channel.get()) is not None:
                if item is TICK:
                    await self._step(executor, channels, executor.tick())
                elif isinstance(item, Barrier):
                    await self._pass_barrier(item.checkpoint_id, executor, channels)
                else:
                    await self._step(executor, channels, executor.process(item))
            while await executor.draining():  # calls still running: emit as they finish
                await self._step(executor, channels, executor.tick())
        finally:
            if ticker is not None:
                ticker.cancel()
        await self._end_chain(executor, channels)

    async def _tick(self, channel: Channel, interval: float) -> None:
        while True:
            await self.clock.sleep(interval)
            await channel.tick()

    async def _step(
        self, executor: ChainExecutor, channels: dict[str, Channel], work: Awaitable[Outputs]
    ) -> None:
        """Await one batch's processing (timed, for every stage of the chain) and hand what
        leaves the chain to the channels downstream."""
        started = time.perf_counter()
        try:
            outs = await work
        finally:
            elapsed = time.perf_counter() - started
            for stage in executor.chain.stages:
                self.counters[stage.name].seconds += elapsed
        await self._emit(executor, channels, outs)

    async def _end_chain(self, executor: ChainExecutor, channels: dict[str, Channel]) -> None:
        """After the chain's last batch: emit fold totals if the stream ended, then tell
        every reader downstream that this writer is done."""
        await self._emit(executor, channels, await executor.finish(ended=not self.stopping))
        checkpointer = self.checkpointer
        if checkpointer is not None:
            name = executor.chain.name
            checkpointer.ended(name, executor.snapshot(checkpointer.next_for(name)))
        for name in self._downstream[executor.chain.name]:
            await channels[name].end(executor.chain.name)

    async def _emit(
        self, executor: ChainExecutor, channels: dict[str, Channel], outs: Outputs
    ) -> None:
        for port in executor.chain.exits:
            events = outs[str(port)]
            if events:
                for name in self.plan.readers.get(port, ()):
                    await channels[name].put(events, executor.chain.name)

    @staticmethod
    async def _close(executor: ChainExecutor) -> BaseException | None:
        try:
            await executor.close()
        except StageFailedError as failure:
            return failure
        return None

    # -- progress and Ctrl-C --------------------------------------------------------------

    def _start_progress(self, loop: asyncio.AbstractEventLoop) -> tuple[Any, Any]:
        if not self.show_progress:
            return None, None

        display = LiveProgress(self.flow.name, list(self.counters.values()))

        async def tick() -> None:
            try:
                while True:
                    await asyncio.sleep(0.25)
                    display.refresh()
            except Exception:  # a broken display must not break the run, nor hide
                logger.exception("flow %r: the progress display failed", self.flow.name)

        return display, loop.create_task(tick())

    def _stop(self) -> None:
        """Stop the sources and let what is in flight drain (a clean stop)."""
        self.stopping = True
        for task in list(self._reading):
            task.cancel()

    def _on_interrupt(self, number: int) -> None:
        """Ctrl-C or SIGTERM: a clean stop (cancelled; a worker's run goes back to the
        queue), and at a second one, at once. Observers are told (a worker stops after
        this run)."""
        for observer in self.observers:
            observer.stopping(signal.Signals(number).name)
        self._interrupts += 1
        if self._interrupts == 1:
            self.releasing = self.claimed is not None
            self._stop()
            logger.warning(
                "flow %r: stopping; draining events in flight (Ctrl-C again to stop at once)",
                self.flow.name,
            )
        else:
            self.aborted = True
            self._cancel_all()

    def _lease_lost(self) -> None:
        """The run is no longer this process's (cancelled from outside, or taken over):
        stop at once; nothing it would write now could be kept."""
        if self.lost:
            return
        self.lost = True
        self.aborted = True
        self._stop()
        self._cancel_all()


def _check_int(name: str, value: Any, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def _check_renamed(renamed: Mapping[str, str] | None, restored: str | None) -> dict[str, str]:
    if not renamed:
        return {}
    if restored is None:
        raise ValueError(
            "renamed= says where the state of renamed stages goes when a run is resumed or "
            "re-run: pass it with resume= or rerun_of="
        )
    if not all(isinstance(old, str) and isinstance(new, str) for old, new in renamed.items()):
        raise ValueError(f"renamed= maps old stage names to new ones (str), got {renamed!r}")
    return dict(renamed)


def _finish(run: LocalRun, result: RunResult) -> RunResult:
    if result.status is RunStatus.FAILED and run.raise_on_failure:
        reason = result.error
        what = (
            f"stage {reason.stage!r}: {reason.error_type}: {reason.message}"
            if reason is not None
            else repr(run._error)
        )
        raise RunFailedError(
            f"run {result.run_id} of flow {result.flow!r} failed at {what}", result=result
        ) from run._error
    return result


async def arun_flow(flow: Flow, **options: Unpack[RunOptions]) -> RunResult:
    """Run ``flow`` on the running event loop; see ``Flow.run``."""
    run = LocalRun(flow, **options)
    return _finish(run, await run.execute())


def run_flow(flow: Flow, **options: Unpack[RunOptions]) -> RunResult:
    """Run ``flow`` in a new event loop, with Ctrl-C handling; see ``Flow.run``."""
    run = LocalRun(flow, **options)
    return _finish(run, asyncio.run(run.execute(handle_signals=True)))
