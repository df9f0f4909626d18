"""Runs one chain of the plan over batches: the generated fast loop for synchronous chains,
an ordered, bounded-concurrency loop for async ones, and the slow path that applies a
stage's failure policy (retry with backoff, then stop / skip / continue / dead-letter).

The slow path is also the reference meaning of every operator: the generated loop must do
exactly what ``_apply`` does, only faster.
"""

from __future__ import annotations

import asyncio
import collections
import operator
import random
from collections.abc import Callable
from typing import Any

from riverbed._errors import StageFailedError, StageTimeoutError
from riverbed._model import callables
from riverbed._model.plan import Chain, is_batch_sink
from riverbed._model.policy import OnError
from riverbed._model.stages import SinkMode, StageKind
from riverbed._runtime.clock import Clock
from riverbed._runtime.local.codegen import (
    MISSING,
    Bail,
    StageResultError,
    UnknownRouteError,
    compile_chain,
)
from riverbed._runtime.local.failures import FailureLog
from riverbed._runtime.result import StageCounters

Outputs = dict[str, list[Any]]

# What CONTINUE does where an event cannot pass a stage unchanged: it is dropped, counted
# in ``skipped`` (key_by would emit an unkeyed event into a keyed stream; a route has no
# output to pass it to; a sink has nothing after it).
_CANNOT_PASS = frozenset({StageKind.KEY_BY, StageKind.ROUTE, StageKind.SINK})


class ChainExecutor:
    """Executes one chain; owns nothing but references to the run's counters and state."""

    def __init__(
        self,
        chain: Chain,
        counters: list[StageCounters],
        states: list[dict[Any, Any] | None],
        failures: FailureLog,
        clock: Clock,
        *,
        concurrency: int,
        seed: int | None = None,
    ) -> None:
        self.chain = chain
        self.stages = chain.stages
        self.policies = chain.policies
        self.counters = counters
        self.states = states
        self.failures = failures
        self.clock = clock
        self.rng = random.Random(seed)
        self.last = len(self.stages) - 1
        tail = chain.tail
        self.batch_sink = is_batch_sink(tail)
        self.ports: tuple[str, ...] = ("sink",) if self.batch_sink else tail.outputs
        self.is_async = [
            callables.is_async(s.method if s.method is not None else _call_target(s))
            for s in self.stages
        ]
        self.concurrency = chain.stages[0].concurrency or concurrency
        self.compiled = None if chain.is_async else compile_chain(chain, states)

    # -- per batch ------------------------------------------------------------------------

    async def process(self, batch: list[Any]) -> Outputs:
        """Run ``batch`` through the chain; return the events leaving each output port."""
        outs: Outputs = {port: [] for port in self.ports}
        try:
            if self.compiled is None:
                await self._process_async(batch, outs)
            else:
                await self._process_fast(batch, outs)
            if self.batch_sink:
                await self._write_batch(outs.pop("sink"))
        finally:
            self._sync_out_counts(outs)
        return outs

    async def finish(self) -> Outputs:
        """At end of stream: emit the final accumulators of folds through the rest of the
        chain, then close a sink object. Returns what leaves the chain."""
        outs: Outputs = {port: [] for port in self.ports}
        for index, stage in enumerate(self.stages):
            state = self.states[index]
            if stage.kind is StageKind.FOLD and not stage.running and state:
                await self._forward(index, [(key, acc) for key, acc in state.items()], outs)
        if self.batch_sink:
            await self._write_batch(outs.pop("sink"))
        self._sync_out_counts(outs)
        return outs

    async def close(self) -> None:
        """Close the tail's sink object, if it has ``close`` (called also after errors)."""
        tail = self.chain.tail
        if tail.is_sink and tail.sink_mode is SinkMode.OBJECT:
            close = getattr(tail.fn, "close", None)
            if close is not None:
                result = close()
                if asyncio.iscoroutine(result):
                    await result

    def _sync_out_counts(self, outs: Outputs) -> None:
        # Inside a chain, a stage's outputs are the next stage's inputs; the tail's are
        # what leaves through its ports.
        for index in range(self.last):
            self.counters[index].events_out = self.counters[index + 1].events_in
        tail = self.counters[self.last]
        tail.events_out += sum(len(events) for events in outs.values())

    async def _process_fast(self, batch: list[Any], outs: Outputs) -> None:
        assert self.compiled is not None
        tail = self.chain.tail
        if tail.kind is StageKind.ROUTE:
            args: tuple[Any, ...] = ({port: outs[port].append for port in self.ports},)
        else:
            args = tuple(outs[port].append for port in self.ports)
        run = self.compiled.run
        explicit = self.compiled.explicit
        sums = [0] * len(explicit)
        bails = [0] * len(self.stages)
        iterator = iter(batch)
        try:
            while True:
                try:
                    counts = run(iterator, *args)
                except Bail as bail:
                    for slot, count in enumerate(bail.counts):
                        sums[slot] += count
                    bails[bail.stage] += 1
                    await self._recover(bail, outs)
                    continue
                for slot, count in enumerate(counts):
                    sums[slot] += count
                break
        finally:  # count also when a STOP ends the batch half way
            entered = len(batch) - operator.length_hint(iterator)
            explicit_counts = dict(zip(explicit, sums, strict=True))
            for index, counters in enumerate(self.counters):
                if index:
                    entered = explicit_counts.get(index, entered - bails[index - 1])
                counters.events_in += entered

    async def _process_async(self, batch: list[Any], outs: Outputs) -> None:
        """Up to ``concurrency`` events in flight; outputs kept in input order. A stateful
        stage runs one event per key at a time, so per-key order holds for its state."""
        keyed_state = self.chain.head.kind in (StageKind.STATEFUL, StageKind.FOLD)
        window: collections.deque[tuple[asyncio.Task[None], Outputs]] = collections.deque()
        last_of_key: dict[Any, asyncio.Task[None]] = {}
        try:
            for event in batch:
                self.counters[0].events_in += 1
                mine: Outputs = {port: [] for port in self.ports}
                before = last_of_key.get(event[0]) if keyed_state else None
                task = asyncio.ensure_future(self._one(event, mine, before))
                if keyed_state:
                    last_of_key[event[0]] = task
                window.append((task, mine))
                if len(window) >= self.concurrency:
                    await self._drain_one(window, outs)
            while window:
                await self._drain_one(window, outs)
        finally:
            for task, _ in window:
                task.cancel()

    async def _one(self, event: Any, outs: Outputs, before: asyncio.Task[None] | None) -> None:
        if before is not None and not before.done():
            await asyncio.wait([before])  # the key's previous event first; its error is its own
        results = await self._attempt(0, event, None)
        if results is not None:
            await self._forward(0, results, outs)

    @staticmethod
    async def _drain_one(
        window: collections.deque[tuple[asyncio.Task[None], Outputs]], outs: Outputs
    ) -> None:
        task, mine = window.popleft()
        await task
        for port, events in mine.items():
            outs[port].extend(events)

    # -- the slow path --------------------------------------------------------------------

    async def _recover(self, bail: Bail, outs: Outputs) -> None:
        """Finish the event the fast loop bailed on, then the rest of the items of the
        flat_maps it was inside, innermost first."""
        results = await self._attempt(bail.stage, bail.value, bail.error)
        if results is not None:
            await self._forward(bail.stage, results, outs)
        for index, iterator in reversed(bail.pending):
            for event in iterator:
                await self._push(index + 1, event, outs)

    async def _push(self, index: int, event: Any, outs: Outputs) -> None:
        self.counters[index].events_in += 1
        results = await self._attempt(index, event, None)
        if results is not None:
            await self._forward(index, results, outs)

    async def _forward(self, index: int, results: list[Any], outs: Outputs) -> None:
        if index == self.last:
            stage = self.stages[index]
            if stage.kind in (StageKind.BRANCH, StageKind.ROUTE):
                for port, event in results:
                    outs[port].append(event)
            elif stage.is_sink and not self.batch_sink:
                pass
            else:
                outs[self.ports[0]].extend(results)
            return
        for event in results:
            await self._push(index + 1, event, outs)

    async def _attempt(self, index: int, event: Any, error: Exception | None) -> list[Any] | None:
        """Apply stage ``index`` to ``event`` with its policy. ``error`` is the failure of a
        first attempt already made (by the fast loop). Returns the outputs, or None when the
        event was dropped by policy."""
        policy = self.policies[index]
        counters = self.counters[index]
        attempt = 1
        if error is None:
            try:
                return await self._apply(index, event)
            except Exception as first:
                error = first
        while True:
            counters.errors += 1
            if attempt >= policy.retry.attempts or not policy.retry.retryable(error):
                break
            counters.retries += 1
            await self.clock.sleep(policy.retry.delay(attempt, self.rng))
            attempt += 1
            try:
                return await self._apply(index, event)
            except Exception as again:
                error = again
        return self._give_up(index, event, error, attempt)

    def _give_up(self, index: int, event: Any, error: Exception, attempts: int) -> list[Any] | None:
        stage = self.stages[index]
        action = self.policies[index].on_error
        if action is OnError.CONTINUE and stage.kind in _CANNOT_PASS:
            self.failures.record(stage.name, event, error, attempts, OnError.SKIP)
            self.counters[index].skipped += 1
            return None
        self.failures.record(stage.name, event, error, attempts, action)
        if action is OnError.STOP:
            raise StageFailedError(
                f"stage {stage.name!r} failed on event {_short(event)} after {attempts} "
                f"attempt(s): {type(error).__name__}: {error}",
                stage=stage.name,
                attempts=attempts,
                event=event,
            ) from error
        if action is OnError.SKIP:
            self.counters[index].skipped += 1
            return None
        if action is OnError.DEAD_LETTER:
            self.counters[index].dead_lettered += 1
            return None
        # CONTINUE: the event passes this stage unchanged.
        if stage.kind is StageKind.BRANCH:
            return [("false", event)]
        return [event]

    async def _call(self, index: int, fn: Callable[..., Any], *args: Any) -> Any:
        timeout = self.policies[index].timeout
        if self.is_async[index]:
            if timeout is None:
                return await fn(*args)
            call = fn(*args)
        elif timeout is not None:
            call = asyncio.to_thread(fn, *args)
        else:
            return fn(*args)
        try:
            return await asyncio.wait_for(call, timeout)
        except TimeoutError:
            stage = self.stages[index].name
            raise StageTimeoutError(
                f"stage {stage!r}: the call took longer than its timeout of {timeout}s",
                stage=stage,
                timeout=timeout,
            ) from None

    async def _apply(self, index: int, x: Any) -> list[Any]:
        """What stage ``index`` makes of one event: the reference semantics."""
        stage = self.stages[index]
        kind = stage.kind
        fn = stage.fn
        if kind is StageKind.MAP:
            return [await self._call(index, fn, x)]
        if kind is StageKind.FILTER:
            return [x] if await self._call(index, fn, x) else []
        if kind is StageKind.INSPECT:
            await self._call(index, fn, x)
            return [x]
        if kind is StageKind.KEY_BY:
            return [(await self._call(index, fn, x), x)]
        if kind is StageKind.MERGE:
            return [x]
        if kind is StageKind.FLAT_MAP:
            return list(await self._call(index, fn, x))
        if kind is StageKind.STATEFUL:
            return await self._apply_stateful(index, x)
        if kind is StageKind.FOLD:
            return await self._apply_fold(index, x)
        if kind is StageKind.BRANCH:
            return [("true" if await self._call(index, fn, x) else "false", x)]
        if kind is StageKind.ROUTE:
            name = await self._call(index, fn, x)
            if name not in stage.outputs:
                raise UnknownRouteError(name, stage.outputs)
            return [(name, x)]
        if kind is StageKind.SINK:
            if self.batch_sink:
                return [x]
            await self._call(index, fn, x)
            return []
        raise AssertionError(f"no semantics for {kind}")  # pragma: no cover

    async def _apply_stateful(self, index: int, x: Any) -> list[Any]:
        stage = self.stages[index]
        state = self.states[index]
        assert state is not None
        key, value = x
        current = state.get(key, MISSING)
        if stage.method is not None:
            if current is MISSING:
                current = state[key] = stage.fn()
            output = await self._call(index, stage.method, current, value)
        else:
            if current is MISSING:
                current = stage.initial() if stage.initial is not None else None
            result = await self._call(index, stage.fn, current, value)
            if type(result) is not tuple or len(result) != 2:
                raise StageResultError(StageResultError.MESSAGE % (result,))
            current, output = result
            if current is None:
                state.pop(key, None)
            else:
                state[key] = current
        return [] if output is None else [(key, output)]

    async def _apply_fold(self, index: int, x: Any) -> list[Any]:
        stage = self.stages[index]
        state = self.states[index]
        assert state is not None
        key, value = x
        acc = state.get(key, MISSING)
        if stage.initial is not None:
            acc = await self._call(
                index, stage.fn, stage.initial() if acc is MISSING else acc, value
            )
        else:
            acc = value if acc is MISSING else await self._call(index, stage.fn, acc, value)
        state[key] = acc
        return [(key, acc)] if stage.running else []

    async def _write_batch(self, events: list[Any]) -> None:
        """Call the batch sink once with ``events``, under its policy."""
        if not events:
            return
        index = self.last
        stage = self.stages[index]
        policy = self.policies[index]
        counters = self.counters[index]
        target = stage.fn.write_batch if stage.sink_mode is SinkMode.OBJECT else stage.fn
        attempt = 1
        while True:
            try:
                await self._call(index, target, events)
                return
            except Exception as error:
                counters.errors += 1
                if attempt < policy.retry.attempts and policy.retry.retryable(error):
                    counters.retries += 1
                    await self.clock.sleep(policy.retry.delay(attempt, self.rng))
                    attempt += 1
                    continue
                failed = error
                break
        if policy.on_error is OnError.STOP:
            self._give_up(index, events, failed, attempt)
        for event in events:
            self._give_up(index, event, failed, attempt)


def _call_target(stage: Any) -> Any:
    if stage.kind is StageKind.SINK and stage.sink_mode is SinkMode.OBJECT:
        return getattr(stage.fn, "write_batch", None)
    return stage.fn


def _short(event: Any) -> str:
    text = repr(event)
    return text if len(text) <= 120 else text[:117] + "..."
