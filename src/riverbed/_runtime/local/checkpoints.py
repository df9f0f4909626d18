"""Consistent checkpoints of a local run: when to take one, what each task contributes, and
committing it to the store.

A checkpoint is triggered by time (``checkpoint_interval`` seconds of the run's clock) or
by volume (``checkpoint_events`` read by the sources). Every *participant* then contributes
its part at a consistent cut:

- a source partition, between two batches, or at once if its read is waiting for data
  (it waits for ``triggered`` too): its reader's position (and, when it runs its chain
  inline, that chain's state at the same moment); it then puts barrier ``n`` on its
  channels, behind the batches it wrote before;
- a chain, when barrier ``n`` has arrived from every writer of its channel (the channel
  aligns them): the pickled state of its stages (of a stage kept per key, the keys changed
  since the last checkpoint) and their counters; it then passes the barrier on to the
  chains downstream.

A participant that has ended contributes what it held when it ended (the keys it changed
go with the next checkpoint only: the store keeps them). When every part is in, the
checkpoint is committed to the store in one transaction (positions, states, counters, the
dead letters since the last one), in another thread while the participants go on; only
then is the next one triggered. After the commit, transactional sinks are told to commit
what they prepared for it. The run's last checkpoint stops the triggering (``close``); a
run that ends otherwise lets a commit in flight finish (``settle``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from riverbed._runtime.clock import Clock
from riverbed._runtime.parts import Part

logger = logging.getLogger("riverbed")

__all__ = ["Checkpointer", "Part"]


@dataclass
class _Pending:
    checkpoint_id: int
    waiting: set[str]
    gathered: Part = field(default_factory=Part)


class Checkpointer:
    """Triggers checkpoints, gathers the parts of each, and hands the whole to ``commit``
    (an async callable taking the checkpoint id and the gathered ``Part``)."""

    def __init__(
        self,
        participants: set[str],
        commit: Callable[[int, Part], Any],
        *,
        clock: Clock,
        interval: float | None,
        every_events: int | None,
        last_id: int = 0,
    ) -> None:
        self.participants = participants
        self._commit = commit
        self.clock = clock
        self.interval = interval
        self.every_events = every_events
        self.due = last_id
        """The newest checkpoint triggered; a participant injects it if it has not yet."""
        self.committed = last_id
        self._events = 0
        self._pending: _Pending | None = None
        self._owed = False
        """A checkpoint came due while the previous one was still being taken or
        committed: it is triggered as soon as that one is committed, not at the next tick
        or count (which would halve the checkpoints of a run whose commits are slow)."""
        self._ended: dict[str, Part] = {}
        self._committing: asyncio.Task[None] | None = None
        self._triggered: asyncio.Future[None] | None = None
        self.closed = False
        """Set by ``close``: no checkpoint is triggered any more."""
        self.failed: Callable[[int, BaseException], BaseException] | None = None
        """Set by the runner: makes the error that stops the run when a commit failed."""
        self.error: BaseException | None = None

    # -- triggering -----------------------------------------------------------------------

    def count(self, events: int) -> None:
        """Sources report what they read; enough of it triggers a checkpoint."""
        if self.every_events is None:
            return
        self._events += events
        if self._events >= self.every_events:
            self._events = 0
            self.trigger()

    def trigger(self) -> None:
        """Start checkpoint ``due + 1``, unless one is still being taken or committed, or
        the run is taking its last one (``close``)."""
        if self.closed:
            return
        if self._pending is not None:
            self._owed = True
            return
        self._owed = False
        self.due += 1
        self._pending = _Pending(self.due, set(self.participants))
        self._wake()
        for name, part in list(self._ended.items()):
            self._add(name, part)
            part.taken()  # its changed keys and prepared writes go with this one only

    def triggered(self) -> asyncio.Future[None]:
        """A future done at the next trigger, or when a commit failed: what a source
        partition waiting for its read waits for too, to take its part in time."""
        if self._triggered is None or self._triggered.done():
            self._triggered = asyncio.get_running_loop().create_future()
        return self._triggered

    def _wake(self) -> None:
        if self._triggered is not None and not self._triggered.done():
            self._triggered.set_result(None)

    async def run(self) -> None:
        """Trigger a checkpoint every ``interval`` seconds of the run's clock (cancelled by
        the run when it ends)."""
        if self.interval is None:
            await asyncio.Event().wait()  # nothing timed: wait to be cancelled
        assert self.interval is not None
        while True:
            await self.clock.sleep(self.interval)
            self.trigger()

    # -- gathering ------------------------------------------------------------------------

    def wants(self, injected: int) -> int | None:
        """The checkpoint a participant that last contributed to ``injected`` must take
        now, or None. Raises the run-stopping error once a commit has failed: sources ask
        between batches, so the run stops at once rather than go on without checkpoints."""
        if self.error is not None:
            raise self.error
        if self._pending is not None and self.due > injected:
            return self.due
        return None

    def report(self, name: str, checkpoint_id: int, part: Part) -> None:
        """Participant ``name``'s part of checkpoint ``checkpoint_id``."""
        pending = self._pending
        if pending is None or pending.checkpoint_id != checkpoint_id:
            return  # a barrier of a checkpoint already abandoned
        self._add(name, part)

    def next_for(self, name: str) -> int:
        """The checkpoint that participant ``name``'s next part goes into."""
        pending = self._pending
        if pending is not None and name in pending.waiting:
            return pending.checkpoint_id
        return self.due + 1

    def ended(self, name: str, part: Part) -> None:
        """Participant ``name`` has ended holding ``part``: it stands for it in every
        checkpoint from now on."""
        self._ended[name] = part
        if self._pending is not None and name in self._pending.waiting:
            self._add(name, part)
            part.taken()  # the pending checkpoint took its changes

    def _add(self, name: str, part: Part) -> None:
        pending = self._pending
        assert pending is not None
        if name not in pending.waiting:
            return
        pending.waiting.discard(name)
        pending.gathered.merge(part)
        if not pending.waiting:
            self._committing = asyncio.get_running_loop().create_task(self._finish(pending))

    async def _finish(self, pending: _Pending) -> None:
        try:
            await self._commit(pending.checkpoint_id, pending.gathered)
        except Exception as error:  # the run fails with it: see ``wants`` and ``check``
            logger.exception("checkpoint %d could not be committed", pending.checkpoint_id)
            self.error = self.failed(pending.checkpoint_id, error) if self.failed else error
            self._wake()  # partitions waiting for reads ask ``wants``, which raises it
            return
        self.committed = pending.checkpoint_id
        self._pending = None
        if self._owed:
            self.trigger()

    def close(self) -> None:
        """Trigger no more checkpoints: the run takes its last one itself (its commit, off
        the loop, must not meet a timed one under the same id)."""
        self.closed = True

    def check(self) -> None:
        """Raise the error of a failed commit, if one failed."""
        if self.error is not None:
            raise self.error

    async def drain(self) -> None:
        """Wait for a commit in progress to end."""
        if self._committing is not None:
            await asyncio.wait([self._committing])
            self.check()

    async def settle(self) -> None:
        """The run ends without a last checkpoint (it failed, or stopped at once): trigger
        no more, and let a commit in flight end, so that a cut taken before the end is kept
        (a failure of that commit is logged; the run's own error stands)."""
        self.close()
        if self._committing is not None:
            await asyncio.wait([self._committing])

    def final(self) -> Part:
        """Every participant's part at its end: the cut of a run that has drained."""
        whole = Part()
        for part in self._ended.values():
            whole.merge(part)
        return whole
