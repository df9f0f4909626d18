"""How a task's nodes reach the workers that serve their types: riverbed's named queues.

A task's workflow gives each node the queue of its type (``flowkit-role:TYPE``): its step
runs as a step run of its own in that queue (``riverbed._runtime.queued``, through the
public ``queue=`` of a step), which only the workers serving the type claim; the
coordinator that runs the task waits for it and records its output. The worker that
claims it builds the task's workflow from its target and runs that node with the handler
of a FlowKit worker of its own process serving the type (``serving``).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

import riverbed as rb

__all__ = ["TASK_QUEUE", "Loops", "role_queue", "serve", "serving"]

TASK_QUEUE = "flowkit-tasks"
"""The queue of tasks: coordinators claim them and schedule their nodes."""


def role_queue(role: str) -> str:
    """The queue of the nodes of type ``role``."""
    return f"flowkit-role:{role}"


class Loops:
    """What a started coordinator or worker runs: ``riverbed.Worker`` loops claiming the
    runs of its queues from the store ``db`` (a ``riverbed.Store`` or its URL), each in a
    daemon thread, on the local runner (their steps are this process's objects)."""

    def __init__(self, db: Any) -> None:
        if not isinstance(db, str | rb.Store):
            raise TypeError(f"db must be a riverbed Store or a store URL, got {type(db).__name__}")
        self.db = db
        self.store: rb.Store | None = None
        self._loops: list[tuple[rb.Worker, threading.Thread]] = []

    def start(self, queues: Sequence[str], count: int, poll: float, name: str) -> rb.Store:
        """Open the store and start ``count`` loops serving ``queues``; the store."""
        if self.store is None:
            self.store = rb.open_store(self.db) if isinstance(self.db, str) else self.db
            for index in range(count):
                loop = rb.Worker(self.store, runner="local", queues=queues, poll=poll)
                thread = threading.Thread(target=loop.run, name=f"{name}-{index}", daemon=True)
                self._loops.append((loop, thread))
                thread.start()
        return self.store

    async def stop(self) -> None:
        """Claim no more runs; return once the runs in hand ended, the store closed if it
        was opened here."""
        for loop, _ in self._loops:
            loop.stopping = True
        for _, thread in self._loops:
            await asyncio.to_thread(thread.join)
        self._loops = []
        if self.store is not None and self.store is not self.db:
            self.store.close()
        self.store = None


# The started workers of this process serving each type.
_serving: dict[str, list[Any]] = {}
_lock = threading.Lock()


def serve(worker: Any, roles: Sequence[str], on: bool) -> None:
    """Add ``worker`` to (or remove it from) the started workers serving ``roles``."""
    with _lock:
        for role in roles:
            workers = _serving.setdefault(role, [])
            if on and worker not in workers:
                workers.append(worker)
            elif not on and worker in workers:
                workers.remove(worker)


def serving(role: str, task_id: str) -> Any:
    """A started worker of this process serving ``role`` (the same one for a task's nodes
    when several do), or None."""
    with _lock:
        workers = list(_serving.get(role, ()))
    return workers[sum(task_id.encode()) % len(workers)] if workers else None
