"""Counting events without a counter per event: what one batch did, turned into stage
counters when the batch is done.

What leaves a one-to-one stage (``map``, ``inspect``, ``key_by``, ``merge``) is what
entered it, less its failures; what leaves the chain or enters a batch sink is the length
of a list. Only the other edges (after a ``filter``, ``flat_map``, ``stateful``, ``fold``,
``branch``, ``route``) keep a counter in the generated loop. Events that took the slow
path are counted as they are sent.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from riverbed._model.plan import Chain, is_batch_sink
from riverbed._model.process import dropped
from riverbed._model.stages import Port, StageKind
from riverbed._runtime.chains.codegen import remainder_ports
from riverbed._runtime.result import StageCounters

__all__ = ["Batch", "Counting", "Outputs"]

Outputs = dict[str, list[Any]]
"""Events leaving a chain, per exit port (``str(port)``)."""

DERIVED = -1
REMAINDER = -2


class Batch:
    """What one batch (or tick, or end of stream) produces while it goes through a chain:
    the lists of what leaves it (per exit port, and per batch sink), and its tally."""

    __slots__ = ("bails", "consumed", "explicit", "lists", "slow")

    def __init__(self, keys: list[str], stages: int, explicit: int) -> None:
        self.lists: Outputs = {key: [] for key in keys}
        self.consumed = 0
        """Events the chain's head took."""
        self.bails = [0] * stages
        """Per stage, events the generated loop handed to the slow path."""
        self.explicit = [0] * explicit
        """The generated loop's counts, by slot."""
        self.slow: dict[Port, int] = {}
        """Events the slow path sent through each port."""


class Edge(NamedTuple):
    """How to count the events through one output port of a stage of the chain."""

    port: Port
    target: int
    """The member reading the port; -1 when the port leaves the chain."""
    list_key: str | None
    """Counted by the length of this list (an exit, or a batch sink's input)."""
    slot: int
    """Counted by the loop in this slot of its counts (>= 0), or ``DERIVED`` from a
    one-to-one stage's input, or the ``REMAINDER`` of a branch's or route's input."""


class Counting:
    """How the events of a chain are counted (worked out once per chain)."""

    def __init__(
        self,
        chain: Chain,
        explicit: tuple[Port, ...],
        counters: list[StageCounters],
        states: list[dict[Any, Any] | None],
    ) -> None:
        self.chain = chain
        self.counters = counters
        self.slots = {port: slot for slot, port in enumerate(explicit)}
        self.batch_sinks = [i for i, s in enumerate(chain.stages) if is_batch_sink(s)]
        self.keys = [str(port) for port in chain.exits] + [
            sink_key(chain.stages[i].name) for i in self.batch_sinks
        ]
        self.edges = self._edges()
        self.dropping = [
            (index, state)
            for index, (stage, state) in enumerate(zip(chain.stages, states, strict=True))
            if stage.kind is StageKind.PROCESS and state is not None
        ]
        """Processor stages and their state, whose ``dropped`` counts are read per batch."""

    def batch(self) -> Batch:
        """A fresh batch to fill."""
        return Batch(self.keys, len(self.chain.stages), len(self.slots) + 1)

    def _edges(self) -> list[list[Edge]]:
        plan: list[list[Edge]] = []
        remainders = remainder_ports(self.chain)
        stages = self.chain.stages
        for stage in stages:
            edges = []
            for port in (Port(stage.name, name) for name in stage.outputs):
                target = self.chain.links.get(port)
                if target is None:
                    edges.append(Edge(port, -1, str(port), DERIVED))
                elif is_batch_sink(stages[target]):
                    edges.append(Edge(port, target, sink_key(stages[target].name), DERIVED))
                else:
                    slot = self.slots.get(port)
                    derived = REMAINDER if port in remainders else DERIVED
                    edges.append(Edge(port, target, None, derived if slot is None else slot))
            plan.append(edges)
        return plan

    def count(self, batch: Batch) -> None:
        """Turn one batch's tally into stage counters: per internal edge, the count is kept
        by the loop, measured by a list's length, or derived from a one-to-one stage."""
        counters = self.counters
        for index, state in self.dropping:
            counters[index].dropped = dropped(state)
        fast_in = [0] * len(self.edges)
        fast_in[0] = batch.consumed
        counters[0].events_in += batch.consumed
        for index, edges in enumerate(self.edges):
            sent = 0
            fast_out = 0
            for edge in edges:
                if edge.list_key is not None:
                    count = len(batch.lists[edge.list_key])
                else:
                    fast = self._fast(edge, batch, fast_in[index], fast_out, index)
                    fast_out += fast
                    fast_in[edge.target] += fast
                    count = fast + batch.slow.get(edge.port, 0) if batch.slow else fast
                if edge.target >= 0:
                    counters[edge.target].events_in += count
                sent += count
            counters[index].events_out += sent

    @staticmethod
    def _fast(edge: Edge, batch: Batch, entered: int, taken: int, index: int) -> int:
        """Events the generated loop sent through ``edge``."""
        if edge.slot >= 0:
            return batch.explicit[edge.slot]
        if edge.slot == DERIVED:  # one-to-one: what entered, less failures
            return entered - batch.bails[index]
        return entered - batch.bails[index] - taken  # the others did not take: the rest


def sink_key(stage: str) -> str:
    """The list a batch sink's events are gathered in."""
    return f"sink:{stage}"
