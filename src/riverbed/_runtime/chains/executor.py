"""Runs one chain of the plan over batches: the generated fast loop for synchronous chains,
an ordered, bounded-concurrency loop for async ones, and the slow path that applies a
stage's failure policy (retry with backoff, then stop / skip / continue / dead-letter).

The slow path is also the reference meaning of every operator: the generated loop must do
exactly what ``_apply`` does, only faster.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import operator
import pickle
import random
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, NamedTuple

from riverbed._errors import StageFailedError, StageTimeoutError
from riverbed._model import callables
from riverbed._model.plan import Chain, is_batch_sink
from riverbed._model.policy import OnError
from riverbed._model.process import Processor, dropped
from riverbed._model.sinks import is_transactional_sink
from riverbed._model.stages import Port, SinkMode, StageKind
from riverbed._runtime.cache import StepCache
from riverbed._runtime.chains.codegen import (
    MISSING,
    Bail,
    CompiledChain,
    StageResultError,
    UnknownRouteError,
    compile_chain,
    remainder_ports,
)
from riverbed._runtime.chains.parallel import LocalOperator, local_operator
from riverbed._runtime.clock import Clock
from riverbed._runtime.failures import FailureLog
from riverbed._runtime.parts import Part
from riverbed._runtime.result import StageCounters, event_repr

Outputs = dict[str, list[Any]]
"""Events leaving a chain, per exit port (``str(port)``)."""

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


class _Tally:
    """The counts of one batch, turned into stage counters when the batch is done."""

    __slots__ = ("bails", "consumed", "explicit", "slow")

    def __init__(self, stages: int, explicit: int) -> None:
        self.consumed = 0
        self.bails = [0] * stages
        self.explicit = [0] * explicit
        self.slow: dict[Port, int] = {}


class _Edge(NamedTuple):
    """How to count the events through one output port of a stage of the chain."""

    port: Port
    target: int
    """The member reading the port; -1 when the port leaves the chain."""
    list_key: str | None
    """Counted by the length of this list (an exit, or a batch sink's input)."""
    slot: int
    """Counted by the loop in this slot of its counts (>= 0), or ``_DERIVED`` from a
    one-to-one stage's input, or the ``_REMAINDER`` of a branch's or route's input."""


_DERIVED = -1
_REMAINDER = -2


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
        finished: bool = False,
        step_cache: StepCache | None = None,
        compiled: bool = True,
    ) -> None:
        self.chain = chain
        self.stages = chain.stages
        self.policies = chain.policies
        self.counters = counters
        self.states = states
        self.failures = failures
        self.clock = clock
        self.rng = random.Random(seed)
        self.ports = [[Port(s.name, name) for name in s.outputs] for s in self.stages]
        self.batch_sinks = [i for i, s in enumerate(self.stages) if is_batch_sink(s)]
        self.list_keys = [str(port) for port in chain.exits] + [
            f"sink:{self.stages[i].name}" for i in self.batch_sinks
        ]
        self.is_async = [
            s.kind is not StageKind.PROCESS
            and callables.is_async(s.method if s.method is not None else _call_target(s))
            for s in self.stages
        ]
        self.concurrency = chain.head.concurrency or concurrency
        self.finished = finished
        """True once the chain emitted its end-of-stream output (also in an earlier
        attempt of a resumed run): it never does twice."""
        self.processor: Processor | None = None
        self.operator: LocalOperator | None = None  # parallel_map, batch_map: see parallel.py
        self.wake: Callable[[], None] = _no_wake
        """Set by the engine: asks it to call ``tick`` soon (an operator has outputs)."""
        if chain.is_process:
            state = states[0]
            assert state is not None
            self.operator = local_operator(
                chain.head,
                chain.policies[0],
                counters[0],
                failures,
                clock,
                self.rng,
                state,
                lambda: self.wake(),
            )
            if self.operator is None:
                self.processor = chain.head.fn.create(state)
        self.step_cache = step_cache
        """Where ``cache=True`` stages look their outputs up (None: they are not cached)."""
        self.processors: dict[int, Processor] = {}
        """Processors that do not run alone (those without timers), by stage index: fused
        into the loop, or called per event on the slow path."""
        if not chain.is_process:
            for index, stage in enumerate(self.stages):
                if stage.kind is StageKind.PROCESS:
                    state = states[index]
                    assert state is not None
                    self.processors[index] = stage.fn.create(state)
        # Cached stages take the per-event path, where the cache is consulted; so does
        # every chain when ``compiled`` is False (a workflow's single event is not worth
        # generating a loop for).
        fast = compiled and not (chain.is_async or chain.is_process or chain.head.cache)
        self.compiled = compile_chain(chain, states, self.processors) if fast else None
        self._compiled_pull: CompiledChain | None = None  # made on first use
        explicit = self.compiled.explicit if self.compiled is not None else ()
        self.explicit_slot = {port: slot for slot, port in enumerate(explicit)}
        self._lists: dict[str, list[Any]] = {}
        self._tally = _Tally(len(self.stages), len(explicit) + 1)
        self._edge_plan = self._edges()
        self._dropping = [
            (index, state)
            for index, (stage, state) in enumerate(zip(self.stages, states, strict=True))
            if stage.kind is StageKind.PROCESS and state is not None
        ]
        """Processor stages and their state, whose ``dropped`` counts are read per batch."""

    # -- per batch ------------------------------------------------------------------------

    async def process(self, batch: list[Any]) -> Outputs:
        """Run ``batch`` through the chain; return the events leaving each exit port."""
        return await self._run(batch)

    async def process_pulled(self, events: Iterator[Any]) -> Outputs:
        """Run events taken one by one from a source's lazy iterator through the chain (a
        synchronous one); ``taken`` then says how many it took."""
        if self._compiled_pull is None:
            self._compiled_pull = compile_chain(
                self.chain, self.states, self.processors, count_head=True
            )
        return await self._run(events, self._compiled_pull)

    @property
    def taken(self) -> int:
        """How many events the last batch put into the chain's head."""
        return self._tally.consumed

    async def finish(self, *, ended: bool = True) -> Outputs:
        """After the last batch: if the stream ``ended`` (rather than being stopped), emit
        the final accumulators of folds through the rest of the chain. Returns what leaves
        the chain."""
        if self.finished or not ended:
            return await self._run([])
        self.finished = True
        return await self._run(None)

    def snapshot(self, checkpoint_id: int) -> Part:
        """The chain's part of checkpoint ``checkpoint_id``, taken between two batches: each
        stage's state pickled, its counters, transactional sinks' prepared writes. A stage
        whose state cannot be pickled, or whose ``prepare`` fails, stops the run, named."""
        part = Part()
        for index, stage in enumerate(self.stages):
            state = self.states[index]
            try:
                if state is not None:
                    part.states[stage.name] = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
                elif is_transactional_sink(stage):
                    part.prepared[stage.name] = stage.fn.prepare()
            except Exception as error:
                self.counters[index].errors += 1
                doing = "its state could not be pickled"
                if state is None:
                    doing = "it could not prepare its writes"
                raise self.failures.stop(
                    stage.name,
                    error,
                    f"stage {stage.name!r}",
                    note=f"{doing} at checkpoint {checkpoint_id}",
                ) from error
            part.counters[stage.name] = self.counters[index].values()
        if self.finished:
            part.finished.append(self.chain.name)
        return part

    async def _run(
        self, batch: Iterable[Any] | None, compiled: CompiledChain | None = None
    ) -> Outputs:
        lists: dict[str, list[Any]] = {key: [] for key in self.list_keys}
        self._lists = lists
        self._tally = tally = _Tally(len(self.stages), len(self.explicit_slot) + 1)
        try:
            if batch is None:
                for index, stage in enumerate(self.stages):
                    state = self.states[index]
                    if stage.kind is StageKind.FOLD and not stage.running and state:
                        await self._forward(index, list(state.items()))
                for index, fused in self.processors.items():  # in flow order
                    await self._timer(fused.finish, "finish", index)
                if self.processor is not None:
                    await self._timer(self.processor.finish, "finish")
                elif self.operator is not None:
                    await self._operate(self.operator.finish())
            elif self.operator is not None:
                assert isinstance(batch, list)
                tally.consumed = len(batch)
                await self._operate(self.operator.process(batch))
            elif self.processor is not None:
                assert isinstance(batch, list)
                await self._process_each(self.processor, batch)
            elif self.compiled is None:
                assert isinstance(batch, list)
                await self._process_async(batch)
            else:
                await self._process_fast(batch, compiled or self.compiled)
        finally:
            self._count(tally, lists)
        for index in self.batch_sinks:
            await self._write_batch(index, lists.pop(f"sink:{self.stages[index].name}"))
        return lists

    @property
    def tick_interval(self) -> float | None:
        """Seconds of the run's clock between calls of ``tick``, or None for no ticks."""
        if self.operator is not None:
            return self.operator.tick_interval
        return self.chain.head.fn.tick if self.processor is not None else None

    @property
    def attachable(self) -> bool:
        """True if a source may run this chain in its own task, with no channel between
        them: a fused synchronous loop (processors and operators need their channel for
        ticks and wake-ups)."""
        return not (self.chain.is_async or self.chain.is_process)

    async def tick(self) -> Outputs:
        """Processing time moved on (or the operator woke the engine): let the chain's
        processor or operator emit what is due."""
        if self.operator is not None:
            return await self._run_timer(self.operator.tick)
        if self.processor is None:
            return {}
        return await self._run_timer(self.processor.tick)

    async def draining(self) -> bool:
        """After the last batch: wait until the chain's operator has outputs ready (True:
        call ``tick`` and ask again), or has none owed (False: go on to ``finish``)."""
        return self.operator is not None and await self.operator.drain()

    async def _operate(self, work: Awaitable[list[Any]]) -> None:
        """Await an operator's call; what it returns leaves the chain (it runs alone)."""
        self._lists[self.list_keys[0]].extend(await work)

    async def _run_timer(self, call: Callable[..., Any]) -> Outputs:
        lists: dict[str, list[Any]] = {key: [] for key in self.list_keys}
        self._lists = lists
        self._tally = tally = _Tally(len(self.stages), len(self.explicit_slot) + 1)
        try:
            if self.operator is not None:
                await self._operate(call())
            else:
                await self._timer(call, "tick")
        finally:
            self._count(tally, lists)
        return lists

    async def _timer(self, call: Callable[..., Any], what: str, index: int = 0) -> None:
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
            await self._forward(index, list(produced))

    async def _process_each(self, processor: Processor, batch: list[Any]) -> None:
        """A processor's chain: ``process`` per event in a tight loop; an event whose call
        raises goes through the policy slow path, and the loop goes on after it."""
        process = processor.process
        out = self._lists[self.list_keys[0]] if self.list_keys else []
        extend = out.extend
        now = self.clock.now()
        self._tally.consumed = size = len(batch)
        start = index = 0
        while start < size:
            try:
                for index in range(start, size):  # after a failure, index is where it was
                    produced = process(batch[index], now)
                    if produced:
                        extend(produced)
                return
            except Exception as error:
                self._tally.bails[0] += 1
                results = await self._attempt(0, batch[index], error)
                if results is not None:
                    await self._forward(0, results)
                start = index + 1

    async def close(self) -> None:
        """Close the sink objects of the chain that have ``close`` (also after errors). A
        failing close fails the run (StageFailedError), after every sink had its turn."""
        if self.operator is not None:  # its pool and tasks: also after errors and Ctrl-C
            await self.operator.aclose()
        failed: StageFailedError | None = None
        for index in self.batch_sinks:
            stage = self.stages[index]
            close = getattr(stage.fn, "close", None) if stage.sink_mode is SinkMode.OBJECT else None
            if close is None:
                continue
            try:
                result = close()
                if inspect.isawaitable(result):
                    await result
            except Exception as error:
                self.counters[index].errors += 1
                what = f"sink {stage.name!r} failed to close"
                failed = failed or self.failures.stop(stage.name, error, what)
        if failed is not None:
            raise failed

    def _edges(self) -> list[list[_Edge]]:
        """Per stage, how to count what leaves each of its output ports (worked out once:
        counting runs after every batch)."""
        plan: list[list[_Edge]] = []
        remainders = remainder_ports(self.chain)
        for ports in self.ports:
            edges = []
            for port in ports:
                target = self.chain.links.get(port)
                if target is None:
                    edges.append(_Edge(port, -1, str(port), _DERIVED))
                elif is_batch_sink(self.stages[target]):
                    edges.append(_Edge(port, target, f"sink:{self.stages[target].name}", _DERIVED))
                else:
                    slot = self.explicit_slot.get(port)
                    derived = _REMAINDER if port in remainders else _DERIVED
                    edges.append(_Edge(port, target, None, derived if slot is None else slot))
            plan.append(edges)
        return plan

    def _count(self, tally: _Tally, lists: dict[str, list[Any]]) -> None:
        """Turn one batch's tally into stage counters: per internal edge, the count is kept
        by the loop, measured by a list's length, or derived from a one-to-one stage."""
        counters = self.counters
        for index, state in self._dropping:
            counters[index].dropped = dropped(state)
        fast_in = [0] * len(self.stages)
        fast_in[0] = tally.consumed
        counters[0].events_in += tally.consumed
        slow = tally.slow
        for index, edges in enumerate(self._edge_plan):
            sent = 0
            fast_out = 0
            for edge in edges:
                if edge.list_key is not None:
                    count = len(lists[edge.list_key])
                else:
                    if edge.slot >= 0:
                        fast = tally.explicit[edge.slot]
                    elif edge.slot == _DERIVED:  # one-to-one: what entered, less failures
                        fast = fast_in[index] - tally.bails[index]
                    else:  # the last output of a branch or route: what the others did not take
                        fast = fast_in[index] - tally.bails[index] - fast_out
                    fast_out += fast
                    fast_in[edge.target] += fast
                    count = fast + slow.get(edge.port, 0) if slow else fast
                if edge.target >= 0:
                    counters[edge.target].events_in += count
                sent += count
            counters[index].events_out += sent

    async def _process_fast(self, batch: Iterable[Any], compiled: CompiledChain) -> None:
        run = compiled.run
        args: list[Any] = [self._lists[key].append for key in compiled.lists]
        args.append(self.clock.now() if self.processors else 0.0)  # NOW, for processors
        tally = self._tally
        iterator = iter(batch)
        try:
            while True:
                try:
                    counts = run(iterator, *args)
                except Bail as bail:
                    for slot, count in enumerate(bail.counts):
                        tally.explicit[slot] += count
                    tally.bails[bail.stage] += 1
                    await self._recover(bail)
                    continue
                for slot, count in enumerate(counts):
                    tally.explicit[slot] += count
                break
        finally:  # count also when a STOP ends the batch half way
            if compiled is self._compiled_pull:  # the loop counted what it took
                tally.consumed = tally.explicit[len(compiled.explicit) - 1]
            else:
                assert isinstance(batch, list)
                tally.consumed = len(batch) - operator.length_hint(iterator)

    async def _process_async(self, batch: list[Any]) -> None:
        """A chain of one async stage. A batch sink gets the batch in one call; otherwise up
        to ``concurrency`` events are in flight, their outputs kept in input order, and a
        stateful stage runs one event per key at a time so each key's state sees its
        events in order."""
        if self.batch_sinks:
            self._tally.consumed = len(batch)
            self._lists[self.list_keys[-1]].extend(batch)
            return
        keyed_state = self.chain.head.kind in (StageKind.STATEFUL, StageKind.FOLD)
        window: collections.deque[asyncio.Task[list[Any] | None]] = collections.deque()
        last_of_key: dict[Any, asyncio.Task[list[Any] | None]] = {}
        try:
            for event in batch:
                self._tally.consumed += 1
                key = _hashable_key(event) if keyed_state else None
                before = last_of_key.get(key) if key is not None else None
                task = asyncio.ensure_future(self._one(event, before))
                if key is not None:
                    last_of_key[key] = task
                window.append(task)
                if len(window) >= self.concurrency:
                    await self._drain_one(window)
            while window:
                await self._drain_one(window)
        finally:
            for task in window:
                task.cancel()

    async def _one(self, event: Any, before: asyncio.Task[Any] | None) -> list[Any] | None:
        if before is not None and not before.done():
            await asyncio.wait([before])  # the key's previous event first; its error is its own
        return await self._attempt(0, event, None)

    async def _drain_one(self, window: collections.deque[asyncio.Task[list[Any] | None]]) -> None:
        results = await window.popleft()
        if results is not None:
            await self._forward(0, results)

    # -- the slow path --------------------------------------------------------------------

    async def _recover(self, bail: Bail) -> None:
        """Finish the event the fast loop bailed on, then the rest of the items of the
        flat_maps it was inside, innermost first."""
        results = await self._attempt(bail.stage, bail.value, bail.error)
        if results is not None:
            await self._forward(bail.stage, results)
        for index, iterator in reversed(bail.pending):
            port = self.ports[index][0]
            for event in iterator:
                await self._send(port, event)

    async def _forward(self, index: int, results: list[Any]) -> None:
        """Send what stage ``index`` made of one event on through its output ports."""
        ports = self.ports[index]
        if len(ports) > 1:  # branch, route: results are (output name, event) pairs
            name = self.stages[index].name
            for output, event in results:
                await self._send(Port(name, output), event)
        elif ports:
            for event in results:
                await self._send(ports[0], event)

    async def _send(self, port: Port, event: Any) -> None:
        target = self.chain.links.get(port)
        if target is None:
            self._lists[str(port)].append(event)
        elif is_batch_sink(self.stages[target]):
            self._lists[f"sink:{self.stages[target].name}"].append(event)
        else:
            self._tally.slow[port] = self._tally.slow.get(port, 0) + 1
            results = await self._attempt(target, event, None)
            if results is not None:
                await self._forward(target, results)

    async def _attempt(self, index: int, event: Any, error: Exception | None) -> list[Any] | None:
        """Apply stage ``index`` to ``event`` with its policy. ``error`` is the failure of a
        first attempt already made (by the fast loop). Returns the outputs, or None when the
        event was dropped by policy."""
        policy = self.policies[index]
        counters = self.counters[index]
        attempt = 1
        if error is None:
            try:
                return await self._applied(index, event)
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
                return await self._applied(index, event)
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
        if stage.kind is StageKind.BRANCH:
            return [("false", event)]
        return [event]

    async def _call(self, index: int, fn: Callable[..., Any], *args: Any) -> Any:
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

    async def _applied(self, index: int, x: Any) -> list[Any]:
        """``_apply``, through the step cache for a ``cache=True`` stage."""
        if self.step_cache is None or not self.stages[index].cache:
            return await self._apply(index, x)
        return await self.step_cache.through(self.stages[index], x, lambda: self._apply(index, x))

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
        if kind is StageKind.PROCESS:
            processor = self.processors.get(index, self.processor)
            assert processor is not None
            return list(processor.process(x, self.clock.now()) or ())
        if kind is StageKind.SINK:  # per event; batch sinks are written per batch
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

    async def _write_batch(self, index: int, events: list[Any]) -> None:
        """Call batch sink ``index`` once with ``events``, under its policy."""
        if not events:
            return
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


def _no_wake() -> None:
    pass


def _hashable_key(pair: Any) -> Any:
    """The key of a keyed event, or None when it cannot key a dict: the stage itself then
    fails on that event, under its policy."""
    try:
        key = pair[0]
        hash(key)
    except Exception:
        return None
    return (key,)  # wrapped, so that a key of None still orders its events


async def _collect(generator: Any) -> list[Any]:
    return [item async for item in generator]


def _call_target(stage: Any) -> Any:
    if stage.kind is StageKind.SINK and stage.sink_mode is SinkMode.OBJECT:
        return getattr(stage.fn, "write_batch", None)
    return stage.fn
