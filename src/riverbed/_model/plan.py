"""From a flow to an executable plan: which stages run fused in one loop, and the edges
between those loops.

Fusion (operator chaining) joins a stage to its upstream's chain when events can go from
one to the other without a channel: the upstream's output is read by this stage alone,
and both run synchronously per event (no async callable, no timeout). A chain is a small
tree: a branch or route continues into the fused stages of each of its outputs, and a
merge whose inputs all come from one chain joins it too, so a fan-out / fan-in diamond
runs as one loop. Sources, async stages and processors start their own chains. Every runner executes
the same plan; a distributed runner adds partitions and exchanges on top of it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from riverbed._model import callables, graph
from riverbed._model.parallel import RunnerOperatorSpec
from riverbed._model.policy import OnError, Policy, Retry, resolve
from riverbed._model.sinks import is_sink_object
from riverbed._model.stages import Port, SinkMode, SinkStage, Stage, StageKind

__all__ = ["Chain", "Plan", "make_plan"]


@dataclass(frozen=True)
class Chain:
    """Stages that run as one loop over each batch: ``stages[0]`` (the head) reads the
    chain's input channel; ``links`` says which member reads each internal output port;
    ``exits`` are the output ports whose readers are other chains."""

    stages: tuple[Stage, ...]
    """The members, each after its inputs."""
    policies: tuple[Policy, ...]
    links: Mapping[Port, int]
    """Internal edges: an output port of a member -> the index of the member reading it."""
    exits: tuple[Port, ...]
    """Output ports of members that leave the chain (read by other chains)."""
    is_async: bool
    """True for a chain of one stage whose callable is async, has a timeout or is cached:
    it is awaited per event with bounded concurrency instead of looped over
    synchronously."""

    @property
    def is_process(self) -> bool:
        """True for the chain of one ``PROCESS`` stage that runs alone: a processor with
        timers, or an operator the runner implements itself (parallel_map, batch_map)."""
        return processor_runs_alone(self.stages[0])

    @property
    def name(self) -> str:
        """The chain's first stage's name."""
        return self.stages[0].name

    @property
    def head(self) -> Stage:
        """The first stage: the one whose input channel the chain reads."""
        return self.stages[0]


@dataclass(frozen=True)
class Plan:
    """The executable shape of a flow."""

    flow: str
    sources: tuple[Stage, ...]
    chains: tuple[Chain, ...]
    readers: dict[Port, tuple[str, ...]]
    """For every output port read by a chain head: the chains (by name) reading it."""


def _needs_await(stage: Stage) -> bool:
    if stage.kind is StageKind.PROCESS:
        return False
    if stage.timeout is not None:
        return True
    called = stage.called
    return called is not None and callables.is_async(called)


def processor_runs_alone(stage: Stage) -> bool:
    """True for a processor stage that needs a chain of its own: one with timers (the
    runner ticks it through its channel), or an operator the runner implements itself.
    Other processors are fused like flat_maps: ``process(event, now)`` in the loop."""
    return stage.kind is StageKind.PROCESS and (
        stage.fn.tick is not None or isinstance(stage.fn, RunnerOperatorSpec)
    )


def _runs_alone(stage: Stage) -> bool:
    """Async stages and processors with timers are chains of their own: the first are
    awaited per event, the second get ticks that the runner drives. So are cached stages,
    which look each event up in the store's step cache before calling their function."""
    return processor_runs_alone(stage) or stage.cache or _needs_await(stage)


def make_plan(
    flow: str,
    stages: Sequence[Stage],
    *,
    on_error: OnError | None = None,
    retry: Retry | None = None,
    fuse: bool = True,
    exchange_before: Callable[[Stage], bool] | None = None,
) -> Plan:
    """Validate the stages and group them into chains (see the module docstring).
    ``fuse=False`` makes every stage a chain of its own: the workflow runner runs and
    records one stage at a time. ``exchange_before``: true for a stage whose input a
    runner moves between processes (a distributed runner partitions a keyed stage's input
    by key): such a stage starts a chain of its own."""
    graph.validate(flow, stages)
    readers = graph.consumers(stages)
    order = graph.topological_order(flow, stages)
    chain_of: dict[str, int] = {}
    members: list[list[Stage]] = []
    for stage in order:
        if stage.is_source:
            continue
        exchanged = exchange_before is not None and exchange_before(stage)
        home = _fusable_into(stage, chain_of, members, readers) if fuse and not exchanged else None
        if home is None:
            home = len(members)
            members.append([])
        members[home].append(stage)
        chain_of[stage.name] = home
    chains = tuple(_chain(group, readers, on_error=on_error, retry=retry) for group in members)
    heads = {chain.head.name for chain in chains}
    exits = {
        port: tuple(name for name in names if name in heads)
        for port, names in readers.items()
        if any(name in heads for name in names)
    }
    return Plan(
        flow=flow,
        sources=tuple(s for s in order if s.is_source),
        chains=chains,
        readers=exits,
    )


def _fusable_into(
    stage: Stage,
    chain_of: dict[str, int],
    members: list[list[Stage]],
    readers: Mapping[Port, list[str]],
) -> int | None:
    """The chain ``stage`` can join, or None if it must start its own."""
    if _runs_alone(stage):
        return None
    homes = {chain_of.get(port.stage) for port in stage.inputs}
    if len(homes) != 1:
        return None
    home = homes.pop()
    if home is None or any(_runs_alone(s) for s in members[home]):
        return None
    if len(stage.inputs) > 1 and stage.kind is not StageKind.MERGE:
        return None
    if all(readers[port] == [stage.name] for port in stage.inputs):
        return home
    return None


def _chain(
    group: list[Stage],
    readers: Mapping[Port, list[str]],
    *,
    on_error: OnError | None,
    retry: Retry | None,
) -> Chain:
    index = {stage.name: position for position, stage in enumerate(group)}
    links: dict[Port, int] = {}
    exits: list[Port] = []
    for stage in group:
        for name in stage.outputs:
            port = Port(stage.name, name)
            inside = [index[r] for r in readers[port] if r in index]
            if inside:
                links[port] = inside[0]
            else:
                exits.append(port)
    return Chain(
        stages=tuple(group),
        policies=tuple(resolve(s.on_error, s.retry, on_error, retry, s.timeout) for s in group),
        links=links,
        exits=tuple(exits),
        # A cached stage awaits the store's step cache per event, as an async stage does.
        is_async=any(_needs_await(s) or s.cache for s in group),
    )


def is_batch_sink(stage: Stage) -> bool:
    """True for sinks called once per batch (a batch callable or a sink object)."""
    return isinstance(stage, SinkStage) and (
        stage.sink_mode is not SinkMode.EVENT or is_sink_object(stage.fn)
    )
