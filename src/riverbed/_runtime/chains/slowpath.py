"""The slow path: what every stage kind does to one event, with its failure policy (retry
with backoff, then stop / skip / continue / dead-letter). It is the reference meaning of
every operator: the generated loop must do exactly what ``apply`` does, only faster, and
hands an event over here (``Bail``) when a call raises.
"""

from __future__ import annotations

import asyncio
import inspect
import random
from collections.abc import Callable, Sequence
from typing import Any

from riverbed._errors import StageTimeoutError
from riverbed._model import callables
from riverbed._model.plan import Chain, is_batch_sink
from riverbed._model.policy import OnError
from riverbed._model.process import Processor
from riverbed._model.stages import FoldStage, Port, Stage, StageKind, StatefulStage
from riverbed._runtime.cache import StepCache
from riverbed._runtime.chains.codegen import (
    MISSING,
    Bail,
    Mark,
    StageResultError,
    UnknownRouteError,
)
from riverbed._runtime.chains.counting import Batch, sink_key
from riverbed._runtime.clock import Clock
from riverbed._runtime.failures import FailureLog
from riverbed._runtime.result import StageCounters, event_repr

__all__ = ["REOFFER_FIRST", "REOFFER_MAX", "SinkResultError", "StageCalls"]

REOFFER_FIRST = 0.001
"""Seconds before a batch sink that consumed none of its batch is offered the rest again."""

REOFFER_MAX = 0.1
"""The longest wait between two offers to a batch sink that keeps consuming nothing: the
backoff doubles from ``REOFFER_FIRST`` up to this."""


class SinkResultError(ValueError):
    """A batch sink returned a count of consumed events outside its batch's size."""


# What CONTINUE does where an event cannot pass a stage unchanged: it is dropped, counted
# in ``skipped`` (key_by would emit an unkeyed event into a keyed stream; stateful and fold
# emit outputs or accumulators, which the raw event is not; a route has no output to pass
# it to; a sink has nothing after it).
_CANNOT_PASS = frozenset(
    {
        StageKind.KEY_BY,
        StageKind.STATEFUL,
        StageKind.FOLD,
        StageKind.PROCESS,
        StageKind.ROUTE,
        StageKind.SINK,
    }
)


class StageCalls:
    """Calls the stages of one chain on single events, under their policies."""

    def __init__(
        self,
        chain: Chain,
        counters: list[StageCounters],
        states: list[dict[Any, Any] | None],
        failures: FailureLog,
        clock: Clock,
        rng: random.Random,
        processors: dict[int, Processor],
        step_cache: StepCache | None,
        marks: Sequence[Mark | None] = (),
    ) -> None:
        self.chain = chain
        self.stages = chain.stages
        self.policies = chain.policies
        self.counters = counters
        self.states = states
        self.failures = failures
        self.clock = clock
        self.rng = rng
        self.processors = processors
        """The processors of the chain's ``PROCESS`` stages, by stage index."""
        self.step_cache = step_cache
        """Where ``cache=True`` stages look their outputs up (None: they are not cached)."""
        self.marks = [marks[i] if i < len(marks) else None for i in range(len(self.stages))]
        """Per stage: what its writes of a key's state call with the key (see
        ``codegen.compile_chain``), or None."""
        self.ports = [[Port(s.name, name) for name in s.outputs] for s in self.stages]
        self.called = [s.called for s in self.stages]
        """Per stage: what its calls call (``Stage.called``), looked up once."""
        self.is_async = [
            s.kind is not StageKind.PROCESS and callables.is_async(called)
            for s, called in zip(self.stages, self.called, strict=True)
        ]

    # -- moving events on -----------------------------------------------------------------

    async def recover(self, batch: Batch, bail: Bail) -> None:
        """Finish the event the fast loop bailed on, then the rest of the items of the
        flat_maps it was inside, innermost first."""
        results = await self.attempt(bail.stage, bail.value, bail.error)
        if results is not None:
            await self.forward(batch, bail.stage, results)
        for index, iterator in reversed(bail.pending):
            port = self.ports[index][0]
            for event in iterator:
                await self.send(batch, port, event)

    async def forward(self, batch: Batch, index: int, results: list[Any]) -> None:
        """Send what stage ``index`` made of one event on through its output ports."""
        ports = self.ports[index]
        if len(ports) > 1:  # branch, route: results are (output name, event) pairs
            name = self.stages[index].name
            for output, event in results:
                await self.send(batch, Port(name, output), event)
        elif ports:
            for event in results:
                await self.send(batch, ports[0], event)

    async def send(self, batch: Batch, port: Port, event: Any) -> None:
        """One event through ``port``: out of the chain, into a batch sink's list, or on
        to the stage reading it."""
        target = self.chain.links.get(port)
        if target is None:
            batch.lists[str(port)].append(event)
        elif is_batch_sink(self.stages[target]):
            batch.lists[sink_key(self.stages[target].name)].append(event)
        else:
            batch.slow[port] = batch.slow.get(port, 0) + 1
            results = await self.attempt(target, event, None)
            if results is not None:
                await self.forward(batch, target, results)

    # -- one event, under the policy ---------------------------------------------------------

    async def attempt(self, index: int, event: Any, error: Exception | None) -> list[Any] | None:
        """Apply stage ``index`` to ``event`` with its policy. ``error`` is the failure of a
        first attempt already made (by the fast loop). Returns the outputs, or None when the
        event was dropped by policy."""
        policy = self.policies[index]
        counters = self.counters[index]
        attempt = 1
        if error is None:
            try:
                return await self.applied(index, event)
            except Exception as first:  # noqa: BLE001 - the user's code: to its policy
                error = first
        while True:
            counters.errors += 1
            if attempt >= policy.retry.attempts or not policy.retry.retryable(error):
                break
            counters.retries += 1
            await self.clock.sleep(policy.retry.delay(attempt, self.rng))
            attempt += 1
            try:
                return await self.applied(index, event)
            except Exception as again:  # noqa: BLE001 - the user's code: to its policy
                error = again
        return self.give_up(index, event, error, attempt)

    def give_up(self, index: int, event: Any, error: Exception, attempts: int) -> list[Any] | None:
        """What the policy makes of an event whose attempts all failed."""
        stage = self.stages[index]
        action = self.policies[index].on_error
        if action is OnError.CONTINUE and stage.kind in _CANNOT_PASS:
            action = OnError.SKIP
        if action is OnError.STOP:
            what = (
                f"stage {stage.name!r} failed on event {event_repr(event, 120)} after "
                f"{attempts} attempt(s)"
            )
            raise self.failures.stop(stage.name, error, what, event=event, attempts=attempts)
        self.failures.record(stage.name, event, error, attempts, action)
        if action is OnError.SKIP:
            self.counters[index].skipped += 1
            return None
        if action is OnError.DEAD_LETTER:
            self.counters[index].dead_lettered += 1
            return None
        # CONTINUE: the event passes this stage unchanged.
        return [("false", event)] if stage.kind is StageKind.BRANCH else [event]

    async def applied(self, index: int, x: Any) -> list[Any]:
        """``apply``, through the step cache for a ``cache=True`` stage."""
        if self.step_cache is None or not self.stages[index].cache:
            return await self.apply(index, x)
        return await self.step_cache.through(self.stages[index], x, lambda: self.apply(index, x))

    async def apply(self, index: int, x: Any) -> list[Any]:
        """What stage ``index`` makes of one event: the reference semantics."""
        stage = self.stages[index]
        kind = stage.kind
        if kind is StageKind.STATEFUL:
            return await self._apply_stateful(index, x)
        if kind is StageKind.FOLD:
            return await self._apply_fold(index, x)
        if kind is StageKind.PROCESS:
            return list(self.processors[index].process(x, self.clock.now()) or ())
        if kind is StageKind.MERGE:
            return [x]
        result = await self.call(index, stage.fn, x)
        return _OUTPUTS[kind](stage, x, result)

    async def call(self, index: int, fn: Callable[..., Any], *args: Any) -> Any:
        """Call a stage's function (awaited if async), under the stage's timeout."""
        timeout = self.policies[index].timeout
        if self.is_async[index]:
            call = fn(*args)
            if inspect.isasyncgen(call):  # an async generator function, e.g. for flat_map
                call = _collect(call)
            if timeout is None:
                return await call
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

    async def _apply_stateful(self, index: int, x: Any) -> list[Any]:
        stage = self.stages[index]
        state = self.states[index]
        assert state is not None
        assert isinstance(stage, StatefulStage)
        key, value = x
        current = state.get(key, MISSING)
        mark = self.marks[index]
        if stage.method is not None:
            if current is MISSING:
                current = state[key] = stage.fn()
            if mark is not None:  # before the call: it changes the state in place
                mark(key)
            output = await self.call(index, stage.method, current, value)
        else:
            if current is MISSING:
                current = stage.initial() if stage.initial is not None else None
            result = await self.call(index, stage.fn, current, value)
            if type(result) is not tuple or len(result) != 2:
                raise StageResultError(StageResultError.MESSAGE % (result,))
            current, output = result
            if current is None:
                state.pop(key, None)
            else:
                state[key] = current
            if mark is not None:
                mark(key)
        return [] if output is None else [(key, output)]

    async def _apply_fold(self, index: int, x: Any) -> list[Any]:
        stage = self.stages[index]
        state = self.states[index]
        assert state is not None
        assert isinstance(stage, FoldStage)
        key, value = x
        acc = state.get(key, MISSING)
        if stage.initial is not None:
            acc = await self.call(
                index, stage.fn, stage.initial() if acc is MISSING else acc, value
            )
        else:
            acc = value if acc is MISSING else await self.call(index, stage.fn, acc, value)
        state[key] = acc
        mark = self.marks[index]
        if mark is not None:
            mark(key)
        return [(key, acc)] if stage.running else []

    # -- batch sinks and timers ---------------------------------------------------------------

    async def write_batch(self, index: int, events: list[Any]) -> None:
        """Offer batch sink ``index`` its ``events`` until it has consumed them all: a sink
        that returns how many it consumed (an int) gets the rest again, in order, after a
        backoff that grows while it takes none (see docs/sources-and-sinks.md). Failures go
        to its policy, for the events it had not consumed."""
        idle = 0
        while events:
            taken = await self._offer(index, events)
            if taken == len(events):
                return
            events = events[taken:]
            if taken:
                idle = 0
                await asyncio.sleep(0)  # it made progress: offer the rest at once
            else:
                idle += 1
                await self.clock.sleep(min(REOFFER_FIRST * 2 ** (idle - 1), REOFFER_MAX))

    async def _offer(self, index: int, events: list[Any]) -> int:
        """Call batch sink ``index`` once with ``events``, under its policy; how many it
        consumed (all of them when its policy dropped them)."""
        stage = self.stages[index]
        policy = self.policies[index]
        counters = self.counters[index]
        target = self.called[index]
        attempt = 1
        while True:
            try:
                return _consumed(stage, await self.call(index, target, events), len(events))
            except Exception as error:  # noqa: BLE001 - the user's sink: to its policy
                counters.errors += 1
                if attempt < policy.retry.attempts and policy.retry.retryable(error):
                    counters.retries += 1
                    await self.clock.sleep(policy.retry.delay(attempt, self.rng))
                    attempt += 1
                    continue
                failed = error
                break
        if policy.on_error is OnError.STOP:
            self.give_up(index, events, failed, attempt)
        for event in events:
            self.give_up(index, event, failed, attempt)
        return len(events)

    async def timer(self, batch: Batch, call: Callable[..., Any], what: str, index: int) -> None:
        """Call a processor's ``tick`` or ``finish``; a failure is the stage's error with no
        event, under its policy (STOP stops the run; other actions record it and go on)."""
        stage = self.stages[index]
        try:
            produced = call(self.clock.now()) if what == "tick" else call()
        except Exception as error:
            self.counters[index].errors += 1
            if self.policies[index].on_error is OnError.STOP:
                what_failed = f"stage {stage.name!r} failed in its {what}"
                raise self.failures.stop(stage.name, error, what_failed) from error
            self.failures.record(stage.name, f"<{what}>", error, 1, OnError.SKIP)
            return
        if produced:
            await self.forward(batch, index, list(produced))


def _consumed(stage: Stage, result: Any, offered: int) -> int:
    """How many of the ``offered`` events a batch sink consumed, by what it returned: an
    int counts them (from the first); anything else (None) means all."""
    if type(result) is not int:  # bool is an int, but True is no count
        return offered
    if not 0 <= result <= offered:
        raise SinkResultError(
            f"sink {stage.name!r} returned {result} for a batch of {offered} event(s); a batch "
            f"sink returns how many of the batch it consumed (0 to {offered}), or None for all"
        )
    return result


def _checked_route(stage: Stage, x: Any, name: Any) -> list[Any]:
    if name not in stage.outputs:
        raise UnknownRouteError(name, stage.outputs)
    return [(name, x)]


_OUTPUTS: dict[StageKind, Callable[[Stage, Any, Any], list[Any]]] = {
    StageKind.MAP: lambda stage, x, result: [result],
    StageKind.FILTER: lambda stage, x, result: [x] if result else [],
    StageKind.INSPECT: lambda stage, x, result: [x],
    StageKind.KEY_BY: lambda stage, x, result: [(result, x)],
    StageKind.FLAT_MAP: lambda stage, x, result: list(result),
    StageKind.BRANCH: lambda stage, x, result: [("true" if result else "false", x)],
    StageKind.ROUTE: _checked_route,
    StageKind.SINK: lambda stage, x, result: [],  # per event; batch sinks are per batch
}
"""What a stage kind makes of one event, given its function's result on it."""


async def _collect(generator: Any) -> list[Any]:
    return [item async for item in generator]
