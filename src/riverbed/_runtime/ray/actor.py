"""What runs inside a Ray actor: one chain of fused stages over the batches the driver
sends it, with the chain executor every runner shares. Each call answers with what left
the chain, the counters of its stages and the failures recorded since the last answer.

The actor is synchronous (Ray runs its calls one at a time, in the order the driver sent
them: per-key order holds) and keeps an event loop of its own for the chain's async
stages and operators.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from riverbed._errors import StageFailedError
from riverbed._model.plan import Chain
from riverbed._runtime.chains.executor import ChainExecutor
from riverbed._runtime.clock import SystemClock
from riverbed._runtime.failures import FailureLog
from riverbed._runtime.keyed import ChangedKeys
from riverbed._runtime.parts import Part
from riverbed._runtime.result import DeadLetter, StageCounters, StageError

__all__ = ["OPERATOR_POLL", "ChainWorker", "Reply", "WorkerSetup"]

OPERATOR_POLL = 0.02
"""Seconds between the driver's asks for an operator's finished calls."""


@dataclass
class Reply:
    """One call's answer."""

    outputs: dict[str, list[Any]] = field(default_factory=dict)
    """What left the chain, per exit port (``str(port)``)."""
    counters: list[dict[str, Any]] = field(default_factory=list)
    """Per stage of the chain, its counters in this actor."""
    errors: list[StageError] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    failed: str | None = None
    """The message of the error that stops the run (``failures[-1]`` is its record)."""
    fatal: StageError | None = None
    attempts: int = 1


@dataclass(frozen=True)
class WorkerSetup:
    """What an actor is made with, besides its chain and its share of the state."""

    flow: str
    run_id: str
    max_errors: int
    concurrency: int
    seed: int | None
    finished: bool
    tracks_keys: bool
    """True if checkpoints are taken: the keyed head marks the keys it changes."""
    complete: bool = False
    """The first checkpoint writes the keyed state whole."""


class ChainWorker:
    """The body of one actor (see the module docstring)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()

    def load(self, chain: Chain, states: list[dict[Any, Any] | None], setup: WorkerSetup) -> None:
        """Take on ``chain`` with its share of the state (an actor is kept between runs
        by the driver's pool: starting a worker process costs about a second)."""
        self.chain = chain
        self.counters = [StageCounters(s.name, s.kind.value) for s in chain.stages]
        self.failures = FailureLog(setup.flow, run_id=setup.run_id, max_errors=setup.max_errors)
        self.changed: ChangedKeys | None = None
        head_state = states[0]
        if setup.tracks_keys and head_state is not None:
            self.changed = ChangedKeys(head_state, complete=setup.complete)
        self.states = states
        # Made on the actor's loop: operators start their tasks on the running loop.
        self.executor = self._run(_executor(self, setup))
        self._errors = self._letters = 0

    def _run(self, work: Coroutine[Any, Any, Any]) -> Any:
        return self.loop.run_until_complete(work)

    # -- calls from the driver --------------------------------------------------------------

    def process(self, events: list[Any]) -> Reply:
        """Run a batch through the chain."""
        return self._reply(self.executor.process(events))

    def tick(self) -> Reply:
        """Let the chain's timers and operators emit what is due."""
        return self._reply(self.executor.tick())

    def finish(self, ended: bool) -> Reply:
        """After the last batch: wait for an operator's calls still running, then emit the
        end-of-stream outputs (if the stream ``ended``)."""
        return self._reply(_finish(self.executor, ended))

    def snapshot(self, checkpoint_id: int, whole: bool) -> tuple[Part, int]:
        """The chain's part of a checkpoint (the keyed head's rows written ``whole`` or
        key by key, as the driver decided for all actors), and how many keys it holds."""
        if self.changed is not None:
            self.changed.forced = whole
        part = self.executor.snapshot(checkpoint_id)
        held = len(self.states[0]) if self.states[0] is not None else 0
        return part, held

    def close(self) -> Reply:
        """Close the chain's sinks and operators."""
        return self._reply(_close(self.executor))

    def tick_interval(self) -> float | None:
        """Seconds between the ticks the chain needs: its timers', or a short poll for an
        operator (``parallel_map``, ``batch_map``) whose calls finish on their own time
        (locally it wakes its runner; across processes the driver asks)."""
        interval: float | None = self.executor.tick_interval
        if interval is None and self.chain.is_process:
            return OPERATOR_POLL
        return interval

    def where(self) -> dict[str, Any]:
        """Where this actor runs: its node and process."""
        import ray

        return {"node": ray.get_runtime_context().get_node_id(), "pid": os.getpid()}

    # -- answers ----------------------------------------------------------------------------

    def _reply(self, work: Coroutine[Any, Any, dict[str, list[Any]]]) -> Reply:
        started = time.perf_counter()
        reply = Reply()
        try:
            reply.outputs = self._run(work)
        except StageFailedError as failure:
            reply.failed = str(failure)
            reply.attempts = failure.attempts
            reply.fatal = self.failures.fatal
        finally:
            elapsed = time.perf_counter() - started
            for counters in self.counters:
                counters.timed(elapsed)
        reply.counters = [counters.values() for counters in self.counters]
        reply.errors = self.failures.errors[self._errors :]
        reply.dead_letters = self.failures.dead_letters[self._letters :]
        self._errors = len(self.failures.errors)
        self._letters = len(self.failures.dead_letters)
        return reply


# The actor's coroutines are functions, not methods: an actor class with a coroutine
# method is made an async actor by Ray, which runs its calls concurrently.


async def _executor(worker: ChainWorker, setup: WorkerSetup) -> ChainExecutor:
    changes = [worker.changed] + [None] * (len(worker.chain.stages) - 1)
    return ChainExecutor(
        worker.chain,
        worker.counters,
        worker.states,
        worker.failures,
        SystemClock(),
        concurrency=setup.concurrency,
        seed=setup.seed,
        finished=setup.finished,
        changes=changes,
    )


async def _finish(executor: ChainExecutor, ended: bool) -> dict[str, list[Any]]:
    outputs: dict[str, list[Any]] = {}
    while await executor.draining():
        _extend(outputs, await executor.tick())
    _extend(outputs, await executor.finish(ended=ended))
    return outputs


async def _close(executor: ChainExecutor) -> dict[str, list[Any]]:
    await executor.close()
    return {}


def _extend(into: dict[str, list[Any]], outputs: dict[str, list[Any]]) -> None:
    for port, events in outputs.items():
        into.setdefault(port, []).extend(events)
