"""How a chain processes a batch: one small class per strategy, behind one protocol.

- ``FusedLoop``: synchronous stages fused into one generated function (``codegen``); a
  call that raises hands its event to the slow path and the loop goes on.
- ``ConcurrentCalls``: a chain of one async stage, up to ``concurrency`` calls in flight,
  outputs in input order, one event per key at a time for a stateful stage.
- ``ProcessorLoop``: a processor with timers, alone in its chain (windows, sessions...).
- ``OperatorCalls``: an operator the runner executes itself (``parallel_map``,
  ``batch_map``), which may produce outputs later and wake the runner for them.

``ChainExecutor`` picks one per chain and does the rest (counting, end of stream,
snapshots, closing) the same way for all.
"""

from __future__ import annotations

import asyncio
import collections
import operator
from collections.abc import Iterable
from typing import Any, Protocol

from riverbed._model.plan import Chain
from riverbed._model.process import Processor
from riverbed._model.stages import PER_KEY_STATE
from riverbed._runtime.chains.codegen import Bail, CompiledChain, compile_chain
from riverbed._runtime.chains.counting import Batch
from riverbed._runtime.chains.parallel import LocalOperator
from riverbed._runtime.chains.slowpath import StageCalls

__all__ = ["ConcurrentCalls", "FusedLoop", "OperatorCalls", "ProcessorLoop", "Strategy"]


class Strategy(Protocol):
    """How one chain processes its batches (see the module docstring)."""

    tick_interval: float | None
    """Seconds of the run's clock between ``tick`` calls, or None for no ticks."""
    attachable: bool
    """True if a source may run the chain in its own task, with no channel between them:
    a fused synchronous loop (processors and operators need their channel for ticks)."""

    async def process(self, batch: Batch, events: Iterable[Any]) -> None:
        """Take ``events`` (a list, or a source's lazy iterator for a fused loop), filling
        ``batch``."""
        ...

    async def tick(self, batch: Batch) -> None:
        """Processing time moved on (or an operator woke the runner): emit what is due."""
        ...

    async def finish(self, batch: Batch) -> None:
        """Every input ended: emit what the chain's own processor or operator still owes
        (folds and fused processors are the executor's)."""
        ...

    async def drain(self) -> bool:
        """After the last batch: True once outputs are ready (call ``tick`` and ask
        again), False when none is owed."""
        ...

    async def aclose(self) -> None:
        """Release what the strategy holds (tasks, pools), also after errors."""
        ...


class _Plain:
    """The parts of the protocol that most strategies do not need."""

    tick_interval: float | None = None
    attachable = False

    async def tick(self, batch: Batch) -> None:
        return None

    async def finish(self, batch: Batch) -> None:
        return None

    async def drain(self) -> bool:
        return False

    async def aclose(self) -> None:
        return None


class FusedLoop(_Plain):
    """A synchronous chain run by its generated loop (see ``codegen``)."""

    attachable = True

    def __init__(
        self,
        chain: Chain,
        states: list[dict[Any, Any] | None],
        processors: dict[int, Processor],
        calls: StageCalls,
    ) -> None:
        self.chain = chain
        self.states = states
        self.processors = processors
        self.calls = calls
        self.compiled = compile_chain(chain, states, processors, marks=calls.marks)
        self._pulled: CompiledChain | None = None  # made on first use

    @property
    def explicit(self) -> tuple[Any, ...]:
        """The ports whose events the loop counts itself."""
        return self.compiled.explicit

    async def process(self, batch: Batch, events: Iterable[Any]) -> None:
        if isinstance(events, list):
            await self._loop(batch, events, self.compiled)
            return
        if self._pulled is None:  # a source's lazy iterator: the loop counts what it takes
            self._pulled = compile_chain(
                self.chain, self.states, self.processors, count_head=True, marks=self.calls.marks
            )
        await self._loop(batch, events, self._pulled)

    async def _loop(self, batch: Batch, events: Iterable[Any], compiled: CompiledChain) -> None:
        run = compiled.run
        args: list[Any] = [batch.lists[key].append for key in compiled.lists]
        args.append(self.calls.clock.now() if self.processors else 0.0)  # NOW, for processors
        iterator = iter(events)
        try:
            while True:
                try:
                    counts = run(iterator, *args)
                except Bail as bail:
                    for slot, count in enumerate(bail.counts):
                        batch.explicit[slot] += count
                    batch.bails[bail.stage] += 1
                    await self.calls.recover(batch, bail)
                    continue
                for slot, count in enumerate(counts):
                    batch.explicit[slot] += count
                break
        finally:  # count also when a STOP ends the batch half way
            if compiled is self._pulled:  # the loop counted what it took
                batch.consumed = batch.explicit[len(compiled.explicit) - 1]
            else:
                assert isinstance(events, list)
                batch.consumed = len(events) - operator.length_hint(iterator)


class ConcurrentCalls(_Plain):
    """A chain of one async stage (and the slow path after it): a batch sink gets the
    batch in one call; otherwise up to ``concurrency`` events are in flight, their outputs
    kept in input order, and a stateful stage runs one event per key at a time so each
    key's state sees its events in order. Also the per-event path of cached stages and
    of workflows' steps, with a concurrency of its own."""

    def __init__(self, chain: Chain, calls: StageCalls, concurrency: int, batch_sink: bool):
        self.calls = calls
        self.concurrency = concurrency
        self.batch_sink = batch_sink
        self.keyed_state = chain.head.kind in PER_KEY_STATE

    async def process(self, batch: Batch, events: Iterable[Any]) -> None:
        assert isinstance(events, list)
        if self.batch_sink:
            batch.consumed = len(events)
            batch.lists[next(reversed(batch.lists))].extend(events)
            return
        window: collections.deque[asyncio.Task[list[Any] | None]] = collections.deque()
        last_of_key: dict[Any, asyncio.Task[list[Any] | None]] = {}
        try:
            for event in events:
                batch.consumed += 1
                key = _hashable_key(event) if self.keyed_state else None
                before = last_of_key.get(key) if key is not None else None
                task = asyncio.ensure_future(self._one(event, before))
                if key is not None:
                    last_of_key[key] = task
                window.append(task)
                if len(window) >= self.concurrency:
                    await self._drain_one(batch, window)
            while window:
                await self._drain_one(batch, window)
        finally:
            for task in window:
                task.cancel()

    async def _one(self, event: Any, before: asyncio.Task[Any] | None) -> list[Any] | None:
        if before is not None and not before.done():
            await asyncio.wait([before])  # the key's previous event first; its error is its own
        return await self.calls.attempt(0, event, None)

    async def _drain_one(
        self, batch: Batch, window: collections.deque[asyncio.Task[list[Any] | None]]
    ) -> None:
        results = await window.popleft()
        if results is not None:
            await self.calls.forward(batch, 0, results)


class ProcessorLoop(_Plain):
    """A processor alone in its chain: ``process`` per event in a tight loop (an event
    whose call raises goes through the policy slow path, and the loop goes on after it),
    ``tick`` every ``spec.tick`` seconds, ``finish`` at the end."""

    def __init__(self, chain: Chain, processor: Processor, calls: StageCalls) -> None:
        self.processor = processor
        self.calls = calls
        self.tick_interval = chain.head.fn.tick

    async def process(self, batch: Batch, events: Iterable[Any]) -> None:
        assert isinstance(events, list)
        process = self.processor.process
        out = next(iter(batch.lists.values()), [])
        extend = out.extend
        now = self.calls.clock.now()
        batch.consumed = size = len(events)
        start = index = 0
        while start < size:
            try:
                for index in range(start, size):  # after a failure, index is where it was
                    produced = process(events[index], now)
                    if produced:
                        extend(produced)
                return
            except Exception as error:  # noqa: BLE001 - the user's processor: to its policy
                batch.bails[0] += 1
                results = await self.calls.attempt(0, events[index], error)
                if results is not None:
                    await self.calls.forward(batch, 0, results)
                start = index + 1

    async def tick(self, batch: Batch) -> None:
        await self.calls.timer(batch, self.processor.tick, "tick", 0)

    async def finish(self, batch: Batch) -> None:
        await self.calls.timer(batch, self.processor.finish, "finish", 0)


class OperatorCalls(_Plain):
    """An operator the runner executes itself (``parallel_map``, ``batch_map``): what it
    returns leaves the chain (it runs alone)."""

    def __init__(self, operator: LocalOperator) -> None:
        self.operator = operator
        self.tick_interval = operator.tick_interval

    async def process(self, batch: Batch, events: Iterable[Any]) -> None:
        assert isinstance(events, list)
        batch.consumed = len(events)
        self._out(batch).extend(await self.operator.process(events))

    async def tick(self, batch: Batch) -> None:
        self._out(batch).extend(await self.operator.tick())

    async def finish(self, batch: Batch) -> None:
        self._out(batch).extend(await self.operator.finish())

    async def drain(self) -> bool:
        return await self.operator.drain()

    async def aclose(self) -> None:
        await self.operator.aclose()

    @staticmethod
    def _out(batch: Batch) -> list[Any]:
        return next(iter(batch.lists.values()))


def _hashable_key(pair: Any) -> Any:
    """The key of a keyed event, or None when it cannot key a dict: the stage itself then
    fails on that event, under its policy."""
    try:
        key = pair[0]
        hash(key)
    except Exception:  # noqa: BLE001 - a user's __getitem__ or __hash__ raised
        return None
    return (key,)  # wrapped, so that a key of None still orders its events
