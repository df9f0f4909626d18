"""Declared data of a workflow's steps: the context keys each step reads and writes.

A workflow whose steps pass a context along (a dict of named values, as Ebbs and Flows'
``ExecutionContext``) may declare, per step, the keys it reads (``reads=``) and the keys
it adds (``writes=``), and with ``flow.input(keys=...)`` the keys its input brings. Then:

- when the flow is built, each step that declares data is checked as it is added: every
  key it reads is written by a step upstream of it (or brought by the input), and no key
  it writes is one that a step upstream of it wrote already (``FlowDefinitionError``
  naming the step and the key);
- when it runs, the context each step hands on must be a dict of JSON-serializable
  values holding the keys the step declared, with no key added or changed that it did
  not declare: the step that breaks this fails, named with the key (a verdict on the
  step's code, so its policy does not apply; the run ends FAILED). The input is checked
  before the run starts.

Steps that declare nothing are not checked as they are added, but their contexts are
checked at run time like the others' (a new key must then be declared by someone). This
module runs nothing itself: the workflow runtime calls ``check_step`` after each step.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from riverbed._errors import FlowDefinitionError
from riverbed._model.stages import Stage

__all__ = ["check_declared", "check_input", "check_step", "declares_data"]


def declares_data(stages: Iterable[Stage]) -> bool:
    """True if any stage of a flow declares context keys (the flow's contexts are then
    checked at run time)."""
    return any(stage.reads or stage.writes for stage in stages)


def _upstream_writes(stages: Mapping[str, Stage], stage: Stage) -> dict[str, str]:
    """Every key written upstream of ``stage``, with the stage that wrote it."""
    written: dict[str, str] = {}
    seen: set[str] = set()
    todo = [port.stage for port in stage.inputs]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        upstream = stages[name]
        for key in upstream.writes:
            written.setdefault(key, name)
        todo.extend(port.stage for port in upstream.inputs)
    return written


def check_declared(flow: str, stages: Mapping[str, Stage], stage: Stage) -> None:
    """Check the keys ``stage`` declares against the stages upstream of it (``stages``:
    the flow's stages so far, by name). Raises ``FlowDefinitionError`` naming the key."""
    if not stage.reads and not stage.writes:
        return
    written = _upstream_writes(stages, stage)
    for key in stage.reads:
        if key not in written:
            known = ", ".join(f"{k!r} (by {s!r})" for k, s in written.items()) or "none"
            raise FlowDefinitionError(
                f"step {stage.name!r} reads context key {key!r}, which no step before it "
                f"writes (keys written before it: {known}); have an earlier step declare "
                f"writes=[{key!r}], or declare it as brought by the input: "
                f"flow.input(keys=[{key!r}])",
                flow=flow,
                stage=stage.name,
            )
    for key in stage.writes:
        if key in written:
            raise FlowDefinitionError(
                f"step {stage.name!r} writes context key {key!r}, which step "
                f"{written[key]!r} before it writes already; a key is written once: give "
                "one of them another key",
                flow=flow,
                stage=stage.name,
            )


def check_input(flow: str, input_stage: Stage, context: Any) -> None:
    """Check a data-declaring workflow's input: a dict of JSON-serializable values with
    the keys ``flow.input(keys=...)`` declares. Raises ``ValueError``."""
    where = f"the input of workflow {flow!r}"
    _check_context(where, context)
    missing = [key for key in input_stage.writes if key not in context]
    if missing:
        raise ValueError(
            f"{where} lacks the context key(s) {missing} that flow.input(keys=...) "
            f"declares; it has {sorted(context)}"
        )


def check_step(stage: Stage, received: Sequence[Any], produced: Iterable[Any]) -> None:
    """Check the contexts step ``stage`` handed on (``produced``) against the ones it
    ``received``. Raises ``TypeError`` (not a dict, not JSON) or ``ValueError`` (keys)
    naming the step and the key."""
    where = f"step {stage.name!r}"
    before: Mapping[str, Any] = received[0] if len(received) == 1 else {}
    known = {key for context in received if isinstance(context, Mapping) for key in context}
    for context in produced:
        _check_context(f"the context that {where} handed on", context)
        for key in stage.writes:
            if key not in context:
                raise ValueError(
                    f"{where} declares writes=[{key!r}] but the context it handed on has no "
                    f"{key!r} (it has {sorted(context)})"
                )
        for key, value in context.items():
            if key in stage.writes:
                continue
            if key not in known:
                raise ValueError(
                    f"{where} added context key {key!r} without declaring it: add it to "
                    f"the step's writes=[...]"
                )
            if key in before and before[key] is not value and before[key] != value:
                raise ValueError(
                    f"{where} changed context key {key!r}, written before it; a key is "
                    "written once: write the new value under another key"
                )


def _check_context(where: str, context: Any) -> None:
    """A context is a dict of JSON-serializable values, by string keys."""
    if not isinstance(context, Mapping):
        raise TypeError(
            f"{where} is a {type(context).__name__}, not a dict: a workflow that declares "
            "context keys passes a dict of them from step to step"
        )
    for key, value in context.items():
        if not isinstance(key, str):
            raise TypeError(f"{where} has the key {key!r}: context keys are strings")
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as error:
            raise TypeError(
                f"{where} holds {key!r} = {value!r:.80} ({type(value).__name__}), which is "
                f"not JSON-serializable ({error}); a context is kept as JSON: store plain "
                "data (str, int, float, bool, None, lists and dicts of them)"
            ) from None
