"""FlowKit's worker: serves the node types of its roles, taking their node runs from the
store's queue."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import riverbed as rb
from riverbed.compat.flowkit import bus
from riverbed.compat.flowkit.handlers import RunContext, run_batch, run_node, stream_node

__all__ = ["Worker", "WorkerConfig"]


@dataclass(frozen=True)
class WorkerConfig:
    """A worker's settings: the ``roles`` (node types) it serves."""

    roles: Sequence[str] = ()
    worker_id: str | None = None
    poll_sec: float = 0.1
    """Seconds between two looks at the queue when it is empty."""
    max_concurrency: int = 4
    """Nodes it runs at once (a node that streams to first-batch nodes holds one while
    they run)."""


class Worker:
    """Runs the nodes of the types in ``cfg.roles`` with ``handlers`` (by type): it claims
    their node runs from the store ``db`` (a ``riverbed.Store`` or its URL), in
    ``cfg.max_concurrency`` daemon threads of this process, each an ``riverbed.Worker``
    loop serving the roles' queues on the local runner (the handlers are this process's
    objects)."""

    def __init__(
        self, db: Any, cfg: WorkerConfig | None = None, handlers: Mapping[str, Any] | None = None
    ) -> None:
        self.cfg = cfg or WorkerConfig(roles=tuple(handlers or ()))
        self.handlers = dict(handlers or {})
        self.worker_id = self.cfg.worker_id or f"worker-{uuid.uuid4().hex[:8]}"
        if not self.cfg.roles:
            raise ValueError(f"worker {self.worker_id}: give it roles (node types) to serve")
        for role in self.cfg.roles:
            if not isinstance(role, str) or not role or any(c.isspace() for c in role):
                raise ValueError(
                    f"worker {self.worker_id}: a role is a node type, a non-empty string "
                    f"without spaces; got {role!r:.80}"
                )
        missing = [role for role in self.cfg.roles if role not in self.handlers]
        if missing:
            raise ValueError(f"worker {self.worker_id}: no handler for role(s) {missing}")
        if self.cfg.max_concurrency < 1:
            raise ValueError(
                f"worker {self.worker_id}: max_concurrency must be 1 or more, "
                f"got {self.cfg.max_concurrency}"
            )
        self._db = db
        self._store: rb.Store | None = None
        self._owned = False
        self._loops: list[tuple[rb.Worker, threading.Thread]] = []

    async def start(self) -> None:
        """Serve the roles and start taking their nodes."""
        if self._loops:
            return
        self._store, self._owned = bus.open_db(self._db)
        bus.register(self._store, True)
        bus.serve(self, self.cfg.roles, True)
        queues = [bus.role_queue(role) for role in self.cfg.roles]
        for index in range(self.cfg.max_concurrency):
            loop = rb.Worker(self._store, runner="local", queues=queues, poll=self.cfg.poll_sec)
            thread = threading.Thread(
                target=loop.run, name=f"flowkit-{self.worker_id}-{index}", daemon=True
            )
            self._loops.append((loop, thread))
            thread.start()

    async def stop(self) -> None:
        """Take no more nodes; return once the nodes in hand (if any) ended."""
        for loop, _ in self._loops:
            loop.stopping = True
        for _, thread in self._loops:
            await asyncio.to_thread(thread.join)
        self._loops = []
        bus.serve(self, self.cfg.roles, False)
        if self._store is not None:
            bus.register(self._store, False)
            if self._owned:
                self._store.close()
        self._store = None

    async def run_node(self, kind: str, loaded: Any, ctx: RunContext) -> Any:
        """Run one node of type ``kind`` on ``loaded`` with this worker's handler: the
        list of its batches' metrics (a plain callable: what it returns)."""
        return await run_node(self.handlers[kind], loaded, ctx)

    async def stream_node(self, kind: str, loaded: Any, ctx: RunContext) -> Any:
        """Run one node of type ``kind`` on ``loaded``, yielding (batch, metrics) as each
        batch is processed."""
        async for item in stream_node(self.handlers[kind], loaded, ctx):
            yield item

    async def run_batch(self, kind: str, batch: Any, ctx: RunContext) -> Any:
        """Process one ``batch`` with the handler of type ``kind``: its metrics (a plain
        callable: what it returns); a batch that fails raises."""
        return await run_batch(self.handlers[kind], batch, ctx)
