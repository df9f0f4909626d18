"""How a task's nodes reach the workers that serve their types: through the store's run
queue, which is FlowKit's message bus here.

Each node of a task is a run of its own (a "node run") in the queue named after the
node's type (``flowkit-role:TYPE``), which only the workers serving that type claim. The
task's step for the node puts the node run into that queue and waits for it to end; its
output is the node's output, recorded as the task's step. Ids are derived from the task
and node (``TASK.NODE.N``, N counting the step's attempts), so a coordinator that takes
over a task whose previous coordinator died finds the node runs already queued or done
and waits for them, or takes their outputs, instead of running them again. A worker that
dies while running a node stops renewing the node run's lease; once it expires another
worker serving the type claims it and runs the node again.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import pickle
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import riverbed as rb
from riverbed.compat.flowkit.handlers import RunContext, run_batch, run_node, stream_node

__all__ = [
    "NODE_FLOW",
    "TASK_QUEUE",
    "Loops",
    "NodeCall",
    "dispatch",
    "node_flow",
    "register",
    "role_queue",
    "serve",
]

TASK_QUEUE = "flowkit-tasks"
"""The queue of tasks: coordinators claim them and schedule their nodes."""
NODE_FLOW = "flowkit-node"
"""The flow name of node runs (``riverbed runs list --flow flowkit-node``)."""
NODE_TARGET = "riverbed.compat.flowkit:node_flow"
POLL_SECONDS = (0.02, 1.0)
"""Seconds between two looks at a node run that is being waited for: the first wait, and
the longest (the wait grows by half each time, so a long node costs few queries)."""


def role_queue(role: str) -> str:
    """The queue of the node runs of type ``role``."""
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
            register(self.store, True)
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
        if self.store is not None:
            register(self.store, False)
            if self.store is not self.db:
                self.store.close()
        self.store = None


# The stores of this process's started coordinators and workers, by URL: a task's steps
# and a streaming node find their store there (elsewhere, such as `riverbed runs resume`
# in a shell, they open it from its URL).
_stores: dict[str, list[rb.Store]] = {}
_opened: dict[str, rb.Store] = {}
# The started workers of this process serving each type.
_serving: dict[str, list[Any]] = {}
_lock = threading.Lock()


def register(store: rb.Store, on: bool) -> None:
    """Add ``store`` to (or remove it from) this process's started stores."""
    with _lock:
        stores = _stores.setdefault(store.url, [])
        if on:
            stores.append(store)
        elif store in stores:
            stores.remove(store)


def store_for(url: str) -> rb.Store:
    """A store of this process at ``url``: a started component's, else one opened here."""
    with _lock:
        if _stores.get(url):
            return _stores[url][0]
        if url not in _opened:
            _opened[url] = rb.open_store(url)
        return _opened[url]


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


@dataclass(frozen=True, eq=False)  # hashed by identity: its params are a dict
class NodeCall:
    """One node run: which node of which task, of which type, and how it runs: ``node``
    (the node on its input), ``batch`` (a first-batch node on one batch) or ``stream``
    (a node whose batches first-batch nodes read: each batch goes to them as soon as it
    is processed)."""

    store: str
    task_id: str
    node: str
    type: str
    params: dict[str, Any]
    mode: str = "node"
    consumers: tuple[tuple[str, str], ...] = ()
    """With ``stream``: the (node, type) of the first-batch nodes it feeds."""
    run_id: str = ""
    """The node run's id, once queued."""

    def arguments(self) -> dict[str, Any]:
        """The node run's params: ``node_flow``'s keyword arguments, as JSON."""
        return {
            "store": self.store,
            "task_id": self.task_id,
            "node": self.node,
            "type": self.type,
            "params": self.params,
            "mode": self.mode,
            "consumers": [list(consumer) for consumer in self.consumers],
            "run_id": self.run_id,
        }


def node_flow(
    store: str,
    task_id: str,
    node: str,
    type: str,
    params: dict[str, Any],
    mode: str = "node",
    consumers: Sequence[Sequence[str]] = (),
    run_id: str = "",
) -> rb.Flow:
    """The flow of a node run (a run's target: the worker that claims it builds it): one
    step, the node, run with a handler of the worker serving its type."""
    call = NodeCall(
        store,
        task_id,
        node,
        type,
        dict(params),
        mode,
        tuple((c[0], c[1]) for c in consumers),
        run_id,
    )
    spec = {"name": NODE_FLOW, "nodes": [{"id": node, "type": "node"}], "edges": []}
    return rb.workflow_from_graph(spec, {"node": _NodeWork(call)})


class NodeFailedError(RuntimeError):
    """A node run failed (after its worker's attempt) or was cancelled."""


async def dispatch(call: NodeCall, loaded: Any, base: str) -> Any:
    """Run ``call`` on ``loaded`` on a worker serving its type, through the queue: its
    output. The node run's id is ``base.N``: the first N whose run is not an earlier
    attempt's failure, so that a step retried queues a new run and a step resumed finds
    the one it had queued (waiting for it, or taking its output)."""
    if not call.store:
        raise NodeFailedError(
            f"task {call.task_id}, node {call.node!r}: a FlowKit task's nodes go to their "
            "workers through a store's queue; create the task with Coordinator.create_task "
            "(or give task_flow the store's URL)"
        )
    store = store_for(call.store)
    number = 1
    while True:
        run_id = f"{base}.{number}"
        record = await asyncio.to_thread(_find, store, run_id)
        if record is None:
            queued = dataclasses.replace(call, run_id=run_id)
            await asyncio.to_thread(_enqueue, store, queued, loaded)
        elif record.status in (rb.RunStatus.FAILED, rb.RunStatus.CANCELLED):
            number += 1  # an earlier attempt's: this attempt queues its own
            continue
        return await _outcome(store, call, run_id)


def _find(store: rb.Store, run_id: str) -> rb.RunRecord | None:
    try:
        return store.get_run(run_id)
    except rb.RunNotFoundError:
        return None


def _enqueue(store: rb.Store, call: NodeCall, loaded: Any) -> None:
    """Queue ``call``'s node run (unless a previous holder of the task just did)."""
    # A coordinator that held the task before may have queued it: waited for the same.
    with contextlib.suppress(rb.DuplicateRunError):
        rb.schedule(
            NODE_TARGET,
            loaded,
            store=store,
            params=call.arguments(),
            queue=role_queue(call.type),
            run_id=call.run_id,
        )


async def _outcome(store: rb.Store, call: NodeCall, run_id: str) -> Any:
    """Wait for node run ``run_id`` to end: its output, or ``NodeFailedError``. If the
    task is cancelled meanwhile, the node run is cancelled too."""
    wait, longest = POLL_SECONDS
    while True:
        record = await asyncio.to_thread(store.get_run, run_id)
        if record.status is rb.RunStatus.SUCCEEDED:
            assert record.output is not None
            return pickle.loads(record.output)[0]
        if record.status.ended:
            error = record.error
            why = f"{error.error_type}: {error.message}" if error else record.status.value
            raise NodeFailedError(f"node run {run_id} ({record.worker or 'no worker'}): {why}")
        task = await asyncio.to_thread(store.get_run, call.task_id)
        if task.status is rb.RunStatus.CANCELLED:
            await asyncio.to_thread(_cancel, store, run_id)
            raise NodeFailedError(f"task {call.task_id} was cancelled")
        await asyncio.sleep(wait)
        wait = min(wait * 1.5, longest)


def _cancel(store: rb.Store, run_id: str) -> None:
    with contextlib.suppress(rb.InvalidTransitionError):  # unless it ended meanwhile
        store.transition(run_id, rb.RunStatus.CANCELLED, ended_at=datetime.now(UTC))


@dataclass(frozen=True, eq=False)
class _NodeWork:
    """The step of a node run: the node's handler, of a worker of this process serving
    its type (the process claimed the run from that type's queue)."""

    call: NodeCall

    async def __call__(self, loaded: Any) -> Any:
        call = self.call
        worker = serving(call.type, call.task_id)
        if worker is None:
            raise NodeFailedError(
                f"node run {call.run_id}: no FlowKit Worker of this process serves type "
                f"{call.type!r} any more"
            )
        ctx = RunContext(call.task_id, call.node, worker.worker_id, call.params)
        handler = worker.handlers[call.type]
        if call.mode == "batch":
            return await run_batch(handler, loaded, ctx)
        if call.mode == "node":
            return await run_node(handler, loaded, ctx)
        return await self._stream(handler, loaded, ctx)

    async def _stream(self, handler: Any, loaded: Any, ctx: RunContext) -> dict[str, Any]:
        """Run the node, and each first-batch node it feeds on each batch as soon as the
        batch is processed (on a worker serving that node's type): the batches, and the
        first-batch nodes' results by node."""
        call = self.call
        batches: list[Any] = []
        results: dict[str, list[Any]] = {node: [] for node, _ in call.consumers}
        async for batch, _ in stream_node(handler, loaded, ctx):
            batches.append(batch)
            for node, kind in call.consumers:
                fed = NodeCall(call.store, call.task_id, node, kind, call.params, "batch")
                base = f"{call.run_id}.{node}.{len(batches)}"
                results[node].append(await dispatch(fed, batch, base))
        return {"batches": batches, "results": results}
