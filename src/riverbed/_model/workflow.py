"""The two ends of a workflow: ``flow.input()``, a source whose one event is the run's
input, and ``stream.output()``, a sink that captures the run's output.

A workflow is an ordinary flow with these ends, run by ``riverbed.run(flow, input)``: its
stages run on the one input event (independent branches at once), and each one's outputs
are recorded in the store before anything downstream of it starts (see
``riverbed._runtime.workflow``). This module only checks the shape; it runs nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from riverbed._errors import FlowDefinitionError, SourceError
from riverbed._model import graph
from riverbed._model.stages import Stage

__all__ = ["WorkflowInput", "WorkflowOutput", "is_workflow_input", "workflow_ends"]

_HOW = "run it with rb.run(flow, input), which gives the input event and records every step"


class WorkflowInput:
    """The source of ``flow.input()``: a placeholder the workflow runner fills with the
    run's input. The streaming engine (``flow.run()``) refuses it: a stream has no input.

    >>> WorkflowInput()
    WorkflowInput()
    """

    def partitions(self) -> Sequence[str]:
        """Refused: only ``rb.run`` knows the input."""
        raise SourceError(f"flow.input() is the input of a workflow: {_HOW}")

    def open(self, partition: str, position: Any | None) -> Any:
        """Refused: only ``rb.run`` knows the input."""
        raise SourceError(f"flow.input() is the input of a workflow: {_HOW}")

    def __repr__(self) -> str:
        return "WorkflowInput()"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WorkflowInput)

    def __hash__(self) -> int:
        return hash(WorkflowInput)


class WorkflowOutput:
    """The sink of ``stream.output()``: the workflow runner keeps what reaches it as the
    run's output. The streaming engine refuses it.

    >>> WorkflowOutput()
    WorkflowOutput()
    """

    def write_batch(self, events: list[Any]) -> None:
        """Refused: only ``rb.run`` captures a workflow's output."""
        raise SourceError(f"stream.output() is the output of a workflow: {_HOW}")

    def __repr__(self) -> str:
        return "WorkflowOutput()"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WorkflowOutput)

    def __hash__(self) -> int:
        return hash(WorkflowOutput)


def is_workflow_input(stage: Stage) -> bool:
    """True for the source stage made by ``flow.input()``."""
    return stage.is_source and isinstance(stage.fn, WorkflowInput)


def is_workflow_output(stage: Stage) -> bool:
    """True for the sink stage made by ``stream.output()``."""
    return stage.is_sink and isinstance(stage.fn, WorkflowOutput)


def workflow_ends(flow: str, stages: Sequence[Stage]) -> tuple[Stage, Stage | None]:
    """The input stage and the output stage (None if the workflow has no output) of a
    workflow, after checking that ``stages`` make one: exactly one source, which is
    ``flow.input()``, and at most one ``output()``. Raises ``FlowDefinitionError`` naming
    the culprit otherwise."""
    sources = [stage for stage in stages if stage.is_source]
    if not any(is_workflow_input(stage) for stage in sources):
        found = ", ".join(f"{s.name!r} ({graph.summary(s)})" for s in sources) or "none"
        raise FlowDefinitionError(
            f"flow {flow!r} is not a workflow: rb.run(flow, input) needs the flow to start "
            f"from flow.input(), whose one event is the run's input; its sources: {found}. "
            "Build it as flow.input().map(step1).map(step2).output(), or run a stream with "
            "flow.run()",
            flow=flow,
        )
    others = [stage for stage in sources if not is_workflow_input(stage)]
    if others or len(sources) > 1:
        extra = (others or sources[1:])[0]
        raise FlowDefinitionError(
            f"flow {flow!r}: a workflow has one source, flow.input(); stage {extra.name!r} "
            f"({graph.summary(extra)}) is another. Read it inside a step instead (a map "
            "that loads what it needs)",
            flow=flow,
            stage=extra.name,
        )
    outputs = [stage for stage in stages if is_workflow_output(stage)]
    if len(outputs) > 1:
        names = ", ".join(repr(stage.name) for stage in outputs)
        raise FlowDefinitionError(
            f"flow {flow!r} has several outputs ({names}); a workflow has at most one: "
            "merge the streams first (rb.merge(a, b).output())",
            flow=flow,
            stage=outputs[1].name,
        )
    graph.validate(flow, stages)
    return sources[0], outputs[0] if outputs else None
