"""``parallel_map`` on the local engine: each event's call runs on a worker (a thread, a
process or a coroutine) while the chain's task goes on taking events; results leave in input
order (or as they come) whenever they are ready, across batch boundaries.

The chain's executor drives an *operator* (``LocalOperator``) with the same four calls as a
processor: ``process(batch)`` takes events, ``tick()`` hands over what became ready since
(the engine calls it when the operator ``wake``s it through the chain's channel, or on its
``tick_interval``), ``finish()`` drains at the end, and ``aclose()`` always runs last, so
pools and tasks are released also after errors and Ctrl-C.

What an operator must remember lives in the run-owned state dict (plain values), so that a
checkpoint taken between two batches holds every event taken but not yet emitted, and a
resumed run calls them again.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import multiprocessing
import random
import traceback
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any, NamedTuple, Protocol

from riverbed._errors import StageTimeoutError
from riverbed._model.parallel import IN_FLIGHT_PER_WORKER, BatchMap, ParallelMap
from riverbed._model.policy import OnError, Policy
from riverbed._model.stages import Stage
from riverbed._runtime.clock import Clock
from riverbed._runtime.failures import FailureLog
from riverbed._runtime.result import StageCounters, event_repr

__all__ = ["LocalOperator", "local_operator"]

CHUNK = 8
"""Most events sent to a worker process in one call (see ``ParallelMapRun.chunk``)."""


class LocalOperator(Protocol):
    """A stage the local engine drives by batches and wake-ups (see the module docstring)."""

    tick_interval: float | None
    """Seconds of the run's clock between ticks, or None (the operator wakes itself)."""

    async def process(self, batch: list[Any]) -> list[Any]:
        """Take ``batch``; return the outputs ready now."""
        ...

    async def tick(self) -> list[Any]:
        """Return the outputs that became ready since the last call."""
        ...

    async def drain(self) -> bool:
        """The input ended: wait until some output is ready; False once none is owed (then
        ``finish`` is called). True means: call ``tick``, then ``drain`` again."""
        ...

    async def finish(self) -> list[Any]:
        """The input ended (or the run is stopping): return every output still owed."""
        ...

    async def aclose(self) -> None:
        """Release tasks, timers and pools (always called, also after errors)."""
        ...


class Failed(NamedTuple):
    """A call that failed for good: its last error and how many attempts were made."""

    error: Exception
    attempts: int


class Calls:
    """Calls of one stage's function under its policy: timeout per call, retries with
    backoff, and the ``on_error`` action once they run out."""

    def __init__(
        self,
        stage: Stage,
        policy: Policy,
        counters: StageCounters,
        failures: FailureLog,
        clock: Clock,
        rng: random.Random,
    ) -> None:
        self.stage = stage
        self.policy = policy
        self.counters = counters
        self.failures = failures
        self.clock = clock
        self.rng = rng
        self.abandoned = 0
        """Calls given up by their timeout that may still occupy a worker."""

    async def attempt(
        self, call: Callable[[], Awaitable[Any]], first: Exception | None = None
    ) -> Any:
        """The result of ``call()``, retried per the policy; ``Failed`` when it gave up.
        ``first`` is the error of a first attempt already made elsewhere."""
        retry = self.policy.retry
        attempt = 1
        error = first
        while True:
            if error is None:
                try:
                    return await self._timed(call())
                except Exception as failed:  # noqa: BLE001 - the user's call: to its policy
                    error = failed
            self.counters.errors += 1
            if attempt >= retry.attempts or not retry.retryable(error):
                return Failed(error, attempt)
            self.counters.retries += 1
            await self.clock.sleep(retry.delay(attempt, self.rng))
            attempt += 1
            error = None

    async def _timed(self, call: Awaitable[Any]) -> Any:
        timeout = self.policy.timeout
        if timeout is None:
            return await call
        try:
            return await asyncio.wait_for(call, timeout)
        except TimeoutError:
            self.abandoned += 1
            name = self.stage.name
            raise StageTimeoutError(
                f"stage {name!r}: the call took longer than its timeout of {timeout}s",
                stage=name,
                timeout=timeout,
            ) from None

    def give_up(self, events: list[Any], failed: Failed, *, subject: Any) -> list[Any]:
        """Apply ``on_error`` to each of ``events`` after ``failed``: raise for STOP, else
        return what passes on (the events themselves for CONTINUE, nothing otherwise).
        ``subject`` is what the failed call was given, for the STOP message."""
        action = self.policy.on_error
        error, attempts = failed
        name = self.stage.name
        if action is OnError.STOP:
            what = (
                f"stage {name!r} failed on {event_repr(subject, 120)} after {attempts} attempt(s)"
            )
            raise self.failures.stop(name, error, what, event=subject, attempts=attempts)
        for event in events:
            self.failures.record(name, event, error, attempts, action)
        if action is OnError.SKIP:
            self.counters.skipped += len(events)
        elif action is OnError.DEAD_LETTER:
            self.counters.dead_lettered += len(events)
        else:  # CONTINUE: a map passes the event on unchanged
            return list(events)
        return []


class Pools:
    """The worker pool of one stage for one run: made on first use, shut down by
    ``shutdown`` (which the executor's ``close`` always reaches)."""

    def __init__(self, stage: str, mode: str, workers: int) -> None:
        self.stage = stage
        self.mode = mode
        self.workers = workers
        self.pool: Executor | None = None

    def get(self) -> Executor:
        """The pool, made now if this is its first use in the run."""
        if self.pool is None:
            if self.mode == "process":
                # spawn, not fork: forking a process that runs an event loop and threads can
                # deadlock a child on a lock held by another thread at the fork.
                context = multiprocessing.get_context("spawn")
                self.pool = ProcessPoolExecutor(self.workers, mp_context=context)
            else:
                name = f"riverbed-{self.stage}"
                self.pool = ThreadPoolExecutor(self.workers, thread_name_prefix=name)
        return self.pool

    async def shutdown(self, *, abandoned: bool) -> None:
        """Shut the pool down; with ``abandoned`` calls (timed out, maybe still running),
        do not wait for them: a process pool's workers are terminated, threads (which
        cannot be killed) are left to finish on their own."""
        pool, self.pool = self.pool, None
        if pool is None:
            return
        if abandoned:
            if isinstance(pool, ProcessPoolExecutor):
                # No public way to stop a busy worker before Python 3.14's terminate_workers.
                for process in list(getattr(pool, "_processes", {}).values()):
                    process.terminate()
            pool.shutdown(wait=False, cancel_futures=True)
            return
        await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)


class ParallelMapRun:
    """``parallel_map`` for one run (see ``Stream.parallel_map``).

    ``state["taken"]`` maps a sequence number to each event taken and not yet emitted: the
    in-order reassembly's memory, and what a checkpoint keeps of the work in flight.
    """

    tick_interval: float | None = None

    def __init__(
        self, spec: ParallelMap, calls: Calls, state: dict[str, Any], wake: Callable[[], None]
    ) -> None:
        self.spec = spec
        self.calls = calls
        self.wake = wake
        self.pools = Pools(calls.stage.name, spec.mode, spec.workers)
        # With a timeout, a call must start when it is submitted, or its time in the pool's
        # queue would count; without one, a few queued calls per worker keep every worker
        # busy while results travel back to this loop.
        queued = spec.mode != "async" and calls.policy.timeout is None
        self.slots = spec.workers * (IN_FLIGHT_PER_WORKER if queued else 1)
        # A call to a worker process costs some 0.1 to 0.3 ms of pickling and hand-over:
        # without a timeout (which is per event), events travel in chunks of the ones
        # waiting, up to CHUNK, which makes that cost small beside a millisecond's work.
        self.chunk = CHUNK if queued and spec.mode == "process" else 1
        self.limit = spec.window * self.chunk
        if spec.ordered and spec.gap == "skip":
            self.limit += spec.max_buffered
        resumed = sorted(state.get("taken", {}).items())
        self.taken: dict[int, Any] = {}
        state["taken"] = self.taken
        self.next_seq = 0
        self.next_out = 0  # ordered: the next sequence number to emit
        self.waiting: collections.deque[int] = collections.deque()  # taken, not started
        self.running: set[asyncio.Task[list[list[Any]]]] = set()
        self.done: dict[int, list[Any]] = {}  # ordered: finished, behind a missing one
        self.ready: list[Any] = []  # to emit at the next return to the engine
        self.failure: BaseException | None = None
        self.changed = asyncio.Event()
        self.busy = False  # inside process/finish: the engine is listening, no wake needed
        self.woken = False
        for _, event in resumed:  # events a checkpoint held in flight are called again
            self._take(event)

    async def process(self, batch: list[Any]) -> list[Any]:
        """Take the events, waiting only while the window is full; return what is ready."""
        self.busy = True
        self.woken = False  # what a wake-up was for leaves now (its tick may have been dropped)
        try:
            for event in batch:
                while len(self.taken) >= self.limit and self.failure is None:
                    await self._changed()
                self._raise_failure()
                self._take(event)
            self._raise_failure()
            return self._harvest()
        finally:
            self.busy = False

    async def tick(self) -> list[Any]:
        """What finished since the last call."""
        self.woken = False
        self._raise_failure()
        return self._harvest()

    async def drain(self) -> bool:
        """Wait until a call finishes; False once every event taken has left."""
        self.busy = True
        try:
            while self.taken and not self.ready and self.failure is None:
                await self._changed()
            return bool(self.taken or self.ready or self.failure)
        finally:
            self.busy = False

    async def finish(self) -> list[Any]:
        """Wait for every event taken; return the rest of the outputs."""
        self.busy = True
        try:
            while self.taken and self.failure is None:
                await self._changed()
            self._raise_failure()
            return self._harvest()
        finally:
            self.busy = False

    async def aclose(self) -> None:
        """Cancel calls still running (after a failure or a cancel) and shut the pool."""
        tasks = list(self.running)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        abandoned = bool(tasks) or self.calls.abandoned > 0
        await self.pools.shutdown(abandoned=abandoned)

    # -- inside ---------------------------------------------------------------------------

    def _take(self, event: Any) -> None:
        seq = self.next_seq
        self.next_seq += 1
        self.taken[seq] = event
        self.waiting.append(seq)
        self._start()

    def _start(self) -> None:
        waiting = self.waiting
        while waiting and len(self.running) < self.slots and self.failure is None:
            seqs = [waiting.popleft() for _ in range(min(self.chunk, len(waiting)))]
            events = [self.taken[seq] for seq in seqs]
            work = self._one(events[0]) if self.chunk == 1 else self._chunk(events)
            task = asyncio.ensure_future(work)
            self.running.add(task)
            task.add_done_callback(functools.partial(self._finished, seqs))

    async def _one(self, event: Any, first: Exception | None = None) -> list[list[Any]]:
        """The outputs of one event (a list of one list), under the policy."""
        outcome = await self.calls.attempt(lambda: self._call(event), first)
        if isinstance(outcome, Failed):
            return [self.calls.give_up([event], outcome, subject=event)]
        return [[outcome]]

    async def _chunk(self, events: list[Any]) -> list[list[Any]]:
        """The outputs of each of ``events``, called in one worker process; an event that
        failed there goes on alone under the policy (its first attempt made)."""
        try:
            outcomes = await _submit(self.pools.get(), _call_each, self.spec.fn, events)
        # The chunk as a whole failed (a broken pool, a pickling error, whatever a user's
        # object raises): each event goes on under the policy with that error.
        except Exception as error:  # noqa: BLE001
            outcomes = [(False, error, "")] * len(events)
        outputs: list[list[Any]] = []
        for event, (ok, value, text) in zip(events, outcomes, strict=True):
            if ok:
                outputs.append([value])
                continue
            if text:
                value.__cause__ = RemoteTraceback(f'\n"""\n{text}"""')
            outputs.extend(await self._one(event, value))
        return outputs

    def _call(self, event: Any) -> Awaitable[Any]:
        fn = self.spec.fn
        if self.spec.mode == "async":
            result: Awaitable[Any] = fn(event)
            return result
        return _submit(self.pools.get(), fn, event)

    def _finished(self, seqs: list[int], task: asyncio.Task[list[list[Any]]]) -> None:
        self.running.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:  # STOP (a StageFailedError), or a bug: the run fails
            self.failure = self.failure or error
        else:
            for seq, outputs in zip(seqs, task.result(), strict=True):
                if not self.spec.ordered or seq < self.next_out:  # unordered, or late
                    self.ready.extend(outputs)
                    del self.taken[seq]
                else:
                    self.done[seq] = outputs
            if self.spec.ordered:
                self._release()
        self._start()
        self.changed.set()
        if not self.busy and not self.woken:
            self.woken = True
            self.wake()

    def _release(self) -> None:
        """Ordered: emit what is next in line; with ``gap="skip"``, once more than
        ``max_buffered`` results wait behind a missing one, emit them past it."""
        done, taken = self.done, self.taken
        while self.next_out in done:
            self.ready.extend(done.pop(self.next_out))
            del taken[self.next_out]
            self.next_out += 1
        if self.spec.gap == "skip" and len(done) > self.spec.max_buffered:
            for seq in sorted(done):
                self.ready.extend(done[seq])
                del taken[seq]
            self.next_out = max(done) + 1
            done.clear()

    async def _changed(self) -> None:
        self.changed.clear()
        await self.changed.wait()

    def _raise_failure(self) -> None:
        if self.failure is not None:
            raise self.failure

    def _harvest(self) -> list[Any]:
        ready, self.ready = self.ready, []
        return ready


class RemoteTraceback(Exception):  # noqa: N818 - not an error: text, as concurrent.futures has it
    """The traceback of an error raised in a worker process (the error's ``__cause__``)."""

    def __str__(self) -> str:
        return str(self.args[0])


def _call_each(fn: Callable[[Any], Any], events: list[Any]) -> list[tuple[bool, Any, str]]:
    """In a worker process: ``(True, fn(event), "")`` or ``(False, error, its traceback)``
    per event (a traceback does not pickle: its text travels instead)."""
    outcomes: list[tuple[bool, Any, str]] = []
    for event in events:
        try:
            outcomes.append((True, fn(event), ""))
        except Exception as error:  # noqa: BLE001 - the user's function: sent back
            outcomes.append((False, error, "".join(traceback.format_exception(error))))
    return outcomes


def _submit(pool: Executor, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
    """``fn(*args)`` on ``pool``, as an asyncio future. Unlike ``run_in_executor``, giving
    up on the asyncio side (a timeout, a cancelled run) does not cancel the pool's future:
    a process pool whose workers are then terminated would fail to mark a cancelled future
    broken (Python 3.11), and a queued call is cancelled by the pool's shutdown anyway."""
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[Any] = loop.create_future()

    def settle(done: Future[Any]) -> None:  # in a pool thread, or here if already done
        with contextlib.suppress(RuntimeError):  # the run's loop is closed: nobody waits
            loop.call_soon_threadsafe(_copy, done, waiter)

    pool.submit(fn, *args).add_done_callback(settle)
    return waiter


def _copy(done: Future[Any], waiter: asyncio.Future[Any]) -> None:
    if waiter.done():
        return
    if done.cancelled():
        waiter.cancel()
    elif (error := done.exception()) is not None:
        waiter.set_exception(error)
    else:
        waiter.set_result(done.result())


def local_operator(
    stage: Stage,
    policy: Policy,
    counters: StageCounters,
    failures: FailureLog,
    clock: Clock,
    rng: random.Random,
    state: dict[str, Any],
    wake: Callable[[], None],
) -> LocalOperator | None:
    """The local operator for a ``PROCESS`` stage whose spec the runner executes itself
    (``parallel_map``, ``batch_map``); None for a plain processor."""
    spec = stage.fn
    calls = Calls(stage, policy, counters, failures, clock, rng)
    if isinstance(spec, ParallelMap):
        return ParallelMapRun(spec, calls, state, wake)
    if isinstance(spec, BatchMap):
        from riverbed._runtime.chains.batching import BatchMapRun

        return BatchMapRun(spec, calls, state, wake)
    return None
