"""FlowKit's API on riverbed: a coordinator creates tasks (DAG graphs of typed nodes),
workers that declare roles run the nodes of the types they serve.

    from riverbed.compat.flowkit import Coordinator, CoordinatorConfig, Worker, WorkerConfig

    coordinator = Coordinator(db="sqlite:///runs.db", cfg=CoordinatorConfig())
    await coordinator.start()
    worker = Worker(db="sqlite:///runs.db", cfg=WorkerConfig(roles=["processor"]),
                    handlers={"processor": MyHandler()})
    await worker.start()
    task_id = await coordinator.create_task(params={}, graph=graph)

How it maps (docs/compat.md, "FlowKit"):

- A task is a riverbed workflow run built from its graph by ``rb.workflow_from_graph``
  (``node_id`` -> ``id``, ``depends_on`` and ``edges`` -> edges, ``fan_in`` as is,
  ``retry_policy`` -> ``rb.Retry(attempts=max, backoff=backoff_sec)``,
  ``io.input_inline`` -> inline input). ``create_task`` puts it into the store's run queue;
  its id is the run's id, so ``riverbed runs list`` / ``show`` show it, and every node is a
  recorded step.
- MongoDB and Kafka are riverbed's store (``db``: a ``riverbed.Store`` or its URL; SQLite
  or PostgreSQL): the queue is the message bus, the run records are the task state.
- A ``Worker`` is a ``riverbed.Worker`` loop in a thread of this process, claiming tasks
  from the queue; a node runs on a worker of this process whose roles include the node's
  ``type`` (it waits while none is started). Worker failure detection is riverbed's
  lease: a process that dies stops renewing its task's lease, and once it expires another
  worker claims the task and resumes it, replaying the nodes already recorded (each node
  is recorded exactly once, and called again only if it was running when its worker
  died).
- A handler is an object with ``async iter_batches(loaded)`` (yielding batches) and
  ``async process_batch(batch, ctx)`` (returning ``BatchResult``, a bool, a
  ``(success, metrics)`` pair or a metrics dict), or a plain callable ``fn(loaded)``.
  ``loaded`` is the node's ``input_inline`` for a node without dependencies, else a dict
  of its upstream nodes' outputs by node id (with ``input_inline`` under ``"input"``). A
  handler node's output is the list of its batches' metrics.
- ``io.start_when: "first_batch"`` (streaming between stages): the node's
  ``process_batch`` is called on each batch of its one upstream node as soon as that
  batch is processed; the upstream node's output is then the list of its batches, and
  the node's the list of its batches' metrics. Both stay recorded steps (see
  ``rb.workflow_from_graph``: the streamed calls happen inside the upstream node's step).

Where riverbed differs from FlowKit, on purpose: a batch whose ``process_batch`` reports
failure fails the node (then its ``retry_policy`` applies) rather than being dropped
silently; ``retry_policy.max`` counts every attempt, the first included. Roles are served
within a process: a task moves between processes (machines) through the queue and its
lease, and a node goes to a worker of the process that holds its task (sending single
nodes to other processes would need the queue to filter claims by role). Handlers are
the worker's own objects, so tasks run on the local runner (not ``RIVERBED_RUNNER=ray``,
where a node fails saying that no worker serves it).
"""

from __future__ import annotations

import asyncio
import inspect
import pickle
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import riverbed as rb

__all__ = [
    "BatchResult",
    "Coordinator",
    "CoordinatorConfig",
    "RunContext",
    "Worker",
    "WorkerConfig",
    "task_flow",
    "to_graph_spec",
]

_NODE_KEYS = frozenset({"node_id", "type", "depends_on", "fan_in", "retry_policy", "io"})
_IO_KEYS = frozenset({"input_inline", "start_when"})
_TARGET = "riverbed.compat.flowkit:task_flow"


@dataclass(frozen=True)
class CoordinatorConfig:
    """The coordinator's settings (FlowKit's ``CoordinatorConfig``)."""

    flow_name: str = "flowkit-task"
    """The riverbed flow name its tasks' runs carry (``riverbed runs list --flow``)."""


@dataclass(frozen=True)
class WorkerConfig:
    """A worker's settings: the ``roles`` (node types) it serves."""

    roles: Sequence[str] = ()
    worker_id: str | None = None
    poll_sec: float = 0.1
    """Seconds between two looks at the queue when it is empty."""


@dataclass(frozen=True)
class BatchResult:
    """What ``process_batch`` returns: whether the batch succeeded, and its metrics."""

    success: bool = True
    metrics: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True)
class RunContext:
    """The ``ctx`` a handler's ``process_batch`` gets: which task, node and worker."""

    task_id: str
    node_id: str
    worker_id: str
    params: Mapping[str, Any]


def to_graph_spec(graph: Mapping[str, Any], name: str = "flowkit-task") -> dict[str, Any]:
    """The ``rb.workflow_from_graph`` spec of a FlowKit graph (checked; errors name the
    bad node or edge)."""
    nodes: list[dict[str, Any]] = []
    edges: list[list[str]] = []
    for index, raw in enumerate(graph.get("nodes", ())):
        node_id = raw.get("node_id") if isinstance(raw, Mapping) else None
        if not isinstance(node_id, str):
            raise rb.FlowDefinitionError(f"node #{index} has no 'node_id' string: {raw!r:.80}")
        unknown = set(raw) - _NODE_KEYS
        io = raw.get("io") or {}
        unknown |= {f"io.{key}" for key in set(io) - _IO_KEYS}
        if unknown:
            raise rb.FlowDefinitionError(
                f"node {node_id!r} has unknown key(s) {sorted(unknown)}; a FlowKit node takes "
                f"{sorted(_NODE_KEYS)} and io {sorted(_IO_KEYS)}",
                stage=node_id,
            )
        node: dict[str, Any] = {"id": node_id, "type": raw.get("type")}
        if "start_when" in io:
            node["start"] = io["start_when"]
        if "input_inline" in io:
            node["input"] = io["input_inline"]
        if raw.get("fan_in") is not None:
            node["fan_in"] = raw["fan_in"]
        if raw.get("retry_policy"):
            policy = raw["retry_policy"]
            node["retry"] = {
                "attempts": int(policy.get("max", 1)),
                "backoff": float(policy.get("backoff_sec", 0.0)),
                "jitter": False,
            }
        nodes.append(node)
        edges += [[str(upstream), node_id] for upstream in raw.get("depends_on") or ()]
    for edge in graph.get("edges", ()):
        if list(edge) not in edges:
            edges.append(list(edge))
    return {"name": name, "nodes": nodes, "edges": edges}


def task_flow(
    graph: Mapping[str, Any], params: Mapping[str, Any], task_id: str, name: str = "flowkit-task"
) -> rb.Flow:
    """The workflow of a task (a run's target: a worker builds it when it claims it); each
    node's handler is its type's, dispatched to a worker of this process serving it."""
    spec = to_graph_spec(graph, name)
    streaming = {
        source for source, target in spec["edges"] if _starts(spec, target) == "first_batch"
    }
    handlers: dict[str, _RoleCall] = {}
    for node in spec["nodes"]:
        if not isinstance(node["type"], str) or not node["type"]:
            raise rb.FlowDefinitionError(
                f"node {node['id']!r} needs a 'type' (the role of the workers that run it)",
                stage=node["id"],
            )
        # One handler per node, so that its ctx names the node: keyed "type#node".
        key = f"{node['type']}#{node['id']}"
        per_batch = node.get("start") == "first_batch"
        role = _RoleStream if node["id"] in streaming else _RoleCall
        handlers[key] = role(node["type"], task_id, dict(params), node["id"], per_batch)
        node["type"] = key
    return rb.workflow_from_graph(spec, handlers)


def _starts(spec: Mapping[str, Any], node_id: str) -> Any:
    """When node ``node_id`` of ``spec`` starts (its ``start``, "ready" by default)."""
    return next((n.get("start", "ready") for n in spec["nodes"] if n["id"] == node_id), None)


class Coordinator:
    """Creates and cancels tasks in the store ``db`` (a ``riverbed.Store`` or its URL)."""

    def __init__(self, db: Any, cfg: CoordinatorConfig | None = None) -> None:
        self.cfg = cfg or CoordinatorConfig()
        self._db = db
        self.store: rb.Store | None = None

    async def start(self) -> None:
        """Open the store."""
        self.store = _open(self._db)

    async def stop(self) -> None:
        """Close the store if this coordinator opened it."""
        if self.store is not None and self.store is not self._db:
            self.store.close()
        self.store = None

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
        flow = task_flow(**arguments)  # checks the graph now, naming the bad node or edge
        record = rb.RunRecord(
            run_id=task_id,
            flow=flow.name,
            flow_version=flow.version,
            status=rb.RunStatus.SCHEDULED,
            params=arguments,
            input=pickle.dumps(dict(params)),
            input_repr=repr(dict(params))[:200],
            target=_TARGET,
            created_at=datetime.now(UTC),
        )
        await asyncio.to_thread(store.enqueue, record)
        return task_id

    async def cancel_task(self, task_id: str) -> bool:
        """Cancel a queued or running task (a running one stops at its next node
        boundary); False if it had ended already."""
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
        """The task's record once it ended (succeeded, failed or cancelled)."""
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


class Worker:
    """Runs the nodes of the types in ``cfg.roles`` with ``handlers`` (by type), taking
    tasks from the store ``db`` (see the module)."""

    def __init__(
        self, db: Any, cfg: WorkerConfig | None = None, handlers: Mapping[str, Any] | None = None
    ) -> None:
        self.cfg = cfg or WorkerConfig(roles=tuple(handlers or ()))
        self.handlers = dict(handlers or {})
        self.worker_id = self.cfg.worker_id or f"worker-{uuid.uuid4().hex[:8]}"
        missing = [role for role in self.cfg.roles if role not in self.handlers]
        if missing:
            raise ValueError(f"worker {self.worker_id}: no handler for role(s) {missing}")
        self._db = db
        self._loop: rb.Worker | None = None
        self._thread: threading.Thread | None = None

    async def start(self) -> None:
        """Serve the roles and start taking tasks (in a daemon thread)."""
        store = _open(self._db)
        _serve(self, True)
        self._loop = rb.Worker(store, poll=self.cfg.poll_sec)
        self._thread = threading.Thread(
            target=self._loop.run, name=f"flowkit-{self.worker_id}", daemon=True
        )
        self._thread.start()

    async def stop(self) -> None:
        """Take no more tasks; return once the task in hand (if any) ended."""
        if self._loop is not None and self._thread is not None:
            self._loop.stopping = True
            await asyncio.to_thread(self._thread.join)
        _serve(self, False)

    async def run_node(self, kind: str, loaded: Any, ctx: RunContext) -> Any:
        """Run one node of type ``kind`` on ``loaded`` with this worker's handler: the
        list of its batches' metrics (a plain callable: what it returns)."""
        handler = self.handlers[kind]
        if not hasattr(handler, "process_batch"):  # a plain callable: in a thread if sync
            return await _call(handler, loaded)
        return [metrics async for _, metrics in self.stream_node(kind, loaded, ctx)]

    async def stream_node(self, kind: str, loaded: Any, ctx: RunContext) -> Any:
        """Run one node of type ``kind`` on ``loaded``, yielding (batch, metrics) as each
        batch is processed."""
        handler = self.handlers[kind]
        if not hasattr(handler, "process_batch"):
            yield loaded, await _call(handler, loaded)
            return
        batches = handler.iter_batches(loaded) if hasattr(handler, "iter_batches") else [loaded]
        async for batch in _aiter(batches):
            yield batch, await self.run_batch(kind, batch, ctx)

    async def run_batch(self, kind: str, batch: Any, ctx: RunContext) -> Any:
        """Process one ``batch`` with the handler of type ``kind``: its metrics (a plain
        callable: what it returns); a batch that fails raises."""
        handler = self.handlers[kind]
        if not hasattr(handler, "process_batch"):
            return await _call(handler, batch)
        outcome = _batch_result(await handler.process_batch(batch, ctx))
        if not outcome.success:
            raise RuntimeError(
                f"task {ctx.task_id}, node {ctx.node_id}: a batch failed"
                + (f": {outcome.error}" if outcome.error else "")
            )
        return dict(outcome.metrics)


_serving: dict[str, list[Worker]] = {}
_serving_lock = threading.Lock()


def _serve(worker: Worker, on: bool) -> None:
    """Add ``worker`` to (or remove it from) the workers serving each of its roles."""
    with _serving_lock:
        for role in worker.cfg.roles:
            workers = _serving.setdefault(role, [])
            if on and worker not in workers:
                workers.append(worker)
            elif not on and worker in workers:
                workers.remove(worker)


@dataclass(frozen=True, eq=False)  # hashed by identity: its params are a dict
class _RoleCall:
    """A node's handler in the workflow: runs the node on a started worker of this
    process that serves its type, waiting while there is none. ``per_batch``: a
    first-batch node, called on each batch of its upstream node."""

    type: str
    task_id: str
    params: dict[str, Any]
    node: str = ""
    per_batch: bool = False

    async def __call__(self, loaded: Any) -> Any:
        worker = await self.worker()
        ctx = RunContext(self.task_id, self.node, worker.worker_id, self.params)
        if self.per_batch:
            return await worker.run_batch(self.type, loaded, ctx)
        return await worker.run_node(self.type, loaded, ctx)

    async def worker(self) -> Worker:
        """A started worker of this process serving this node's type: it waits while
        there is none, as long as some worker of the process is started (a process with
        none, such as ``riverbed runs resume`` from a shell, could wait for ever)."""
        while True:
            with _serving_lock:
                workers = list(_serving.get(self.type, ()))
                others = any(_serving.values())
            if workers:
                return workers[hash(self.task_id) % len(workers)]
            if not others:
                raise RuntimeError(
                    f"task {self.task_id}, node {self.node!r}: no FlowKit Worker is started "
                    f"in this process to serve type {self.type!r}; a task's nodes run on the "
                    "workers of the process that claimed it: start a Worker serving it"
                )
            await asyncio.sleep(0.05)


@dataclass(frozen=True, eq=False)
class _RoleStream(_RoleCall):
    """The handler of a node that first-batch nodes read: yields each of its batches once
    processed, so that they start on the first (its output is the list of batches)."""

    async def __call__(self, loaded: Any) -> Any:
        worker = await self.worker()
        ctx = RunContext(self.task_id, self.node, worker.worker_id, self.params)
        async for batch, _ in worker.stream_node(self.type, loaded, ctx):
            yield batch


def _open(db: Any) -> rb.Store:
    if isinstance(db, str):
        return rb.open_store(db)
    if isinstance(db, rb.Store):
        return db
    raise TypeError(f"db must be a riverbed Store or a store URL, got {type(db).__name__}")


def _batch_result(value: Any) -> BatchResult:
    """``process_batch``'s return as a ``BatchResult``."""
    if isinstance(value, BatchResult):
        return value
    if isinstance(value, bool):
        return BatchResult(value)
    if isinstance(value, tuple) and len(value) == 2:
        return BatchResult(bool(value[0]), dict(value[1] or {}))
    if isinstance(value, Mapping):
        return BatchResult(bool(value.get("success", True)), dict(value.get("metrics", value)))
    if value is None:
        return BatchResult()
    raise TypeError(f"process_batch returned {value!r:.80}; return a BatchResult or a bool")


async def _call(handler: Any, argument: Any) -> Any:
    """A plain callable's result: awaited if async, else called in a thread."""
    if inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
        getattr(handler, "__call__", None)  # noqa: B004 - the method itself
    ):
        return await handler(argument)
    return await asyncio.to_thread(handler, argument)


async def _aiter(batches: Any) -> Any:
    """The batches of ``iter_batches``: an async iterator, or a plain iterable."""
    if hasattr(batches, "__aiter__"):
        async for batch in batches:
            yield batch
    else:
        for batch in await batches if inspect.isawaitable(batches) else batches:
            yield batch
