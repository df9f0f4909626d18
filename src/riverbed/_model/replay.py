"""A flow cut to replay events into one of its stages: the stage and everything downstream
of it, fed by a new source. How dead letters are replayed once their cause is fixed."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from riverbed._errors import FlowDefinitionError
from riverbed._model.stages import Port

if TYPE_CHECKING:
    from riverbed._model.flow import Flow

__all__ = ["replay_flow"]

REPLAY_SOURCE = "replay"


def downstream(flow: Flow, stage: str) -> set[str]:
    """``stage`` and every stage that reads from it, directly or not."""
    found = {stage}
    for candidate in flow.stages:  # stages are in building order: inputs come first
        if any(port.stage in found for port in candidate.inputs):
            found.add(candidate.name)
    return found


def replay_flow(flow: Flow, stage: str, events: list[Any]) -> Flow:
    """A flow that feeds ``events`` into ``stage`` (as if its input had sent them) and runs
    every stage downstream of it; stages upstream are left out, and stages downstream that
    also read from them keep only their other inputs.

    >>> import riverbed as rb
    >>> flow = rb.Flow("f")
    >>> flow.source([1]).map(str, name="text").sink(print, name="out")
    >>> [s.name for s in replay_flow(flow, "text", [7]).stages]
    ['replay', 'text', 'out']
    """
    from riverbed._model.flow import Flow

    target = flow.stage(stage)
    if target.is_source:
        raise FlowDefinitionError(
            f"stage {stage!r} is a source: events can only be replayed into a stage that "
            "reads a stream",
            flow=flow.name,
            stage=stage,
        )
    keep = downstream(flow, stage)
    replay = Flow(flow.name, on_error=flow.on_error, retry=flow.retry)
    source = replay.source(list(events), name=_free_name(flow))
    for candidate in flow.stages:
        if candidate.name not in keep:
            continue
        if candidate.name == stage:
            inputs: tuple[Port, ...] = (source.port,)
        else:
            inputs = tuple(port for port in candidate.inputs if port.stage in keep)
        replay.add_stage(dataclasses.replace(candidate, inputs=inputs))
    return replay


def _free_name(flow: Flow) -> str:
    names = {stage.name for stage in flow.stages}
    name, number = REPLAY_SOURCE, 1
    while name in names:
        number += 1
        name = f"{REPLAY_SOURCE}_{number}"
    return name
