"""Group commit: the steps of the workflows running in one event loop on one store share
their transactions.

A workflow's step is durable before the next one starts; committing each alone would cost
one fsync per step. So a commit asked for while another is being written waits for it,
and goes into the next transaction with every other commit that arrived meanwhile: one
fsync for many workflows, each still waiting for its own commit. (W5 in ``make bench``
measures it: 16 workflows at once share about 16 steps per transaction.)
"""

from __future__ import annotations

import asyncio
import weakref

from riverbed._records import StepCommit
from riverbed._store.protocol import Store

__all__ = ["Committer", "committer"]


WRITERS = 1
"""Transactions a committer has in flight at once. One groups the most steps per
transaction; more would overlap round trips, which W5 did not measure faster."""


class Committer:
    """Commits the steps of the workflows running in one event loop on one store. A commit
    asked for while another is being written waits for it and goes into the next one with
    all others that arrived meanwhile: one transaction (one fsync) for many workflows."""

    def __init__(
        self, store: Store, loop: asyncio.AbstractEventLoop, *, blocking: bool = False
    ) -> None:
        self.store = store
        self.loop = loop
        self.blocking = blocking
        """Call the store in the loop's own thread: for ``rb.run``, whose loop runs nothing
        else, this saves a hand-over to a worker thread and back per commit."""
        self.queue: list[tuple[StepCommit, asyncio.Future[None]]] = []
        self.writers = 0
        """Writer tasks running. Counted by the tasks themselves, not by done callbacks,
        which run a loop iteration late: a commit arriving in between would find a writer
        that has already stopped looking at the queue, and wait forever."""
        self.tasks: set[asyncio.Task[None]] = set()
        """The writer tasks, referenced so that they are not garbage-collected."""
        self.commits = 0
        """Transactions written (for benchmarks: how well steps were grouped)."""

    async def commit(self, commit: StepCommit) -> None:
        """Return once ``commit`` is durable; raise its error if it failed."""
        if self.blocking:  # one workflow in this loop: nothing to group it with
            self.commits += 1
            self.store.commit_steps([commit])
            return
        done: asyncio.Future[None] = self.loop.create_future()
        self.queue.append((commit, done))
        if self.writers < WRITERS:
            self.writers += 1
            writer = self.loop.create_task(self._flush())
            self.tasks.add(writer)
            writer.add_done_callback(self.tasks.discard)
        await done

    async def _flush(self) -> None:
        try:
            while self.queue:
                batch, self.queue = self.queue, []
                await self._write(batch)
        finally:
            self.writers -= 1  # in the same step as the last look at the queue

    async def _call(self, commits: list[StepCommit]) -> None:
        await asyncio.to_thread(self.store.commit_steps, commits)

    async def _write(self, batch: list[tuple[StepCommit, asyncio.Future[None]]]) -> None:
        try:
            self.commits += 1
            await self._call([commit for commit, _ in batch])
        # Whatever the store raised goes to the steps waiting on these commits, not lost.
        except Exception as error:  # noqa: BLE001
            if len(batch) == 1:
                _settle(batch[0][1], error)
                return
            # One bad commit (a duplicate run id...) rolled the group back: commit each
            # alone, so that the others go through and the culprit gets its own error.
            for commit, done in batch:
                try:
                    self.commits += 1
                    await self._call([commit])
                except Exception as own:  # noqa: BLE001 - to that commit's step
                    _settle(done, own)
                else:
                    _settle(done, None)
            return
        for _, done in batch:
            _settle(done, None)


def _settle(done: asyncio.Future[None], error: BaseException | None) -> None:
    if done.done():  # its workflow was cancelled while waiting
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)


_committers: weakref.WeakKeyDictionary[Store, Committer] = weakref.WeakKeyDictionary()


def committer(store: Store, *, blocking: bool = False) -> Committer:
    """The group committer of ``store`` in the running event loop (``blocking``: see
    ``_Committer.blocking``; only for a loop that runs nothing but one workflow)."""
    loop = asyncio.get_running_loop()
    known = _committers.get(store)
    if known is None or known.loop is not loop:
        known = _committers[store] = Committer(store, loop, blocking=blocking)
    return known
