"""From a flow to an executable plan: which stages run fused in one loop, and the edges
between those loops.

Fusion (operator chaining) joins a stage to the one before it when events can go from one
to the next without a channel: the upstream has one output read by this stage alone, and
both run synchronously per event (no async callable, no timeout). Sources, merges (fan-in)
and async stages start a new chain; branches, routes and sinks end one. Every runner
executes the same plan; a distributed runner adds partitions and exchanges on top of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from riverbed._model import callables, graph
from riverbed._model.policy import OnError, Policy, Retry, resolve
from riverbed._model.sinks import is_sink_object
from riverbed._model.stages import Port, SinkMode, Stage, StageKind

__all__ = ["Chain", "Plan", "make_plan"]


@dataclass(frozen=True)
class Chain:
    """Stages that run as one loop over each batch, in order."""

    stages: tuple[Stage, ...]
    policies: tuple[Policy, ...]
    is_async: bool
    """True for a chain of one stage whose callable is async or has a timeout: it is
    awaited per event with bounded concurrency instead of looped over synchronously."""

    @property
    def name(self) -> str:
        """The chain's first stage's name."""
        return self.stages[0].name

    @property
    def head(self) -> Stage:
        """The first stage: the one whose input channel the chain reads."""
        return self.stages[0]

    @property
    def tail(self) -> Stage:
        """The last stage: the one whose outputs leave the chain."""
        return self.stages[-1]


@dataclass(frozen=True)
class Plan:
    """The executable shape of a flow."""

    flow: str
    sources: tuple[Stage, ...]
    chains: tuple[Chain, ...]
    readers: dict[Port, tuple[str, ...]]
    """For every output port of a source or chain tail: the chains (by name) reading it."""


def _needs_await(stage: Stage) -> bool:
    if stage.timeout is not None:
        return True
    if stage.kind is StageKind.SINK and stage.sink_mode is SinkMode.OBJECT:
        return callables.is_async(getattr(stage.fn, "write_batch", None))
    target = stage.method if stage.method is not None else stage.fn
    return target is not None and callables.is_async(target)


def _ends_chain(stage: Stage) -> bool:
    return len(stage.outputs) != 1 or stage.is_sink


def make_plan(
    flow: str,
    stages: Sequence[Stage],
    *,
    on_error: OnError | None = None,
    retry: Retry | None = None,
) -> Plan:
    """Validate the stages and group them into chains (see the module docstring)."""
    graph.validate(flow, stages)
    readers = graph.consumers(stages)
    order = graph.topological_order(flow, stages)
    chain_of: dict[str, list[Stage]] = {}
    chains: list[list[Stage]] = []
    for stage in order:
        if stage.is_source:
            continue
        joined = False
        if len(stage.inputs) == 1 and not _needs_await(stage):
            upstream_name = stage.inputs[0].stage
            members = chain_of.get(upstream_name)
            if (
                members is not None
                and members[-1].name == upstream_name
                and not _ends_chain(members[-1])
                and readers[stage.inputs[0]] == [stage.name]
                and not any(_needs_await(s) for s in members)
            ):
                members.append(stage)
                chain_of[stage.name] = members
                joined = True
        if not joined:
            members = [stage]
            chains.append(members)
            chain_of[stage.name] = members
    planned = tuple(
        Chain(
            stages=tuple(members),
            policies=tuple(
                resolve(s.on_error, s.retry, on_error, retry, s.timeout) for s in members
            ),
            is_async=any(_needs_await(s) for s in members),
        )
        for members in chains
    )
    heads = {chain.head.name for chain in planned}
    exits = {
        port: tuple(name for name in names if name in heads)
        for port, names in readers.items()
        if any(name in heads for name in names)
    }
    return Plan(
        flow=flow,
        sources=tuple(s for s in order if s.is_source),
        chains=planned,
        readers=exits,
    )


def is_batch_sink(stage: Stage) -> bool:
    """True for sinks called once per batch (a batch callable or a sink object)."""
    return stage.is_sink and (stage.sink_mode is not SinkMode.EVENT or is_sink_object(stage.fn))
