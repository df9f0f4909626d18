"""``framework``'s API on riverbed: match-routed processors, phases, reactive builders.

Change ``from framework.core import ...`` / ``from framework.reactive import ...`` to
``from riverbed.compat.framework import ...`` and the code runs on riverbed (docs/compat.md).
The names map onto riverbed's native forms; nothing here routes, joins or caches by itself:

- processors (``AbstractProcessor``) are the handlers of one ``Stream.dispatch`` stage:
  routed by the ``case`` patterns of ``process``'s ``match``, what they ``submit`` routed the
  same way, ``priority`` lower first, ``__PHASE__`` at each end of phase and ``__POISON__``
  at shutdown (delivered to every processor: one without a ``case`` for them ignores them);
- reactive builders (``ReactiveBuilder`` and the utilities) are ``rb.Builder`` stages that
  ``Flow.resolve`` wires from each submitted ``ReactiveEvent(name="resolve", target=...)``;
  every artifact reaches the processors as ``ReactiveEvent(name="built", ...)``;
- ``Collector``, ``Grouper``, ``StreamGrouper``, ``StreamSampler``, ``ReservoirSampler``,
  ``make_rendezvous`` and ``make_load_balancer`` are riverbed's ``group``, ``sample``,
  ``reservoir``, ``rendezvous`` (``rb.WaitForever`` / ``rb.MaxPending``) and ordered
  ``parallel_map`` (``gap="wait"`` / ``"skip"``) stages.

Where riverbed differs, on purpose:

- a builder's artifacts flow to the builders that require them inside the flow; a
  ``resolve`` that a processor submits while the pipeline runs is seen by processors but
  starts no builder (resolve before ``run()``);
- processors of one pipeline run one at a time, in one stage (framework runs different
  processors on ``max_workers`` threads): processors hold state without locks, and a
  checkpoint sees them between events. Parallelism is ``make_load_balancer``'s, on threads;
- rendezvous keys go through riverbed's stable hash, never Python's ``hash``,
  which is salted per process and would send one key to different places;
- ``workspace=`` keeps the runs, checkpoints and persisted artifacts in a riverbed store
  (SQLite in that directory) instead of RocksDB archives.
"""

from __future__ import annotations

from riverbed.compat.framework.builders import (
    Collector,
    Grouper,
    LoadBalancer,
    LoadBalancerCollector,
    MaxPendingRendezvousKeys,
    ReactiveBuilder,
    RendezvousPublisher,
    RendezvousReceiver,
    ReservoirSampler,
    SkipAheadOnBacklog,
    StreamGrouper,
    StreamSampler,
    WaitForRendezvousOrphans,
    WaitForSequenceGaps,
    make_load_balancer,
    make_rendezvous,
    parallelize,
)
from riverbed.compat.framework.decorators import caching, retry, timeit
from riverbed.compat.framework.pipeline import Pipeline
from riverbed.compat.framework.processors import (
    AbstractProcessor,
    Context,
    Event,
    ReactiveEvent,
)

__all__ = [
    "AbstractProcessor",
    "Collector",
    "Context",
    "Event",
    "Grouper",
    "LoadBalancer",
    "LoadBalancerCollector",
    "MaxPendingRendezvousKeys",
    "Pipeline",
    "ReactiveBuilder",
    "ReactiveEvent",
    "RendezvousPublisher",
    "RendezvousReceiver",
    "ReservoirSampler",
    "SkipAheadOnBacklog",
    "StreamGrouper",
    "StreamSampler",
    "WaitForRendezvousOrphans",
    "WaitForSequenceGaps",
    "caching",
    "make_load_balancer",
    "make_rendezvous",
    "parallelize",
    "retry",
    "timeit",
]
