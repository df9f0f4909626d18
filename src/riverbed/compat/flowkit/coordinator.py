"""FlowKit's coordinator: creates tasks, and schedules their nodes (a task is a riverbed
workflow run whose steps run on the queues of their nodes' types)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import riverbed as rb
from riverbed.compat.flowkit import bus
from riverbed.compat.flowkit.graph import first_batch_consumers, to_graph_spec
from riverbed.compat.flowkit.handlers import RunContext

__all__ = ["Coordinator", "CoordinatorConfig", "task_flow"]

_TASK_TARGET = "riverbed.compat.flowkit:task_flow"


@dataclass(frozen=True)
class CoordinatorConfig:
    """The coordinator's settings (FlowKit's ``CoordinatorConfig``)."""

    flow_name: str = "flowkit-task"
    """The riverbed flow name its tasks' runs carry (``riverbed runs list --flow``)."""
    max_parallel_tasks: int = 4
    """Tasks it schedules at once (each in a thread of its own); 0 for a coordinator that
    only creates, cancels and looks at tasks (a client), leaving them to others."""
    poll_sec: float = 0.1
    """Seconds between two looks at the queue of tasks when it is empty."""


def task_flow(
    graph: Mapping[str, Any], params: Mapping[str, Any], task_id: str, name: str = "flowkit-task"
) -> rb.Flow:
    """The workflow of a task (a run's target: the coordinator that claims the task builds
    it, and so does each worker that claims one of its nodes): one step per node, on the
    queue of its type, whose handler is that of a worker serving the type."""
    spec = to_graph_spec(graph, name)
    feeds = first_batch_consumers(spec)
    fed = {node["id"]: source for source, nodes in feeds.items() for node in nodes}
    handlers: dict[str, Any] = {}
    for node in spec["nodes"]:
        node_id, kind = node["id"], node["type"]
        step: _RoleCall
        if node_id in fed:  # runs in its upstream's step, on that node's worker
            step = _RoleCall(kind, task_id, dict(params), node_id, fed[node_id], per_batch=True)
        else:
            node["queue"] = bus.role_queue(kind)
            role = _RoleStream if node_id in feeds else _RoleCall
            step = role(kind, task_id, dict(params), node_id)
        # One handler per node, so that each knows its node: keyed "type#node".
        key = f"{kind}#{node_id}"
        handlers[key] = step
        node["type"] = key
    return rb.workflow_from_graph(spec, handlers)


@dataclass(frozen=True, eq=False)  # hashed by identity: its params are a dict
class _RoleCall:
    """A node's handler: that of a started FlowKit worker of this process serving its
    type (the process took the node from its type's queue). ``per_batch``: a first-batch
    node, called on each batch of node ``upstream``, in that node's step."""

    type: str
    task_id: str
    params: dict[str, Any]
    node: str
    upstream: str = ""
    per_batch: bool = False

    async def __call__(self, loaded: Any) -> Any:
        worker, ctx = self.worker()
        if self.per_batch:
            return await worker.run_batch(self.type, loaded, ctx)
        return await worker.run_node(self.type, loaded, ctx)

    def worker(self) -> tuple[Any, RunContext]:
        """The worker that runs this node here, and the node's ``ctx``."""
        worker = bus.serving(self.type, self.task_id)
        if worker is None:
            where = (
                f"it starts on the first batch of node {self.upstream!r} and runs in that "
                f"node's step, on a worker of that node's type: give that worker role "
                f"{self.type!r} too"
                if self.per_batch
                else "start a FlowKit Worker serving it (riverbed worker cannot: its handlers "
                "are a Worker's objects)"
            )
            raise RuntimeError(
                f"task {self.task_id}, node {self.node!r}: no FlowKit Worker of this process "
                f"serves type {self.type!r}; {where}"
            )
        return worker, RunContext(self.task_id, self.node, worker.worker_id, self.params)


@dataclass(frozen=True, eq=False)
class _RoleStream(_RoleCall):
    """The handler of a node that first-batch nodes read: yields each of its batches once
    processed, so that they are called on it at once (its output is the list of batches)."""

    async def __call__(self, loaded: Any) -> Any:
        worker, ctx = self.worker()
        async for batch, _ in worker.stream_node(self.type, loaded, ctx):
            yield batch


class Coordinator:
    """Creates and cancels tasks in the store ``db`` (a ``riverbed.Store`` or its URL),
    and, once started, schedules the nodes of queued tasks (any started coordinator on
    the store may take a task; one that dies has its tasks taken over)."""

    def __init__(self, db: Any, cfg: CoordinatorConfig | None = None) -> None:
        self.cfg = cfg or CoordinatorConfig()
        if self.cfg.max_parallel_tasks < 0:
            raise ValueError(
                f"max_parallel_tasks must be 0 or more, got {self.cfg.max_parallel_tasks}"
            )
        self._loops = bus.Loops(db)

    @property
    def store(self) -> rb.Store | None:
        """The store, once started."""
        return self._loops.store

    async def start(self) -> None:
        """Open the store and start scheduling tasks (in daemon threads)."""
        cfg = self.cfg
        self._loops.start([bus.TASK_QUEUE], cfg.max_parallel_tasks, cfg.poll_sec, "flowkit-tasks")

    async def stop(self) -> None:
        """Schedule no more tasks (a task in hand is scheduled to its end first), and close
        the store if this coordinator opened it."""
        await self._loops.stop()

    async def create_task(self, params: Mapping[str, Any], graph: Mapping[str, Any]) -> str:
        """Queue a task running ``graph`` with ``params``; its id (a riverbed run id)."""
        store = self._started()
        task_id = uuid.uuid4().hex[:16]
        arguments: dict[str, Any] = {
            "graph": dict(graph),
            "params": dict(params),
            "task_id": task_id,
            "name": self.cfg.flow_name,
        }
        # Built now from its target: a bad graph is refused here, naming the node or edge.
        await asyncio.to_thread(
            rb.schedule,
            _TASK_TARGET,
            dict(params),
            store=store,
            params=arguments,
            queue=bus.TASK_QUEUE,
            run_id=task_id,
        )
        return task_id

    async def cancel_task(self, task_id: str) -> bool:
        """Cancel a queued or running task (a running one stops at its next node
        boundary, and its nodes in flight are cancelled); False if it had ended already."""
        store = self._started()
        record = await asyncio.to_thread(store.get_run, task_id)
        if record.status not in (rb.RunStatus.SCHEDULED, rb.RunStatus.RUNNING):
            return False
        await asyncio.to_thread(
            store.transition, task_id, rb.RunStatus.CANCELLED, ended_at=datetime.now(UTC)
        )
        return True

    async def get_task(self, task_id: str) -> rb.RunRecord:
        """The task's run record (status, attempt, output, error)."""
        return await asyncio.to_thread(self._started().get_run, task_id)

    async def wait_task(self, task_id: str, timeout: float = 30.0) -> rb.RunRecord:
        """The task's record once it ended (succeeded, failed or cancelled), or as it is
        after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            record = await self.get_task(task_id)
            if record.status.ended or time.monotonic() > deadline:
                return record
            await asyncio.sleep(0.05)

    def _started(self) -> rb.Store:
        if self.store is None:
            raise RuntimeError("the coordinator is not started: await coordinator.start()")
        return self.store
