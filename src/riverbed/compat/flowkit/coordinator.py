"""FlowKit's coordinator: creates tasks, and schedules their nodes (a task is a riverbed
workflow run whose steps send its nodes to the workers serving their types)."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import riverbed as rb
from riverbed.compat.flowkit import bus
from riverbed.compat.flowkit.graph import first_batch_consumers, to_graph_spec

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
    graph: Mapping[str, Any],
    params: Mapping[str, Any],
    task_id: str,
    name: str = "flowkit-task",
    store: str = "",
) -> rb.Flow:
    """The workflow of a task (a run's target: a coordinator builds it when it claims
    it): one step per node, which queues the node for the workers serving its type in the
    store at URL ``store`` and waits for its output."""
    spec = to_graph_spec(graph, name)
    feeds = first_batch_consumers(spec)
    fed = {node["id"] for nodes in feeds.values() for node in nodes}
    handlers: dict[str, Any] = {}
    for node in spec["nodes"]:
        call = bus.NodeCall(store, task_id, node["id"], node["type"], dict(params))
        step: Any
        if node["id"] in feeds and node["id"] in fed:
            raise rb.FlowDefinitionError(
                f"node {node['id']!r} starts on its upstream node's first batch, so it "
                "cannot feed first-batch nodes itself",
                stage=node["id"],
            )
        if node["id"] in feeds:
            consumers = tuple((n["id"], n["type"]) for n in feeds[node["id"]])
            step = _StreamStep(dataclasses.replace(call, mode="stream", consumers=consumers))
        elif node["id"] in fed:
            step = _FedStep(call)
        else:
            step = _NodeStep(call)
        # One handler per node, so that each knows its node: keyed "type#node".
        key = f"{node['type']}#{node['id']}"
        handlers[key] = step
        node["type"] = key
    return rb.workflow_from_graph(spec, handlers)


@dataclass(frozen=True, eq=False)  # hashed by identity: its call holds a dict
class _NodeStep:
    """A node's step: the node, run by a worker serving its type."""

    call: bus.NodeCall

    async def __call__(self, loaded: Any) -> Any:
        return await bus.dispatch(self.call, loaded, f"{self.call.task_id}.{self.call.node}")


# The results of first-batch nodes, computed on the workers as each batch came, waiting
# for their node's step (called on each batch inside the upstream node's step).
_fed: dict[tuple[str, str], deque[Any]] = {}
_fed_lock = threading.Lock()


@dataclass(frozen=True, eq=False)
class _StreamStep(_NodeStep):
    """The step of a node that first-batch nodes read: its node run streams each batch to
    them on the workers; the step then hands their results to their steps (which the
    workflow calls on each batch it yields) and yields the batches."""

    async def __call__(self, loaded: Any) -> AsyncIterator[Any]:  # type: ignore[override]
        call = self.call
        out = await bus.dispatch(call, loaded, f"{call.task_id}.{call.node}")
        with _fed_lock:
            for node, _ in call.consumers:
                _fed[call.task_id, node] = deque(out["results"][node])
        for batch in out["batches"]:
            yield batch


@dataclass(frozen=True, eq=False)
class _FedStep(_NodeStep):
    """A first-batch node's step on one batch: the result its worker gave for it."""

    async def __call__(self, batch: Any) -> Any:
        key = self.call.task_id, self.call.node
        with _fed_lock:
            results = _fed[key]
            result = results.popleft()
            if not results:  # the upstream's last batch: nothing more will come
                del _fed[key]
            return result


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
            "store": store.url,
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
