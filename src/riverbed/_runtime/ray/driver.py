"""A stream run on Ray, from the driver: the chains placed (``topology``), an attempt
started (``attempt``), and when an actor is lost, the run rolled back to its last
checkpoint and started again with new actors, by itself, until it ends.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from riverbed._errors import StageFailedError
from riverbed._runtime.ray.attempt import Attempt
from riverbed._runtime.ray.cuts import KeyedWrites
from riverbed._runtime.ray.lanes import ActorLostError
from riverbed._runtime.ray.shipping import check_shippable
from riverbed._runtime.ray.topology import ChainPlacement, Placement, place
from riverbed._runtime.stream import StreamRun

if TYPE_CHECKING:
    from riverbed._runtime.ray.runner import RayRunner

__all__ = ["MAX_ROLLBACKS", "RayStream"]

logger = logging.getLogger("riverbed")

MAX_ROLLBACKS = 100
"""Actors lost in one run before it fails rather than roll back once more."""


class RayStream:
    """Executes one ``StreamRun`` on Ray (see the module docstring)."""

    def __init__(self, run: StreamRun, runner: RayRunner, ray: Any) -> None:
        self.run = run
        self.runner = runner
        self.ray = ray
        parallelism = runner.parallelism or max(1, int(ray.cluster_resources().get("CPU", 1)))
        self.placed: dict[str, ChainPlacement] = place(
            run.plan, min(parallelism, runner.key_groups), runner.resources_of
        )
        rewrite = run.restored.rewrite
        self.writes = {
            placed.chain.head.name: KeyedWrites(complete=placed.chain.head.name in rewrite)
            for placed in self.placed.values()
            if placed.placement is Placement.KEYED
        }
        self.attempt: Attempt | None = None
        self.rollbacks = 0
        run.control.on_stop.append(self._stop_reading)
        run.control.on_abort.append(self._abort)

    async def execute(self) -> BaseException | None:
        """Run to the end (or a stop); return the error that stopped the run."""
        run = self.run
        try:
            check_shippable(self.placed.values(), self.ray, run.failures)
        except StageFailedError as failure:
            return failure
        run.commit_restored()
        if run.restored.ended:  # resumed after its last checkpoint: nothing is left to do
            return None
        while True:
            attempt = self._new_attempt()
            try:
                error = await self._run(attempt)
            except ActorLostError as lost:
                if not self._may_roll_back(lost):
                    return self._lost_for_good(lost)
                continue
            return error

    def _new_attempt(self) -> Attempt:
        self.attempt = Attempt(
            self.run,
            self.ray,
            self.placed,
            in_flight=self.runner.in_flight,
            key_groups=self.runner.key_groups,
            writes=self.writes,
        )
        return self.attempt

    async def _run(self, attempt: Attempt) -> BaseException | None:
        """One attempt: its error, or None; ``ActorLostError`` if an actor died."""
        error: BaseException | None = None
        try:
            attempt.start()
            await attempt.execute()
        except StageFailedError as failure:
            error = failure
        except ActorLostError:
            await self._discard(attempt)
            raise
        except asyncio.CancelledError:  # the run's task was cancelled: its sinks close
            await self._discard(attempt)
            await asyncio.shield(attempt.close_local())
            raise
        except Exception:  # a lost lease at the last checkpoint is no failure of the run
            if not self.run.control.lost:
                await self._discard(attempt)
                raise
        attempt.cancel()
        await attempt.cancelled()
        closed = None
        try:
            closed = await attempt.close(commit=error is None)
        finally:
            if closed is None and error is None:
                attempt.give_back()
            else:
                attempt.kill()
        if error is None and not self.run.control.lost:
            error = closed
        return error

    async def _discard(self, attempt: Attempt) -> None:
        """Stop an attempt that cannot end cleanly: its tasks, then its actors."""
        attempt.cancel()
        await asyncio.shield(attempt.cancelled())
        attempt.kill()

    def _may_roll_back(self, lost: ActorLostError) -> bool:
        """Roll the run back to its last checkpoint, if it takes them (and has not lost
        too many actors already); False if it cannot go on."""
        run = self.run
        if not run.checkpointing or run.control.stopping or self.rollbacks >= MAX_ROLLBACKS:
            return False
        self.rollbacks += 1
        logger.warning(
            "flow %r: %s; rolling back to the last checkpoint and going on (%d so far)",
            run.flow.name,
            lost,
            self.rollbacks,
        )
        run.rollback()
        for name, writes in self.writes.items():
            writes.complete = writes.complete or name in run.restored.rewrite
        return True

    def _lost_for_good(self, lost: ActorLostError) -> BaseException:
        run = self.run
        if run.control.stopping:
            return run.failures.stop("<engine>", lost, "the run was stopping")
        why = "it takes no checkpoints (record it in a store to make it resumable)"
        if run.checkpointing:
            why = f"{self.rollbacks} actors were lost already"
        note = f"its actor was lost and the run cannot roll back: {why}"
        return run.failures.stop(lost.chain, lost, f"chain {lost.chain!r}", note=note)

    def _stop_reading(self) -> None:
        if self.attempt is not None:
            self.attempt.stop_reading()

    def _abort(self) -> None:
        if self.attempt is not None:
            self.attempt.cancel()
            asyncio.get_running_loop().call_soon(self.attempt.kill)
