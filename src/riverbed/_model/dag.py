"""Workflows from a graph given as data: ``riverbed.workflow_from_graph(spec, handlers)``.

A spec is a dict (or its JSON text) of ``nodes`` and ``edges``::

    {"name": "etl",
     "nodes": [{"id": "extract", "type": "fetch", "input": {"url": "..."}},
               {"id": "clean", "type": "clean"},
               {"id": "report", "type": "report", "fan_in": "any"}],
     "edges": [["extract", "clean"], ["extract", "report"], ["clean", "report"]]}

Each node becomes one step of an ordinary workflow (``flow.input()`` ... ``.output()``):
a stage named by the node's id, whose function is the handler registered for its
``type``. What a handler is called with:

- a node with no incoming edge: its inline ``input`` if it has one, else the run's input;
- a node with incoming edges: a dict of the outputs of its upstream nodes, by node id
  (and its inline ``input`` under the key ``"input"``, a name no node can have).

``fan_in`` says when a node with several upstream nodes starts: ``"all"`` (the default:
once every one of them has finished), ``"any"`` (on the first to finish; the later ones
are ignored, and counted in the node's stage run as ``skipped``) or ``"count:N"`` (once N
have finished; the dict holds those N). The workflow's output is the list of the outputs
of the nodes nothing reads from (``result.outputs["output"]``, in node order).

``"start": "first_batch"`` on a node below a node whose handler yields batches (a
generator function) streams them to it: see ``riverbed._model.streamed``.

Independent branches run at once (see ``riverbed._runtime.workflow``): a synchronous
handler is called in a thread so that it does not hold up the others; an ``async`` one is
awaited. This module only checks and builds; it runs nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from riverbed._errors import FlowDefinitionError
from riverbed._model import streamed
from riverbed._model.flow import Flow
from riverbed._model.policy import OnError, Retry
from riverbed._model.settings import check_step_queue
from riverbed._model.stages import Port, SinkMode, SinkStage, Stage, StageKind
from riverbed._model.workflow import WorkflowOutput

__all__ = ["FanIn", "GraphNode", "workflow_from_graph"]

_NODE_KEYS = frozenset(
    {"id", "type", "input", "fan_in", "start", "retry", "on_error", "timeout", "queue"}
)
_RESERVED = frozenset({"input", "output"})
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")


class _NoInput:
    """The type of ``NO_INPUT``: a node without an inline input (None is an input)."""

    def __repr__(self) -> str:
        return "NO_INPUT"

    def __reduce__(self) -> str:
        return "NO_INPUT"  # pickled by name: one sentinel in every process (Ray's too)


NO_INPUT: Any = _NoInput()


@dataclass(frozen=True)
class FanIn:
    """When a node with several upstream nodes starts: after ``count`` of them finished
    (``None``: all of them). Parsed from ``"all"``, ``"any"`` or ``"count:N"``.

    >>> FanIn.parse("count:2", node="join", upstream=3)
    FanIn(mode='count', count=2)
    """

    mode: str = "all"
    count: int | None = None

    @classmethod
    def parse(cls, text: Any, *, node: str, upstream: int) -> FanIn:
        """The fan-in ``text`` names, checked against the node's ``upstream`` count."""
        if text is None or text == "all":
            return cls()
        if text == "any":
            return cls("any", 1)
        if isinstance(text, str) and text.startswith("count:"):
            number = text.removeprefix("count:")
            if number.isdigit() and 1 <= int(number) <= max(upstream, 1):
                return cls("count", int(number))
            raise FlowDefinitionError(
                f"node {node!r}: fan_in {text!r} needs N between 1 and its {upstream} "
                "upstream node(s)",
                stage=node,
            )
        raise FlowDefinitionError(
            f"node {node!r}: fan_in must be 'all', 'any' or 'count:N', got {text!r}", stage=node
        )

    def needed(self, upstream: int) -> int:
        """How many of ``upstream`` nodes must finish before the node starts."""
        return upstream if self.count is None else self.count


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: inputs may be dicts
class GraphNode:
    """The function of a graph node's stage: calls the node's handler with what the node
    loads (see the module). The workflow runner reads ``upstream`` and ``fan_in`` to know
    when the node may start and gives it one event: the dict of the upstream outputs it
    takes (a root node gets the run's input)."""

    node: str
    type: str
    handler: Any
    upstream: tuple[str, ...] = ()
    fan_in: FanIn = field(default_factory=FanIn)
    inline: Any = NO_INPUT
    streams_to: tuple[tuple[str, Any], ...] = ()
    """The first-batch nodes it streams its batches to: (node id, handler) pairs."""
    streamed: bool = False
    """A first-batch node: its results were made in its upstream node's step."""

    async def __call__(self, event: Any) -> Any:
        """The handler's result for ``event``; a synchronous handler runs in a thread, so
        that independent branches of the workflow overlap."""
        if self.streamed:
            (made,) = event.values()
            return made.results[self.node]
        if not self.upstream:
            argument = event if self.inline is NO_INPUT else self.inline
        else:
            argument = {node: streamed.batches_of(output) for node, output in event.items()}
            if self.inline is not NO_INPUT:
                argument["input"] = self.inline
        if streamed.is_streaming(self.handler):
            return await streamed.stream(self.handler, argument, self.streams_to)
        return await streamed.call(self.handler, argument)


def graph_node(stage: Stage) -> GraphNode | None:
    """The ``GraphNode`` behind ``stage``, if it is a graph node with upstream nodes."""
    fn = stage.fn
    return fn if isinstance(fn, GraphNode) and fn.upstream else None


def workflow_from_graph(
    spec: Mapping[str, Any] | str,
    handlers: Mapping[str, Any],
    *,
    name: str | None = None,
) -> Flow:
    """A workflow built from the graph ``spec`` (a dict, or its JSON text), each node's
    handler looked up by its ``type`` in ``handlers``; run it with ``rb.run(flow, input)``.

    ``spec``: ``{"name": ..., "nodes": [...], "edges": [[source, target], ...]}``; a node
    has an ``id``, a ``type``, and optionally an inline ``input``, ``fan_in`` (``"all"``,
    ``"any"``, ``"count:N"``), ``start`` (``"ready"``, ``"first_batch"``), ``retry``,
    ``on_error`` and ``timeout``. A root node's handler gets its inline input (else the
    run's input); another node's gets a dict of its upstream nodes' outputs by id.
    Independent branches run at once; every node is a recorded step (docs/workflows.md,
    "Graphs as data"). Raises ``FlowDefinitionError`` naming the bad node or edge.

    >>> graph = {"nodes": [{"id": "a", "type": "inc"}, {"id": "b", "type": "inc"}],
    ...          "edges": [["a", "b"]]}
    >>> flow = workflow_from_graph(graph, {"inc": lambda x: x["a"] + 1 if "a" in x else x + 1})
    >>> import riverbed as rb; rb.run(flow, 1, store=False).output
    3
    """
    data = _load(spec)
    flow_name = name or data.get("name") or "graph"
    nodes = _nodes(data.get("nodes"), handlers)
    upstream = _edges(data.get("edges", []), nodes)
    flow = Flow(flow_name)
    start = flow.input()
    read_from: set[str] = set()
    streams = _streams(nodes, upstream, handlers)
    for node_id in _order(nodes, upstream):
        node, ups = nodes[node_id], upstream[node_id]
        read_from.update(ups)
        fn = GraphNode(
            node=node_id,
            type=node["type"],
            handler=handlers[node["type"]],
            upstream=tuple(ups),
            fan_in=FanIn.parse(node.get("fan_in"), node=node_id, upstream=len(ups)),
            inline=node.get("input", NO_INPUT),
            streams_to=tuple(
                (reader, handlers[nodes[reader]["type"]]) for reader in streams.get(node_id, ())
            ),
            streamed=node.get("start") == "first_batch",
        )
        if node.get("start") == "first_batch" and node.get("queue") is not None:
            raise FlowDefinitionError(
                f"node {node_id!r} starts on the first batch of {ups[0]!r}: its handler runs "
                f"inside that node's step, on that node's queue; give the queue to {ups[0]!r}",
                stage=node_id,
            )
        inputs = tuple(Port(up) for up in ups) or (start.port,)
        flow.add_stage(Stage(node_id, StageKind.MAP, inputs, fn, **_policy(node)))
    leaves = [Port(node_id) for node_id in nodes if node_id not in read_from]
    flow.add_stage(
        SinkStage(
            "output",
            StageKind.SINK,
            tuple(leaves),
            WorkflowOutput(),
            outputs=(),
            sink_mode=SinkMode.OBJECT,
        )
    )
    return flow


def _load(spec: Mapping[str, Any] | str) -> Mapping[str, Any]:
    if isinstance(spec, str):
        try:
            spec = json.loads(spec)
        except json.JSONDecodeError as error:
            raise FlowDefinitionError(f"the graph is not valid JSON: {error}") from error
    if not isinstance(spec, Mapping):
        raise FlowDefinitionError(
            f"a graph is a dict with 'nodes' and 'edges', got {type(spec).__name__}"
        )
    return spec


def _nodes(raw: Any, handlers: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The nodes by id, each checked: a valid, unique id; a known type."""
    if not isinstance(raw, Sequence) or isinstance(raw, str) or not raw:
        raise FlowDefinitionError("a graph needs 'nodes': a non-empty list of node dicts")
    nodes: dict[str, Mapping[str, Any]] = {}
    for index, node in enumerate(raw):
        if not isinstance(node, Mapping):
            raise FlowDefinitionError(f"node #{index} is not a dict: {node!r:.60}")
        node_id = node.get("id")
        where = f"node #{index} ({node_id!r})"
        if not isinstance(node_id, str) or not node_id or not set(node_id) <= _ID_CHARS:
            raise FlowDefinitionError(
                f"{where}: 'id' must be a non-empty string of letters, digits, '_', '-', '.'"
            )
        if node_id in _RESERVED:
            raise FlowDefinitionError(
                f"node {node_id!r}: that id names the workflow's own input or output; "
                "choose another",
                stage=node_id,
            )
        if node_id in nodes:
            raise FlowDefinitionError(f"node {node_id!r} is defined twice", stage=node_id)
        unknown = set(node) - _NODE_KEYS
        if unknown:
            raise FlowDefinitionError(
                f"node {node_id!r} has unknown key(s) {sorted(unknown)}; a node takes "
                f"{sorted(_NODE_KEYS)}",
                stage=node_id,
            )
        kind = node.get("type")
        if not isinstance(kind, str) or kind not in handlers:
            known = ", ".join(sorted(map(repr, handlers))) or "none"
            raise FlowDefinitionError(
                f"node {node_id!r} has type {kind!r}, for which no handler is registered "
                f"(registered: {known})",
                stage=node_id,
            )
        if not callable(handlers[kind]):
            raise FlowDefinitionError(
                f"node {node_id!r}: the handler of type {kind!r} is not callable",
                stage=node_id,
            )
        nodes[node_id] = node
    return nodes


def _edges(raw: Any, nodes: Mapping[str, Any]) -> dict[str, list[str]]:
    """Each node's upstream nodes, in edge order, after checking every edge."""
    upstream: dict[str, list[str]] = {node_id: [] for node_id in nodes}
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        raise FlowDefinitionError("a graph's 'edges' is a list of [source, target] pairs")
    for index, edge in enumerate(raw):
        pair = list(edge) if isinstance(edge, Sequence) and not isinstance(edge, str) else []
        if len(pair) != 2:
            raise FlowDefinitionError(f"edge #{index} {edge!r}: an edge is [source, target]")
        source, target = pair
        for end in (source, target):
            if end not in nodes:
                raise FlowDefinitionError(
                    f"edge #{index} {[source, target]!r} names {end!r}, which is not a node"
                )
        if source == target:
            raise FlowDefinitionError(f"edge #{index}: node {source!r} points at itself")
        if source in upstream[target]:
            raise FlowDefinitionError(f"edge #{index} {[source, target]!r} is given twice")
        upstream[target].append(source)
    return upstream


def _streams(
    nodes: Mapping[str, Mapping[str, Any]],
    upstream: Mapping[str, list[str]],
    handlers: Mapping[str, Any],
) -> dict[str, list[str]]:
    """For each node, the first-batch nodes it streams to, after checking each: one
    upstream node, whose handler yields batches, and no fan-in of its own."""
    streams: dict[str, list[str]] = {}
    for node_id, node in nodes.items():
        start = node.get("start", "ready")
        if start == "ready":
            continue
        if start != "first_batch":
            raise FlowDefinitionError(
                f"node {node_id!r}: start must be 'ready' or 'first_batch', got {start!r}",
                stage=node_id,
            )
        ups = upstream[node_id]
        if len(ups) != 1 or node.get("fan_in", "all") != "all":
            raise FlowDefinitionError(
                f"node {node_id!r}: start 'first_batch' needs exactly one upstream node "
                f"(and no fan_in), it has {ups}",
                stage=node_id,
            )
        source = ups[0]
        if not streamed.is_streaming(handlers[nodes[source]["type"]]):
            raise FlowDefinitionError(
                f"node {node_id!r} starts on the first batch of {source!r}, whose handler "
                f"(type {nodes[source]['type']!r}) yields no batches: make it a generator "
                "function (def ...: yield batch), or start the node when it is 'ready'",
                stage=node_id,
            )
        streams.setdefault(source, []).append(node_id)
    return streams


def _order(nodes: Mapping[str, Any], upstream: Mapping[str, list[str]]) -> list[str]:
    """The node ids, each after its upstream nodes (stable in the spec's order); a cycle
    is an error naming its nodes."""
    order: list[str] = []
    placed: set[str] = set()
    while len(order) < len(nodes):
        ready = [n for n in nodes if n not in placed and set(upstream[n]) <= placed]
        if not ready:
            stuck = [n for n in nodes if n not in placed]
            raise FlowDefinitionError(
                f"the graph's edges make a cycle among nodes {stuck}; a workflow graph "
                "must be acyclic",
                stage=stuck[0],
            )
        order.extend(ready)
        placed.update(ready)
    return order


def _policy(node: Mapping[str, Any]) -> dict[str, Any]:
    """A node's ``retry`` (``{"attempts", "backoff"}`` or an ``rb.Retry``), ``on_error``
    (an ``OnError`` or its name) and ``timeout`` (seconds), as stage fields."""
    fields: dict[str, Any] = {}
    node_id = node["id"]
    retry = node.get("retry")
    if isinstance(retry, Mapping):
        try:
            retry = Retry(**retry)
        except (TypeError, ValueError) as error:
            raise FlowDefinitionError(f"node {node_id!r}: bad retry {retry!r}: {error}") from error
    if retry is not None and not isinstance(retry, Retry):
        raise FlowDefinitionError(f"node {node_id!r}: retry must be a dict or an rb.Retry")
    fields["retry"] = retry
    on_error = node.get("on_error")
    if isinstance(on_error, str):
        try:
            on_error = OnError[on_error.upper()]
        except KeyError:
            names = ", ".join(member.name.lower() for member in OnError)
            raise FlowDefinitionError(
                f"node {node_id!r}: on_error must be one of {names}, got {on_error!r}",
                stage=node_id,
            ) from None
    fields["on_error"] = on_error
    timeout = node.get("timeout")
    if timeout is not None and (not isinstance(timeout, int | float) or timeout <= 0):
        raise FlowDefinitionError(f"node {node_id!r}: timeout must be seconds > 0", stage=node_id)
    fields["timeout"] = timeout
    check_step_queue(node.get("queue"), f"node {node_id!r}", node_id)
    fields["queue"] = node.get("queue")
    return fields


workflow_from_graph.__module__ = "riverbed"  # it is public as riverbed.workflow_from_graph
