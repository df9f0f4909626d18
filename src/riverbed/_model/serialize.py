"""Flows to JSON and back, and the version hashes of flows and stages.

Callables are written as import references (``module:qualname``) and imported back; a
callable that has none (a lambda, a closure, a local function) makes ``to_json`` fail with
the stage's name. Versions work from the code itself, so lambdas have versions too.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from typing import TYPE_CHECKING, Any

from riverbed._errors import FlowSerializationError, RiverbedError
from riverbed._model import callables, graph
from riverbed._model.policy import OnError, Retry
from riverbed._model.producers import Producer, plain_function
from riverbed._model.sources import FunctionSource, IterableSource
from riverbed._model.stages import KINDS, Port, Stage, StageKind
from riverbed._model.workflow import WorkflowInput, WorkflowOutput

if TYPE_CHECKING:
    from riverbed._model.flow import Flow

FORMAT = 1


def _ref(flow: str, stage: Stage, field: str, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, WorkflowInput | WorkflowOutput):
        return {"workflow": "input" if isinstance(value, WorkflowInput) else "output"}
    if isinstance(value, callables.StartingValue):
        return {"value": _json_value(flow, stage, field, value.value)}
    if field == "fn" and stage.is_source:
        if isinstance(value, IterableSource) and isinstance(value.items, list | tuple | range):
            items = list(value.items)
            try:
                json.dumps(items)
            except (TypeError, ValueError):
                raise FlowSerializationError(
                    f"stage {stage.name!r}: its list of events is not JSON-able; read the "
                    "events from a module-level generator function instead",
                    flow=flow,
                    stage=stage.name,
                ) from None
            return {"items": items}
        if isinstance(value, FunctionSource):
            value = value.function
        elif isinstance(value, Producer):
            value = plain_function(value) or value
    ref = callables.import_ref(value)
    if ref is None and isinstance(value, functools.partial):
        raise FlowSerializationError(
            f"stage {stage.name!r}: cannot serialize its {field} "
            f"functools.partial({callables.describe(value.func)}, ...): a partial has no "
            "import name; write a module-level function that calls it with those arguments",
            flow=flow,
            stage=stage.name,
        )
    if ref is None:
        shown = callables.describe(value) if callable(value) else repr(value)
        raise FlowSerializationError(
            f"stage {stage.name!r}: cannot serialize its {field} {shown}: only objects that "
            "can be imported by name can be (a lambda, a closure or a local function "
            "cannot); move it to module level as a named def",
            flow=flow,
            stage=stage.name,
        )
    return {"ref": ref}


def _json_value(flow: str, stage: Stage, field: str, value: Any) -> Any:
    """``value`` itself when it is JSON-able, else a FlowSerializationError naming it."""
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        raise FlowSerializationError(
            f"stage {stage.name!r}: its setting {field}={value!r:.60} is not JSON-able",
            flow=flow,
            stage=stage.name,
        ) from None
    return value


def _spec_to_dict(flow: str, stage: Stage) -> dict[str, Any]:
    """A processor spec as ``{"spec": ref of its class, "fields": {...}}``; callable
    fields by import reference, the others as they are (they must be JSON-able)."""
    spec = stage.fn
    fields: dict[str, Any] = {}
    for field in dataclasses.fields(spec):
        value = getattr(spec, field.name)
        if callable(value):
            fields[field.name] = _ref(flow, stage, field.name, value)
            continue
        fields[field.name] = {"value": _json_value(flow, stage, field.name, value)}
    return {"spec": _ref(flow, stage, "spec", type(spec))["ref"], "fields": fields}


def _spec_from(flow: str, stage: str, data: Any) -> Any:
    cls = _resolve(flow, stage, {"ref": data["spec"]})
    fields = {
        name: value["value"] if "value" in value else _resolve(flow, stage, value)
        for name, value in data["fields"].items()
    }
    return cls(**fields)


def stage_to_dict(flow: str, stage: Stage) -> dict[str, Any]:
    """One stage as JSON-able data."""
    data: dict[str, Any] = {"name": stage.name, "kind": stage.kind.value}
    if stage.inputs:
        data["inputs"] = [[p.stage, p.name] for p in stage.inputs]
    for field, value in stage.callables().items():
        if field == "fn" and stage.kind is StageKind.PROCESS:
            data["fn"] = _spec_to_dict(flow, stage)
        elif value is not None:
            data[field] = _ref(flow, stage, field, value)
    data["outputs"] = list(stage.outputs)
    data.update(_settings_to_dict(stage))
    return data


def _settings_to_dict(stage: Stage) -> dict[str, Any]:
    """The stage's flags, its kind's settings and its policy settings: only those set (a
    document leaves the defaults out)."""
    data: dict[str, Any] = {"keyed": True} if stage.keyed else {}
    data.update(stage.kind_settings())
    if stage.concurrency is not None:
        data["concurrency"] = stage.concurrency
    if stage.on_error is not None:
        data["on_error"] = stage.on_error.value
    if stage.retry is not None:
        data["retry"] = stage.retry.to_json()
    if stage.timeout is not None:
        data["timeout"] = stage.timeout
    if stage.cache:
        data["cache"] = True
    for field in ("reads", "writes"):
        if getattr(stage, field):
            data[field] = list(getattr(stage, field))
    if stage.queue is not None:
        data["queue"] = stage.queue
    return data


def to_json(flow: Flow, *, indent: int | None = 2) -> str:
    """The flow as a JSON document (validated first)."""
    flow.validate()
    document = {
        "riverbed_flow": FORMAT,
        "name": flow.name,
        "version": flow.version,
        "on_error": flow.on_error.value if flow.on_error else None,
        "retry": flow.retry.to_json() if flow.retry else None,
        "stages": [stage_to_dict(flow.name, stage) for stage in flow.stages],
    }
    return json.dumps(document, indent=indent)


def _retry_from(data: dict[str, Any] | None) -> Retry | None:
    if data is None:
        return None
    fields = dict(data)
    fields["on"] = tuple(callables.resolve_ref(ref) for ref in fields.get("on", ()))
    return Retry(**fields)


def _resolve(flow: str, stage: str, value: Any) -> Any:
    if value is None:
        return None
    if "workflow" in value:
        return WorkflowInput() if value["workflow"] == "input" else WorkflowOutput()
    if "items" in value:
        return IterableSource(value["items"])
    if "value" in value:
        return callables.StartingValue(value["value"])
    try:
        return callables.resolve_ref(value["ref"])
    except (ImportError, AttributeError) as error:
        raise FlowSerializationError(
            f"stage {stage!r}: cannot import {value['ref']!r} ({error}); is its module on "
            "the path?",
            flow=flow,
            stage=stage,
        ) from None


def _stage_from(flow: str, data: Any) -> Stage:
    """One stage record from its JSON form; fields a hand-written document leaves out take
    the defaults the builder would give."""
    from riverbed._model.sources import as_source

    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        raise FlowSerializationError(
            f"flow {flow!r}: every stage must be an object with a string 'name', got {data!r:.80}",
            flow=flow,
        )
    name = data["name"]
    fields: dict[str, Any] = {}
    try:
        kind = StageKind(data["kind"])
        if kind is StageKind.PROCESS:
            fn = _spec_from(flow, name, data["fn"])
        else:
            fn = _resolve(flow, name, data.get("fn"))
        if kind is StageKind.SOURCE:
            fn = as_source(fn)
        record = KINDS[kind].record
        if "outputs" in data:  # else the record's default: none for a sink
            fields["outputs"] = tuple(data["outputs"])
        return record(
            name=name,
            kind=kind,
            inputs=tuple(Port(s, p) for s, p in data.get("inputs", [])),
            fn=fn,
            keyed=data.get("keyed", False),
            **record.kind_fields_from(data, functools.partial(_resolve, flow, name)),
            **fields,
            concurrency=data.get("concurrency"),
            on_error=OnError(data["on_error"]) if "on_error" in data else None,
            retry=_retry_from(data.get("retry")),
            timeout=data.get("timeout"),
            cache=data.get("cache", False),
            reads=tuple(data.get("reads", ())),
            writes=tuple(data.get("writes", ())),
            queue=data.get("queue"),
        )
    except RiverbedError:
        raise
    except (KeyError, TypeError, ValueError, ImportError, AttributeError) as error:
        raise FlowSerializationError(
            f"stage {name!r}: malformed stage in the flow document: {type(error).__name__}: "
            f"{error}",
            flow=flow,
            stage=name,
        ) from None


def from_json(text: str) -> Flow:
    """Build a flow back from ``to_json`` output (or a hand-written document of its form)."""
    from riverbed._model.flow import Flow

    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise FlowSerializationError(f"not a JSON document: {error}") from None
    if not isinstance(document, dict) or document.get("riverbed_flow") != FORMAT:
        raise FlowSerializationError(
            f"not a riverbed flow document of format {FORMAT} (no 'riverbed_flow': {FORMAT})"
        )
    if not isinstance(document.get("name"), str) or not isinstance(document.get("stages"), list):
        raise FlowSerializationError("a flow document needs a string 'name' and a list 'stages'")
    name = document["name"]
    try:
        on_error = OnError(document["on_error"]) if document.get("on_error") else None
        retry = _retry_from(document.get("retry"))
    except (KeyError, TypeError, ValueError, ImportError, AttributeError) as error:
        raise FlowSerializationError(
            f"flow {name!r}: malformed flow policy: {type(error).__name__}: {error}", flow=name
        ) from None
    flow = Flow(name, on_error=on_error, retry=retry)
    stages = [_stage_from(name, data) for data in document["stages"]]
    # The whole graph first: a hand-written document may loop back on itself, which is a
    # CycleError naming the loop, not "add that stage first" from add_stage below.
    graph.topological_order(name, stages)
    for stage in stages:
        flow.add_stage(stage)
    flow.validate()
    expected = document.get("version")
    if expected is not None and expected != flow.version:
        raise FlowSerializationError(
            f"flow {name!r} was saved at version {expected} but the code imported now gives "
            f"version {flow.version}: some stage's code changed since it was saved",
            flow=name,
        )
    return flow


def _digest(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def stage_version(stage: Stage) -> str:
    """A hash of one stage's settings and code; it changes when its function body does."""
    data: dict[str, Any] = {
        "kind": stage.kind.value,
        "outputs": list(stage.outputs),
        "keyed": stage.keyed,
        # Every stage hashes these two, as when one record held every kind's fields:
        # versions, and so step caches and saved flows, stay what they were.
        "running": False,
        "sink_mode": None,
        **stage.kind_settings(),
    }
    if stage.cache:  # only when set, so that other stages keep the versions they had
        data["cache"] = True
    for field in ("reads", "writes"):  # likewise: declared data changes the step's contract
        if getattr(stage, field):
            data[field] = list(getattr(stage, field))
    for field, value in stage.callables().items():
        if value is None:
            continue
        if stage.kind is StageKind.PROCESS and field == "fn":
            data[field] = {
                "spec": callables.fingerprint(type(value)),
                "fields": {
                    f.name: callables.fingerprint(getattr(value, f.name))
                    if callable(getattr(value, f.name))
                    else repr(getattr(value, f.name))
                    for f in dataclasses.fields(value)
                },
            }
        elif stage.is_source and field == "fn":
            inner = getattr(value, "function", None) or value
            data[field] = callables.fingerprint(type(inner) if not callable(inner) else inner)
        else:
            data[field] = callables.fingerprint(value)
    return _digest(data)


def flow_version(flow: Flow) -> str:
    """A hash of the flow's name, its structure and every stage's version."""
    return _digest(
        {
            "name": flow.name,
            "stages": [
                [stage.name, [str(p) for p in stage.inputs], stage_version(stage)]
                for stage in flow.stages
            ],
        }
    )
