"""REFlow's API on riverbed: flows of plain-Python stages deployed to a cluster of engines.

A REFlow flow is a graph of stages: an ``EventSource`` whose producer function returns up
to ``limit`` events per call, ``EventTransformer`` stages whose function returns a list of
events per event (``[]`` filters, several split), and an ``EventSink`` whose consumer
returns how many events of a batch it consumed. ``send_to`` wires a stage to the next, by a
routing policy; ``FlowCluster`` deploys the graph to its engines. Here the graph becomes an
``rb.Flow`` (``to_flow``) and the engines a riverbed runner (docs/compat.md)::

    REFlow                                 riverbed
    EventSource + producer_fn              rb.Producer(fn, state=init_fn, partitions=workers)
    EventTransformer + transform_fn        flat_map; with init_fn, key_by(worker).stateful
    EventSink + consumer_fn                a batch sink returning how many it consumed
    KeyBasedRoutingPolicy(key_fn)          the worker of rb.stable_hash(key_fn(event))
    engines 'tcp://...', 'ipc://...'       the local runner (one process; workers are lanes)
    engines 'ray', 'auto', 'ray://...'     rb.RayRunner, each stage with its workers as actors

A stage with ``init_fn`` has one state per worker, as in REFlow: a transformer's worker
keeps its state across events (checkpointed with the run), and each source worker has its
own producer state. ``max_workers=0`` means one worker per engine; ``n`` means at most
``n``. Every event is routed to one worker of each downstream stage.
"""

from __future__ import annotations

from riverbed.compat.reflow.cluster import FlowCluster
from riverbed.compat.reflow.graph import to_flow
from riverbed.compat.reflow.stages import (
    EndOfStreamException,
    EventSink,
    EventSource,
    EventTransformer,
    FlowStage,
    KeyBasedRoutingPolicy,
    LoadBalancedRoutingPolicy,
    LocalRoutingPolicy,
    RoutingPolicy,
    flow_connector_factory,
)

__all__ = [
    "EndOfStreamException",
    "EventSink",
    "EventSource",
    "EventTransformer",
    "FlowCluster",
    "FlowStage",
    "KeyBasedRoutingPolicy",
    "LoadBalancedRoutingPolicy",
    "LocalRoutingPolicy",
    "RoutingPolicy",
    "flow_connector_factory",
    "to_flow",
]
