"""The driver's side of one chain that runs in actors: its actors, the calls in flight to
each (bounded: a full lane makes the sender wait, so a slow stage slows the source), and
the answers taken in the order the calls were sent, so that what leaves the chain goes
downstream in the order it came in (per-key order holds across a stateless chain's
load-balanced actors too).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable
from typing import Any

from riverbed._runtime.ray.actor import Reply
from riverbed._runtime.ray.topology import ChainPlacement, Placement, key_owner

__all__ = ["ActorLostError", "Lane"]


class ActorLostError(Exception):
    """An actor of the run died (its process was killed, its node removed)."""

    def __init__(self, chain: str, index: int, error: BaseException) -> None:
        super().__init__(f"actor {index} of chain {chain!r} was lost: {error}")
        self.chain = chain
        self.index = index


class Lane:
    """Calls to one chain's actors, in flight and in order (see the module docstring)."""

    def __init__(
        self,
        placed: ChainPlacement,
        actors: list[Any],
        *,
        in_flight: int,
        key_groups: int,
        lost: tuple[type[BaseException], ...],
    ) -> None:
        self.placed = placed
        self.name = placed.name
        self.actors = actors
        self.limit = in_flight
        self.key_groups = key_groups
        self.lost = lost
        """The Ray errors that mean an actor is gone."""
        self.calls: collections.deque[tuple[int, Any]] = collections.deque()
        self.loads = [0] * len(actors)
        self.ready = asyncio.Event()
        self.room = asyncio.Event()
        self.idle = asyncio.Event()
        self.idle.set()
        self._owners: dict[Any, int] = {}
        self._next = 0

    # -- sending --------------------------------------------------------------------------

    async def send(self, events: list[Any]) -> None:
        """Send a batch to the chain: split by key owner, to the least loaded actor, or
        to the only one."""
        placement = self.placed.placement
        if placement is Placement.KEYED and len(self.actors) > 1:
            for index, share in self._by_owner(events).items():
                await self.call(index, "process", share)
        elif placement is Placement.BALANCED and len(self.actors) > 1:
            await self.call(self._least_loaded(), "process", events)
        else:
            await self.call(0, "process", events)

    async def call(self, index: int, method: str, *args: Any) -> None:
        """Call ``method`` of actor ``index`` once it has room; its answer is taken in
        turn by ``take``."""
        while self.loads[index] >= self.limit:
            self.room.clear()
            await self.room.wait()
        try:
            ref = getattr(self.actors[index], method).remote(*args)
        except TypeError as error:  # Ray's pickling: say what riverbed needs
            raise TypeError(
                f"chain {self.placed.chain.name!r} on Ray: what is sent to its actor cannot "
                f"be pickled ({error}); events that cross to Ray's actors must be picklable "
                "(the local runner keeps them in one process)"
            ) from error
        self.loads[index] += 1
        self.calls.append((index, ref))
        self.idle.clear()
        self.ready.set()

    async def ask_all(self, method: str, *args: Any) -> list[Any]:
        """Call ``method`` of every actor at once, outside the stream of batches (a
        checkpoint's snapshot, a question), and their answers; a dead actor raises
        ``ActorLostError``, as in ``take``, however the run first meets its death."""
        refs = [getattr(actor, method).remote(*args) for actor in self.actors]
        answers = []
        for index, ref in enumerate(refs):
            try:
                answers.append(await ref)
            except self.lost as error:
                raise ActorLostError(self.name, index, error) from error
        return answers

    async def broadcast(self, method: str, *args: Any) -> None:
        """Call ``method`` of every actor (in turn with the batches before it)."""
        for index in range(len(self.actors)):
            await self.call(index, method, *args)

    def _by_owner(self, events: list[Any]) -> dict[int, list[Any]]:
        owners = self._owners
        if len(owners) > 100_000:  # keys are many: do not keep them all
            owners.clear()
        actors, groups = len(self.actors), self.key_groups
        shares: dict[int, list[Any]] = {}
        for event in events:
            key = event[0]
            try:
                owner = owners.get(key)
            except TypeError:  # unhashable: the first actor's, whose stage fails on it
                owner = 0
            if owner is None:
                owner = owners[key] = key_owner(key, actors, groups)
            share = shares.get(owner)
            if share is None:
                shares[owner] = [event]
            else:
                share.append(event)
        return shares

    def _least_loaded(self) -> int:
        loads = self.loads
        low = min(loads)
        # Round robin among the least loaded: equal loads do not all go to actor 0.
        for step in range(len(loads)):
            index = (self._next + step) % len(loads)
            if loads[index] == low:
                self._next = index + 1
                return index
        return 0

    # -- taking answers -------------------------------------------------------------------

    async def take(self, handle: Callable[[int, Reply], Awaitable[None]]) -> None:
        """Forever: await the oldest call's answer and ``handle`` it (its outputs go
        downstream before the next answer is taken). A dead actor raises ``ActorLostError``."""
        while True:
            while not self.calls:
                self.idle.set()
                self.ready.clear()
                await self.ready.wait()
            index, ref = self.calls[0]
            try:
                reply = await ref
            except self.lost as error:
                raise ActorLostError(self.name, index, error) from error
            self.calls.popleft()
            self.loads[index] -= 1
            self.room.set()
            await handle(index, reply)
            if not self.calls:
                self.idle.set()

    async def quiet(self) -> None:
        """Wait until every call sent has been answered and handled."""
        while not (self.idle.is_set() and not self.calls):
            await self.idle.wait()
            await asyncio.sleep(0)
