"""Runs one chain of the plan over batches, whatever its strategy (see ``strategies``):
counting what went through, emitting folds' totals and processors' last outputs at the
end of the stream, taking the chain's part of a checkpoint, closing its sinks. Shared by
every runner; a runner only moves the batches between chains."""

from __future__ import annotations

import inspect
import pickle
import random
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from riverbed._errors import StageFailedError
from riverbed._model.plan import Chain, is_batch_sink
from riverbed._model.process import Processor
from riverbed._model.sinks import is_transactional_sink
from riverbed._model.stages import FoldStage, SinkMode, SinkStage, StageKind
from riverbed._runtime.cache import StepCache
from riverbed._runtime.chains.counting import Batch, Counting, Outputs, sink_key
from riverbed._runtime.chains.parallel import local_operator
from riverbed._runtime.chains.slowpath import StageCalls
from riverbed._runtime.chains.strategies import (
    ConcurrentCalls,
    FusedLoop,
    OperatorCalls,
    ProcessorLoop,
    Strategy,
)
from riverbed._runtime.clock import Clock
from riverbed._runtime.failures import FailureLog
from riverbed._runtime.keyed import ChangedKeys
from riverbed._runtime.parts import Part
from riverbed._runtime.result import StageCounters

__all__ = ["ChainExecutor", "Outputs"]


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
        changes: Sequence[ChangedKeys | None] = (),
    ) -> None:
        self.chain = chain
        self.stages = chain.stages
        self.counters = counters
        self.states = states
        self.changes = list(changes) or [None] * len(chain.stages)
        """Per stage kept per key in checkpoints: its changed keys (None: the stage is
        kept whole, or the run takes no checkpoints)."""
        self.failures = failures
        self.finished = finished
        """True once the chain emitted its end-of-stream output (also in an earlier
        attempt of a resumed run): it never does twice."""
        self.wake: Callable[[], None] = _no_wake
        """Set by the runner: asks it to call ``tick`` soon (an operator has outputs)."""
        self.processors: dict[int, Processor] = {}
        """The processors of the chain's ``PROCESS`` stages, by stage index."""
        self.calls = StageCalls(
            chain,
            counters,
            states,
            failures,
            clock,
            random.Random(seed),
            self.processors,
            step_cache,
            [None if changed is None else changed.mark for changed in self.changes],
        )
        self.strategy = self._strategy(compiled, chain.head.concurrency or concurrency)
        explicit = self.strategy.explicit if isinstance(self.strategy, FusedLoop) else ()
        self.counting = Counting(chain, explicit, counters, states)
        self._taken = 0

    def _strategy(self, compiled: bool, concurrency: int) -> Strategy:
        """The one place that chooses how the chain processes batches."""
        chain, states = self.chain, self.states
        if chain.is_process:
            state = states[0]
            assert state is not None
            operator = local_operator(
                chain.head,
                chain.policies[0],
                self.counters[0],
                self.failures,
                self.calls.clock,
                self.calls.rng,
                state,
                lambda: self.wake(),
            )
            if operator is not None:
                return OperatorCalls(operator)
            self.processors[0] = chain.head.fn.create(state)
            return ProcessorLoop(chain, self.processors[0], self.calls)
        for index, stage in enumerate(self.stages):
            if stage.kind is StageKind.PROCESS:  # fused into the loop, or per event
                state = states[index]
                assert state is not None
                self.processors[index] = stage.fn.create(state)
        # Cached stages take the per-event path, where the cache is consulted; so does
        # every chain when ``compiled`` is False (a workflow's single event is not worth
        # generating a loop for).
        if compiled and not (chain.is_async or chain.head.cache):
            return FusedLoop(chain, states, self.processors, self.calls)
        batch_sink = any(is_batch_sink(stage) for stage in self.stages)
        return ConcurrentCalls(chain, self.calls, concurrency, batch_sink)

    # -- what runners call ------------------------------------------------------------------

    @property
    def tick_interval(self) -> float | None:
        """Seconds of the run's clock between calls of ``tick``, or None for no ticks."""
        return self.strategy.tick_interval

    @property
    def attachable(self) -> bool:
        """True if a source may run this chain in its own task, with no channel between
        them (see ``Strategy.attachable``)."""
        return self.strategy.attachable

    @property
    def taken(self) -> int:
        """How many events the last batch put into the chain's head."""
        return self._taken

    async def process(self, events: Iterable[Any]) -> Outputs:
        """Run ``events`` (a list, or for a fused chain a source's lazy iterator: ``taken``
        then says how many it took) through the chain; return what leaves each exit."""
        return await self._run(lambda batch: self.strategy.process(batch, events))

    async def tick(self) -> Outputs:
        """Processing time moved on (or the operator woke the runner): let the chain's
        processor or operator emit what is due."""
        return await self._run(self.strategy.tick)

    async def draining(self) -> bool:
        """After the last batch: wait until the chain's operator has outputs ready (True:
        call ``tick`` and ask again), or has none owed (False: go on to ``finish``)."""
        return await self.strategy.drain()

    async def finish(self, *, ended: bool = True) -> Outputs:
        """After the last batch: if the stream ``ended`` (rather than being stopped), emit
        the final accumulators of folds and what processors and operators still owe,
        through the rest of the chain. Returns what leaves the chain."""
        if self.finished or not ended:
            return await self._run(_nothing)
        self.finished = True
        return await self._run(self._finish)

    async def _finish(self, batch: Batch) -> None:
        for index, stage in enumerate(self.stages):
            state = self.states[index]
            if isinstance(stage, FoldStage) and not stage.running and state:
                await self.calls.forward(batch, index, list(state.items()))
        if not self.chain.is_process:
            for index, fused in self.processors.items():  # in flow order
                await self.calls.timer(batch, fused.finish, "finish", index)
        await self.strategy.finish(batch)

    async def _run(self, work: Callable[[Batch], Awaitable[None]]) -> Outputs:
        batch = self.counting.batch()
        try:
            await work(batch)
        finally:
            self._taken = batch.consumed
            self.counting.count(batch)
        lists = batch.lists
        for index in self.counting.batch_sinks:
            await self.calls.write_batch(index, lists.pop(sink_key(self.stages[index].name)))
        return lists

    def snapshot(self, checkpoint_id: int) -> Part:
        """The chain's part of checkpoint ``checkpoint_id``, taken between two batches: the
        keys changed since the last one of each stage kept per key, the state of each
        stage kept whole, pickled; the counters; transactional sinks' prepared writes. A
        stage whose state cannot be pickled, or whose ``prepare`` fails, stops the run,
        named."""
        part = Part()
        for index, stage in enumerate(self.stages):
            state = self.states[index]
            changed = self.changes[index]
            try:
                if changed is not None:
                    rows, complete = changed.take()
                    part.keyed[stage.name] = rows
                    if complete:
                        part.complete.add(stage.name)
                elif state is not None:
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

    async def close(self) -> None:
        """Close the sink objects of the chain that have ``close`` (also after errors). A
        failing close fails the run (StageFailedError), after every sink had its turn."""
        await self.strategy.aclose()  # an operator's pool and tasks: also after errors
        failed: StageFailedError | None = None
        for index in self.counting.batch_sinks:
            stage = self.stages[index]
            is_object = isinstance(stage, SinkStage) and stage.sink_mode is SinkMode.OBJECT
            close = getattr(stage.fn, "close", None) if is_object else None
            if close is None:
                continue
            try:
                result = close()
                if inspect.isawaitable(result):
                    await result
            except Exception as error:  # noqa: BLE001 - a user's close(): fails the run, named
                self.counters[index].errors += 1
                what = f"sink {stage.name!r} failed to close"
                failed = failed or self.failures.stop(stage.name, error, what)
        if failed is not None:
            raise failed


async def _nothing(batch: Batch) -> None:
    return None


def _no_wake() -> None:
    pass
