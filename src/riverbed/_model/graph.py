"""Whole-graph checks and views of a flow: validation, topological order, Mermaid, text."""

from __future__ import annotations

from collections.abc import Sequence

from riverbed._errors import CycleError, DanglingStreamError, FlowDefinitionError
from riverbed._model import callables
from riverbed._model.stages import Port, Stage, StageKind


def consumers(stages: Sequence[Stage]) -> dict[Port, list[str]]:
    """For every output port, the names of the stages that read it, in building order."""
    readers: dict[Port, list[str]] = {
        Port(stage.name, port): [] for stage in stages for port in stage.outputs
    }
    for stage in stages:
        for port in stage.inputs:
            readers.setdefault(port, []).append(stage.name)
    return readers


def topological_order(flow: str, stages: Sequence[Stage]) -> list[Stage]:
    """The stages, each after all of its inputs (Kahn's algorithm, stable in building
    order). Raises CycleError naming the stages on the cycle."""
    by_name = {stage.name: stage for stage in stages}
    waiting = {stage.name: len({p.stage for p in stage.inputs}) for stage in stages}
    downstream: dict[str, list[str]] = {stage.name: [] for stage in stages}
    for stage in stages:
        for upstream in dict.fromkeys(p.stage for p in stage.inputs):
            if upstream not in by_name:
                raise FlowDefinitionError(
                    f"stage {stage.name!r} reads from {upstream!r}, which is not in flow {flow!r}",
                    flow=flow,
                    stage=stage.name,
                )
            downstream[upstream].append(stage.name)
    ready = [name for name, count in waiting.items() if count == 0]
    order: list[Stage] = []
    while ready:
        name = ready.pop(0)
        order.append(by_name[name])
        for after in downstream[name]:
            waiting[after] -= 1
            if waiting[after] == 0:
                ready.append(after)
    if len(order) != len(stages):
        loop = _find_loop(by_name, {name for name, count in waiting.items() if count > 0})
        path = " -> ".join(f"{name!r} ({summary(by_name[name])})" for name in [*loop, loop[0]])
        raise CycleError(
            f"flow {flow!r} has a cycle: {path}; events must flow one way from sources to sinks",
            flow=flow,
            stage=loop[0],
        )
    return order


def _find_loop(by_name: dict[str, Stage], stuck: set[str]) -> list[str]:
    """One cycle among the ``stuck`` stages, in flow direction, from its earliest-built
    stage. Every stuck stage has a stuck input, so walking inputs from any of them must
    come back to a stage seen before."""
    built = {name: index for index, name in enumerate(by_name)}
    walk: list[str] = []
    seen: dict[str, int] = {}
    name = min(stuck, key=built.__getitem__)
    while name not in seen:
        seen[name] = len(walk)
        walk.append(name)
        name = next(p.stage for p in by_name[name].inputs if p.stage in stuck)
    loop = walk[seen[name] :][::-1]
    first = loop.index(min(loop, key=built.__getitem__))
    return loop[first:] + loop[:first]


def validate(flow: str, stages: Sequence[Stage]) -> None:
    """Raise a FlowDefinitionError for the first structural mistake found."""
    if not any(stage.is_source for stage in stages):
        raise FlowDefinitionError(
            f"flow {flow!r} has no source; add one with flow.source(...)", flow=flow
        )
    topological_order(flow, stages)
    for stage in stages:
        if stage.is_source and stage.inputs:
            raise FlowDefinitionError(
                f"source {stage.name!r} has inputs", flow=flow, stage=stage.name
            )
        if not stage.is_source and not stage.inputs:
            raise FlowDefinitionError(
                f"stage {stage.name!r} ({stage.kind.value}) has no input",
                flow=flow,
                stage=stage.name,
            )
    for port, readers in consumers(stages).items():
        if readers:
            continue
        stage = next(s for s in stages if s.name == port.stage)
        what = summary(stage)
        output = "" if port.name == "out" else f" (output {port.name!r})"
        raise DanglingStreamError(
            f"the stream of stage {stage.name!r}{output}, {what}, goes nowhere: nothing "
            "reads it and it is not a sink. End it with .sink(...), or remove the stage",
            flow=flow,
            stage=stage.name,
        )


def summary(stage: Stage) -> str:
    """What a stage is, for messages: ``map app.parse (app.py, line 12)``."""
    if stage.kind is StageKind.MERGE:
        return "a merge"
    if stage.is_source:
        return f"source {stage.fn!r}"
    return f"{stage.kind.value} {callables.describe(stage.function)}"


def kind_label(stage: Stage) -> str:
    """The stage's kind in listings: its operator's name for a processor (``window``,
    ``join``...), else the kind."""
    if stage.kind is StageKind.PROCESS:
        return str(getattr(stage.fn, "operator", stage.kind.value))
    return str(stage.kind.value)


def describe(flow: str, stages: Sequence[Stage]) -> str:
    """One line per stage: ``name  kind  function  <- inputs``."""
    lines = [f"Flow {flow!r} ({len(stages)} stages)"]
    width = max((len(s.name) for s in stages), default=0)
    for stage in stages:
        inputs = ", ".join(str(p) for p in stage.inputs)
        arrow = f"  <- {inputs}" if inputs else ""
        if stage.kind is StageKind.MERGE:
            what = ""
        elif stage.is_source:
            what = repr(stage.fn)
        elif stage.kind is StageKind.PROCESS:
            what = _short(repr(stage.fn), 100)
        else:
            what = callables.describe(stage.function)
        keyed = " [keyed]" if stage.keyed else ""
        lines.append(f"  {stage.name:<{width}}  {kind_label(stage):<8} {what}{keyed}{arrow}")
    return "\n".join(lines)


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


_SHAPES = {
    StageKind.SOURCE: ('[/"', '"/]'),
    StageKind.SINK: ('[\\"', '"\\]'),
    StageKind.BRANCH: ('{"', '"}'),
    StageKind.ROUTE: ('{"', '"}'),
    StageKind.MERGE: ('(("', '"))'),
    StageKind.STATEFUL: ('[("', '")]'),
    StageKind.FOLD: ('[("', '")]'),
    StageKind.PROCESS: ('[("', '")]'),
}


def to_mermaid(flow: str, stages: Sequence[Stage]) -> str:
    """A Mermaid flowchart, left to right; ids are stable positions, labels the names."""
    ids = {stage.name: f"s{index}" for index, stage in enumerate(stages)}
    lines = [f"---\ntitle: {flow}\n---", "flowchart LR"]
    for stage in stages:
        left, right = _SHAPES.get(stage.kind, ('["', '"]'))
        label = f"{stage.name}<br/><small>{kind_label(stage)}</small>".replace('"', "#quot;")
        lines.append(f"    {ids[stage.name]}{left}{label}{right}")
    for stage in stages:
        for port in stage.inputs:
            edge = "-->" if port.name == "out" else f"-->|{port.name}|"
            lines.append(f"    {ids[port.stage]} {edge} {ids[stage.name]}")
    return "\n".join(lines) + "\n"
