"""A FlowKit graph as ``rb.workflow_from_graph``'s spec: checked, with errors that name
the bad node or edge."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import riverbed as rb

__all__ = ["first_batch_consumers", "is_type_name", "to_graph_spec"]

_NODE_KEYS = frozenset({"node_id", "type", "depends_on", "fan_in", "retry_policy", "io"})
_IO_KEYS = frozenset({"input_inline", "start_when"})


def to_graph_spec(graph: Mapping[str, Any], name: str = "flowkit-task") -> dict[str, Any]:
    """The ``rb.workflow_from_graph`` spec of a FlowKit graph (checked; errors name the
    bad node or edge)."""
    nodes: list[dict[str, Any]] = []
    edges: list[list[str]] = []
    for index, raw in enumerate(graph.get("nodes", ())):
        node_id = raw.get("node_id") if isinstance(raw, Mapping) else None
        if not isinstance(node_id, str):
            raise rb.FlowDefinitionError(f"node #{index} has no 'node_id' string: {raw!r:.80}")
        nodes.append(_node(node_id, raw))
        edges += [[str(upstream), node_id] for upstream in raw.get("depends_on") or ()]
    for edge in graph.get("edges", ()):
        if list(edge) not in edges:
            edges.append(list(edge))
    return {"name": name, "nodes": nodes, "edges": edges}


def is_type_name(value: Any) -> bool:
    """Whether ``value`` can be a node type (a worker role, which names a queue): a
    non-empty string without spaces."""
    return isinstance(value, str) and bool(value) and not any(c.isspace() for c in value)


def _node(node_id: str, raw: Mapping[str, Any]) -> dict[str, Any]:
    """One FlowKit node as a graph spec's node."""
    unknown = set(raw) - _NODE_KEYS
    io = raw.get("io") or {}
    unknown |= {f"io.{key}" for key in set(io) - _IO_KEYS}
    if unknown:
        raise rb.FlowDefinitionError(
            f"node {node_id!r} has unknown key(s) {sorted(unknown)}; a FlowKit node takes "
            f"{sorted(_NODE_KEYS)} and io {sorted(_IO_KEYS)}",
            stage=node_id,
        )
    kind = raw.get("type")
    if not is_type_name(kind):
        raise rb.FlowDefinitionError(
            f"node {node_id!r} needs a 'type' (the role of the workers that run it), a "
            f"non-empty string without spaces; got {kind!r:.80}",
            stage=node_id,
        )
    node: dict[str, Any] = {"id": node_id, "type": kind}
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
    return node


def first_batch_consumers(spec: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """For each node that first-batch nodes read, those nodes (in node order)."""
    by_id = {node["id"]: node for node in spec["nodes"]}
    consumers: dict[str, list[dict[str, Any]]] = {}
    for source, target in spec["edges"]:
        node = by_id.get(target)
        if node is not None and node.get("start") == "first_batch" and source in by_id:
            consumers.setdefault(source, []).append(node)
    return consumers
