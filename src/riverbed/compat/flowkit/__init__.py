"""FlowKit's API on riverbed: a coordinator creates tasks (DAG graphs of typed nodes) and
schedules their nodes; workers that declare roles run the nodes of the types they serve,
in whatever process or machine they are.

    from riverbed.compat.flowkit import Coordinator, CoordinatorConfig, Worker, WorkerConfig

    coordinator = Coordinator(db="sqlite:///runs.db", cfg=CoordinatorConfig())
    await coordinator.start()
    worker = Worker(db="sqlite:///runs.db", cfg=WorkerConfig(roles=["processor"]),
                    handlers={"processor": MyHandler()})
    await worker.start()
    task_id = await coordinator.create_task(params={}, graph=graph)

How it maps (docs/compat.md, "FlowKit"):

- MongoDB and Kafka are riverbed's store (``db``: a ``riverbed.Store`` or its URL; SQLite
  or PostgreSQL): its run queue is the message bus, its run records the task state.
- A task is a riverbed workflow run built from its graph by ``rb.workflow_from_graph``
  (``node_id`` -> ``id``, ``depends_on`` and ``edges`` -> edges, ``fan_in`` as is,
  ``retry_policy`` -> ``rb.Retry(attempts=max, backoff=backoff_sec)``,
  ``io.input_inline`` -> inline input). ``create_task`` puts it into the queue
  ``flowkit-tasks``; a started coordinator claims it and runs it, and its id is the
  run's id (``riverbed runs list`` / ``show``; each node is a recorded step).
- Each node goes to a worker serving its ``type`` through the queue: the task's step for
  the node queues a node run (flow ``flowkit-node``, id ``TASK.NODE.N``) in the queue
  ``flowkit-role:TYPE``, which only the workers serving that type claim, and records its
  output (see ``riverbed.compat.flowkit.bus``). A node whose type no worker serves waits
  in the queue until one starts.
- Failure detection is riverbed's lease, for both sides: a worker that dies stops
  renewing its node run's lease, and once it expires another worker serving the type
  runs the node again; a coordinator that dies has its task taken over by another, which
  replays the nodes already recorded and waits for the node runs in flight (each node is
  recorded exactly once, and run again only if its worker died while running it).
- A handler is an object with ``async iter_batches(loaded)`` (yielding batches) and
  ``async process_batch(batch, ctx)`` (returning ``BatchResult``, a bool, a
  ``(success, metrics)`` pair or a metrics dict), or a plain callable ``fn(loaded)``.
  ``loaded`` is the node's ``input_inline`` for a node without dependencies, else a dict
  of its upstream nodes' outputs by node id (with ``input_inline`` under ``"input"``). A
  handler node's output is the list of its batches' metrics.
- ``io.start_when: "first_batch"`` (streaming between stages): each batch of its one
  upstream node goes, as soon as the upstream's worker processed it, to a worker serving
  the first-batch node (a node run of its own per batch); the upstream node's output is
  then the list of its batches, and the first-batch node's the list of its batches'
  metrics. Both stay recorded steps (see ``rb.workflow_from_graph``).

A task records its store's URL as the store keeps it, without a password: a process
with no coordinator or worker started on that store (``riverbed runs resume TASK`` in a
shell) opens it from that URL, so give PostgreSQL's password there through
``PGPASSWORD`` or ``~/.pgpass``.

Where riverbed differs from FlowKit, on purpose: a batch whose ``process_batch`` reports
failure fails the node (then its ``retry_policy`` applies) rather than being dropped
silently; ``retry_policy.max`` counts every attempt, the first included. Handlers are the
workers' own objects: workers run their nodes on the local runner, in their process
(``RIVERBED_RUNNER`` does not move them to Ray; start workers on the machines instead).
"""

from riverbed.compat.flowkit.bus import node_flow
from riverbed.compat.flowkit.coordinator import Coordinator, CoordinatorConfig, task_flow
from riverbed.compat.flowkit.graph import to_graph_spec
from riverbed.compat.flowkit.handlers import BatchResult, RunContext
from riverbed.compat.flowkit.worker import Worker, WorkerConfig

__all__ = [
    "BatchResult",
    "Coordinator",
    "CoordinatorConfig",
    "RunContext",
    "Worker",
    "WorkerConfig",
    "node_flow",
    "task_flow",
    "to_graph_spec",
]
