"""What a flow's workflow runs are made of, worked out once per flow (``shape_of``), and
``MISSING``, the input of a run that was given none."""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

from riverbed._model.flow import Flow
from riverbed._model.plan import Chain, make_plan
from riverbed._model.stages import Stage
from riverbed._model.workflow import is_workflow_output, workflow_ends

__all__ = ["MISSING", "Shape", "shape_of"]


class _Missing:
    """The type of ``MISSING``: "no input given" (None is a valid input)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


@dataclass(frozen=True)
class Shape:
    """What a flow's workflow runs are made of, worked out once per flow."""

    stages: tuple[Stage, ...]
    input: Stage
    output: Stage | None
    steps: tuple[Chain, ...]
    """One chain per stage that is a step, in topological order (the output excluded)."""
    version: str


_shapes: weakref.WeakKeyDictionary[Flow, Shape] = weakref.WeakKeyDictionary()


def shape_of(flow: Flow) -> Shape:
    """The workflow shape of ``flow`` (checked, planned without fusion); cached while the
    flow's stages stay the same objects."""
    stages = flow.stages
    known = _shapes.get(flow)
    if (
        known is not None
        and len(known.stages) == len(stages)
        and all(a is b for a, b in zip(known.stages, stages, strict=True))
    ):
        return known
    source, output = workflow_ends(flow.name, stages)
    plan = make_plan(flow.name, stages, on_error=flow.on_error, retry=flow.retry, fuse=False)
    steps = tuple(chain for chain in plan.chains if not is_workflow_output(chain.head))
    shape = Shape(stages, source, output, steps, flow.version)
    _shapes[flow] = shape
    return shape
