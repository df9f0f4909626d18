"""``batch_map`` on the local engine: events wait in a buffer until ``max_size`` of them
are there, or the first has waited ``max_wait`` seconds of the run's clock; then the user's
function gets them as one list and returns one output per event.

The buffer is the stage's state (``state["buffer"]``, with ``state["since"]``, the clock's
time when its first event came), so a checkpoint between batches keeps what waits. Calls
run one at a time, on the chain's task: outputs leave in input order, and a slow call holds
back the stage's input (backpressure) instead of piling up buffers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection
from typing import Any

from riverbed._model import callables
from riverbed._model.parallel import BatchMap
from riverbed._runtime.chains.parallel import Calls, Failed

__all__ = ["BatchMapRun", "BatchResultError"]


class BatchResultError(TypeError):
    """A batch function returned something other than one output per input."""


class BatchMapRun:
    """``batch_map`` for one run (see ``Stream.batch_map`` and the module docstring)."""

    tick_interval: float | None = None  # the operator sets its own timer: see ``_arm``

    def __init__(
        self, spec: BatchMap, calls: Calls, state: dict[str, Any], wake: Callable[[], None]
    ) -> None:
        self.spec = spec
        self.calls = calls
        self.state = state
        self.wake = wake
        self.buffer: list[Any] = state.setdefault("buffer", [])
        state.setdefault("since", None)
        self.is_async = callables.is_async(spec.fn)
        self.timer: asyncio.Task[None] | None = None
        if self.buffer:  # resumed from a checkpoint: its wait goes on
            self._arm()

    async def process(self, batch: list[Any]) -> list[Any]:
        """Buffer ``batch``; call the function for every full batch."""
        out: list[Any] = []
        if not self.buffer:
            self.state["since"] = self.calls.clock.now()
        self.buffer.extend(batch)
        while len(self.buffer) >= self.spec.max_size:
            out.extend(await self._call(self.spec.max_size))
            self.state["since"] = self.calls.clock.now() if self.buffer else None
        self._arm()
        return out

    async def tick(self) -> list[Any]:
        """The timer went off: call with what waits if its first event waited long enough."""
        since = self.state["since"]
        wait = self.spec.max_wait
        if not self.buffer or since is None or wait is None:
            return []
        if self.calls.clock.now() - since < wait:
            self._arm()  # a new wait began after the timer was set
            return []
        out = await self._call(len(self.buffer))
        self.state["since"] = None
        return out

    async def drain(self) -> bool:
        """Nothing runs in the background: ``finish`` calls what waits."""
        return False

    async def finish(self) -> list[Any]:
        """The input ended: call with what still waits, ``max_size`` at a time."""
        self._disarm()
        out: list[Any] = []
        while self.buffer:
            out.extend(await self._call(min(len(self.buffer), self.spec.max_size)))
        self.state["since"] = None
        return out

    async def aclose(self) -> None:
        """Stop the timer."""
        self._disarm()

    # -- inside ---------------------------------------------------------------------------

    async def _call(self, size: int) -> list[Any]:
        """Call the function with the first ``size`` events of the buffer, under the
        policy; the events leave the buffer only once the call is done with them."""
        events = self.buffer[:size]
        outcome = await self.calls.attempt(lambda: self._checked(events))
        del self.buffer[:size]
        if isinstance(outcome, Failed):
            return self.calls.give_up(events, outcome, subject=events)
        result: list[Any] = outcome
        return result

    async def _checked(self, events: list[Any]) -> list[Any]:
        fn = self.spec.fn
        given = list(events)  # the function may change its list; the policy needs ours
        if self.is_async:
            result = await fn(given)
        elif self.calls.policy.timeout is not None:
            result = await asyncio.to_thread(fn, given)  # a thread, so the timeout can fire
        else:
            result = fn(given)
        if isinstance(result, str | bytes | dict) or not isinstance(result, Collection):
            raise BatchResultError(
                f"batch_map stage {self.calls.stage.name!r}: "
                f"{callables.describe(fn)} returned {type(result).__name__} "
                f"{result!r:.80}; it must return a list with one output per input"
            )
        if len(result) != len(events):
            raise BatchResultError(
                f"batch_map stage {self.calls.stage.name!r}: "
                f"{callables.describe(fn)} returned {len(result)} outputs for "
                f"{len(events)} inputs; it must return one output per input, in order"
            )
        return list(result)

    def _arm(self) -> None:
        """Set the timer for when the buffer's first event will have waited ``max_wait``."""
        self._disarm()
        since, wait = self.state["since"], self.spec.max_wait
        if not self.buffer or since is None or wait is None:
            return
        delay = max(0.0, since + wait - self.calls.clock.now())
        self.timer = asyncio.ensure_future(self._ring(delay))

    async def _ring(self, delay: float) -> None:
        await self.calls.clock.sleep(delay)
        self.timer = None
        self.wake()

    def _disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
