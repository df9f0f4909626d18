"""FlowKit's worker: serves the node types of its roles, taking their node runs from the
store's queue."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from riverbed.compat.flowkit import bus
from riverbed.compat.flowkit.graph import is_type_name
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
            if not is_type_name(role):
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
        self._loops = bus.Loops(db)

    async def start(self) -> None:
        """Serve the roles and start taking their nodes."""
        queues = [bus.role_queue(role) for role in self.cfg.roles]
        name = f"flowkit-{self.worker_id}"
        self._loops.start(queues, self.cfg.max_concurrency, self.cfg.poll_sec, name)
        bus.serve(self, self.cfg.roles, True)

    async def stop(self) -> None:
        """Take no more nodes; return once the nodes in hand (if any) ended."""
        await self._loops.stop()
        bus.serve(self, self.cfg.roles, False)

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
