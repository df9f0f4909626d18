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
  ``io.input_inline`` -> inline input). ``create_task`` queues it (``rb.schedule``) in
  the queue ``flowkit-tasks``; a started coordinator claims it and runs it, and its id is
  the run's id (``riverbed runs list`` / ``show``; each node is a recorded step).
- Each node's step is on the queue of its type (``flowkit-role:TYPE``): riverbed runs it
  as a step run of its own (id ``TASK.NODE.N``, its ``parent`` the task), which only the
  workers serving that type claim, wherever they run; the coordinator waits for it and
  records its output. A node whose type no worker serves waits in its queue until one
  starts.
- Failure detection is riverbed's lease, for both sides: a worker that dies stops
  renewing its step run's lease, and once it expires another worker serving the type
  runs the node again; a coordinator that dies has its task taken over by another, which
  replays the nodes already recorded and waits for the step runs in flight (each node is
  recorded exactly once, and run again only if its worker died while running it).
- A handler is an object with ``async iter_batches(loaded)`` (yielding batches) and
  ``async process_batch(batch, ctx)`` (returning ``BatchResult``, a bool, a
  ``(success, metrics)`` pair or a metrics dict), or a plain callable ``fn(loaded)``.
  ``loaded`` is the node's ``input_inline`` for a node without dependencies, else a dict
  of its upstream nodes' outputs by node id (with ``input_inline`` under ``"input"``). A
  handler node's output is the list of its batches' metrics.
- ``io.start_when: "first_batch"`` (streaming between stages): the node's
  ``process_batch`` is called on each batch of its one upstream node as soon as that
  batch is processed, in the upstream node's step, so on the worker that runs it (which
  must serve the first-batch node's type too); the upstream node's output is then the
  list of its batches, and the first-batch node's the list of its batches' metrics. Both
  stay recorded steps (see ``rb.workflow_from_graph``).

Where riverbed differs from FlowKit, on purpose: a batch whose ``process_batch`` reports
failure fails the node (then its ``retry_policy`` applies) rather than being dropped
silently; ``retry_policy.max`` counts every attempt, the first included. Handlers are the
workers' own objects: workers run their nodes on the local runner, in their process
(``RIVERBED_RUNNER`` does not move them to Ray; start workers on the machines instead).
"""

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
    "task_flow",
    "to_graph_spec",
]
