"""Which steps of a workflow run may start now: the frontier of its walk.

A workflow's stages form a DAG; independent branches of it run at once. A step may start
once what it waits for has finished and been committed:

- an ordinary stage waits for every stage it reads from to be settled (finished, or known
  never to run), and then gets every event they sent it; if none came, it is no step
  (nothing is called, nothing recorded) and is settled at once;
- a graph node (``riverbed._model.dag.GraphNode``) with a fan-in waits for as many of its
  upstream nodes to have delivered as its fan-in needs (all, one, or N), and gets one
  event: the dict of their outputs, taken in order of arrival. An upstream node that
  delivers after the node started is ignored and counted (``late``); a node whose
  upstream nodes all settled without delivering enough never runs.

The frontier only keeps the walk's bookkeeping (what was sent where, what arrived when,
what started, what settled); the workflow runner (``riverbed._runtime.workflow``) starts
the steps, commits them and tells the frontier when one finished.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from riverbed._model.dag import graph_node
from riverbed._model.plan import Chain
from riverbed._model.stages import Port, Stage

__all__ = ["Frontier"]


class _Wait:
    """The type of ``WAIT``: the stage cannot start yet."""


WAIT: Any = _Wait()


class Frontier:
    """The state of one workflow run's walk over ``steps`` (in topological order)."""

    def __init__(self, steps: Sequence[Chain], input_stage: Stage, input: Any) -> None:
        self.steps = tuple(steps)
        self.pending: dict[Port, list[Any]] = {Port(input_stage.name): [input]}
        """What each output port sent (read by the stages, and by the output)."""
        self.settled: set[str] = {input_stage.name}
        """Stages that finished, or will never run."""
        self.started: set[str] = set()
        self.arrivals: dict[str, list[tuple[float, str]]] = {}
        """For each graph node: (when, upstream node) of every upstream that delivered."""
        self.late: dict[str, int] = {}
        """For each graph node: how many upstream nodes delivered after it had started."""
        self._readers: dict[str, list[str]] = {}
        self._nodes = {chain.head.name: graph_node(chain.head) for chain in self.steps}
        for name, node in self._nodes.items():
            for upstream in node.upstream if node is not None else ():
                self._readers.setdefault(upstream, []).append(name)

    def ready(self) -> list[tuple[int, Chain, list[Any]]]:
        """The steps that may start now, with their events, in topological order (none is
        marked started: see ``start``); settles the stages that will never run."""
        found: list[tuple[int, Chain, list[Any]]] = []
        names: set[str] = set()
        changed = True
        while changed:
            changed = False
            for seq, chain in enumerate(self.steps):
                name = chain.head.name
                if name in self.settled or name in self.started or name in names:
                    continue
                events = self._events(chain.head, self.settled)
                if events is WAIT:
                    continue
                if not events:
                    self.settled.add(name)
                    changed = True
                    continue
                found.append((seq, chain, events))
                names.add(name)
        return found

    def start(self, name: str) -> None:
        """Stage ``name`` started."""
        self.started.add(name)

    def finish(self, stage: Stage, produced: dict[str, list[Any]], when: float) -> list[str]:
        """Stage ``stage`` finished (and was committed) with ``produced`` per output port,
        at ``when`` (a timestamp: the order of arrivals); the graph nodes that this
        delivery reached too late (they had started), each counted in ``late``."""
        for port_name, items in produced.items():
            self.pending[Port(stage.name, port_name)] = items
        self.settled.add(stage.name)
        self.started.add(stage.name)
        late: list[str] = []
        if not self.pending.get(Port(stage.name)):
            return late
        for reader in self._readers.get(stage.name, ()):
            self.arrivals.setdefault(reader, []).append((when, stage.name))
            if reader in self.started:
                self.late[reader] = self.late.get(reader, 0) + 1
                late.append(reader)
        return late

    def would_run_more(self) -> bool:
        """True if, with what has been sent so far and nothing running, some step would
        still start: the step that just finished is not the run's last."""
        settled = set(self.settled)
        changed = True
        while changed:
            changed = False
            for chain in self.steps:
                name = chain.head.name
                if name in settled or name in self.started:
                    continue
                events = self._events(chain.head, settled)
                if events is WAIT:
                    continue
                if events:
                    return True
                settled.add(name)
                changed = True
        return False

    def _events(self, stage: Stage, settled: set[str]) -> Any:
        """The events ``stage`` starts with now ([] if it never will), or ``WAIT``."""
        node = self._nodes[stage.name]
        if node is None:
            if any(port.stage not in settled for port in stage.inputs):
                return WAIT
            return [event for port in stage.inputs for event in self.pending.get(port, ())]
        arrived = sorted(self.arrivals.get(stage.name, ()))
        needed = node.fan_in.needed(len(node.upstream))
        if len(arrived) >= needed:
            taken = node.upstream if node.fan_in.count is None else [u for _, u in arrived[:needed]]
            return [{upstream: self.pending[Port(upstream)][0] for upstream in taken}]
        if all(upstream in settled for upstream in node.upstream):
            return []  # too few delivered: it never runs
        return WAIT
