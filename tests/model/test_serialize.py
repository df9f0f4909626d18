"""Flows to JSON and back, and their versions."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import riverbed as rb
from riverbed._model import serialize
from tests.model import flowlib
from tests.model.expect import assert_names

ROOT = Path(__file__).resolve().parents[2]


# -- round trip --------------------------------------------------------------------------


def test_round_trip_keeps_version_and_description() -> None:
    """``from_json(to_json(flow))`` has the same version and the same ``describe()``."""
    flow = flowlib.full_flow()
    back = rb.Flow.from_json(flow.to_json())
    assert back.version == flow.version
    assert back.describe() == flow.describe()
    assert back.name == flow.name


def test_round_trip_keeps_every_stage_field() -> None:
    """Each stage comes back equal field by field (sources as equivalent readers)."""
    flow = flowlib.full_flow()
    back = rb.Flow.from_json(flow.to_json())
    assert [s.name for s in back.stages] == [s.name for s in flow.stages]
    for old, new in zip(flow.stages, back.stages, strict=True):
        if old.is_source:
            assert repr(new.fn) == repr(old.fn)
            assert new.inputs == old.inputs
            assert new.outputs == old.outputs
        else:
            assert new == old


def test_round_trip_keeps_the_flow_policy() -> None:
    """The flow's own on_error and retry come back."""
    flow = flowlib.full_flow()
    back = rb.Flow.from_json(flow.to_json())
    assert back.on_error is rb.OnError.SKIP
    assert back.retry == flow.retry


def test_round_trip_is_a_fixed_point() -> None:
    """Serializing the rebuilt flow gives the very same document."""
    text = flowlib.full_flow().to_json()
    assert rb.Flow.from_json(text).to_json() == text


def test_round_trip_list_source_reads_the_same_events() -> None:
    """A list source is stored as its items and rebuilt as a source of them."""
    flow = rb.Flow("items")
    flow.source([1, "two", None, [3]]).sink(print)
    source = rb.Flow.from_json(flow.to_json()).stage("source").fn
    reader = source.open(source.partitions()[0], None)
    assert reader.read(10) == [1, "two", None, [3]]


def test_round_trip_producer_function_source() -> None:
    """A producer function source is stored as its function and rebuilt as a producer; a
    Producer with a state is refused, named."""
    flow = rb.Flow("producer")
    flow.source(flowlib.up_to_limit, name="numbers").sink(print)
    source = rb.Flow.from_json(flow.to_json()).stage("numbers").fn
    assert isinstance(source, rb.Producer)
    assert source.open("0", None).read(3) == [0, 1, 2]
    stateful = rb.Flow("stateful-producer")
    stateful.source(rb.Producer(flowlib.add, state=flowlib.zero), name="numbers").sink(print)
    with pytest.raises(rb.FlowSerializationError, match="stage 'numbers': cannot serialize"):
        stateful.to_json()


def test_document_shape() -> None:
    """The document names its format, the flow, its version and its stages."""
    flow = rb.Flow("shape")
    flow.source(flowlib.numbers).map(flowlib.double).sink(print)
    document = json.loads(flow.to_json(indent=None))
    assert document["riverbed_flow"] == 1
    assert document["name"] == "shape"
    assert document["version"] == flow.version
    assert [s["name"] for s in document["stages"]] == ["numbers", "double", "print"]
    assert document["stages"][1]["fn"] == {"ref": "tests.model.flowlib:double"}
    assert document["stages"][1]["inputs"] == [["numbers", "out"]]


def _chain(ops: list[tuple[int, bool]]) -> rb.Flow:
    flow = rb.Flow("generated")
    stream = flow.source(flowlib.NUMBERS)
    keyed: rb.KeyedStream | None = None
    for op, named in ops:
        name = f"s{len(flow.stages)}" if named else None
        if op == 0:
            stream = stream.map(flowlib.double, name=name)
        elif op == 1:
            stream = stream.filter(flowlib.is_even, name=name)
        elif op == 2:
            stream = stream.flat_map(flowlib.explode, name=name)
        elif op == 3:
            keyed = stream.key_by(flowlib.key_of, name=name)
            stream = keyed
        elif op == 4 and keyed is stream and keyed is not None:
            stream = keyed.fold(flowlib.zero, flowlib.add, name=name)
            keyed = None
        else:
            stream = stream.inspect(flowlib.log, name=name)
    stream.sink(print)
    return flow


@given(st.lists(st.tuples(st.integers(0, 5), st.booleans()), max_size=10))
def test_any_chain_round_trips(ops: list[tuple[int, bool]]) -> None:
    """Any chain of importable stages survives the JSON round trip unchanged."""
    flow = _chain(ops)
    back = rb.Flow.from_json(flow.to_json())
    assert back.version == flow.version
    assert back.describe() == flow.describe()


# -- what cannot be serialized -----------------------------------------------------------


def test_lambda_names_its_stage() -> None:
    """``to_json`` of a lambda is a FlowSerializationError naming stage and lambda."""
    fn = lambda x: x * 2  # noqa: E731 - the point is a lambda
    flow = rb.Flow("lambdas")
    flow.source(flowlib.NUMBERS).map(fn).sink(print)
    with pytest.raises(rb.FlowSerializationError, match="move it to module level") as caught:
        flow.to_json()
    assert_names(caught.value, stage="map", fn=fn)
    assert caught.value.flow == "lambdas"


def test_local_function_names_its_stage() -> None:
    """A function defined inside another cannot be imported by name either."""

    def local(x: int) -> int:
        return x

    flow = rb.Flow("locals")
    flow.source(flowlib.NUMBERS).map(local, name="step").sink(print)
    with pytest.raises(rb.FlowSerializationError, match="cannot serialize its fn") as caught:
        flow.to_json()
    assert_names(caught.value, stage="step", fn=local)


def test_lambda_initial_names_its_stage() -> None:
    """A lambda as a fold's ``initial`` is named as that field of that stage."""
    flow = rb.Flow("initials")
    fn = lambda: 0  # noqa: E731 - the point is a lambda
    flow.source(flowlib.NUMBERS).key_by(flowlib.key_of).fold(fn, flowlib.add).sink(print)
    with pytest.raises(rb.FlowSerializationError, match="its initial") as caught:
        flow.to_json()
    assert_names(caught.value, stage="add", fn=fn)


def test_sink_object_instance_cannot_be_serialized() -> None:
    """A sink object is an instance, not an importable name."""
    flow = rb.Flow("objects")
    flow.source(flowlib.NUMBERS).sink(flowlib.Printer())
    with pytest.raises(
        rb.FlowSerializationError, match=r"tests\.model\.flowlib\.Printer"
    ) as caught:
        flow.to_json()
    assert_names(caught.value, stage="printer")


def test_list_source_of_non_json_events() -> None:
    """A list source whose events are not JSON-able cannot be stored."""
    flow = rb.Flow("objects")
    flow.source([object()]).sink(print)
    with pytest.raises(rb.FlowSerializationError, match="not JSON-able") as caught:
        flow.to_json()
    assert_names(caught.value, stage="source")


def test_generator_object_source_cannot_be_serialized() -> None:
    """A one-shot generator object has no name to import."""
    flow = rb.Flow("objects")
    flow.source(flowlib.numbers()).sink(print)
    with pytest.raises(rb.FlowSerializationError) as caught:
        flow.to_json()
    assert_names(caught.value, stage="source")


# -- from_json of bad documents ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("{not json", "not a JSON document"),
        ("[1, 2]", "not a riverbed flow document"),
        ('{"riverbed_flow": 99, "name": "x", "stages": []}', "format 1"),
        ('{"riverbed_flow": 1, "stages": []}', "needs a string 'name'"),
        ('{"riverbed_flow": 1, "name": "x"}', "a list 'stages'"),
        ('{"riverbed_flow": 1, "name": "x", "stages": [3]}', "string 'name'"),
        ('{"riverbed_flow": 1, "name": "x", "on_error": "sometimes", "stages": []}', "flow policy"),
    ],
)
def test_bad_documents(text: str, match: str) -> None:
    """What is not a flow document is a FlowSerializationError saying why."""
    with pytest.raises(rb.FlowSerializationError, match=match):
        rb.Flow.from_json(text)


def _doc(*stages: dict[str, Any], **extra: Any) -> str:
    return json.dumps({"riverbed_flow": 1, "name": "hand", "stages": list(stages), **extra})


SOURCE = {"name": "src", "kind": "source", "fn": {"items": [1, 2]}}


def test_unimportable_reference_names_the_stage() -> None:
    """A reference that does not import names the stage and the reference."""
    text = _doc(
        SOURCE,
        {
            "name": "gone",
            "kind": "sink",
            "inputs": [["src", "out"]],
            "fn": {"ref": "tests.model.flowlib:vanished"},
        },
    )
    with pytest.raises(
        rb.FlowSerializationError, match=r"cannot import 'tests\.model\.flowlib:vanished'"
    ) as caught:
        rb.Flow.from_json(text)
    assert_names(caught.value, stage="gone")


@pytest.mark.parametrize(
    "stage",
    [
        {"name": "bad", "kind": "mapp", "inputs": [["src", "out"]]},
        {"name": "bad", "inputs": [["src", "out"]]},
        {"name": "bad", "kind": "map", "inputs": [["src"]]},
        {"name": "bad", "kind": "map", "inputs": [["src", "out"]], "fn": "double"},
        {"name": "bad", "kind": "map", "inputs": [["src", "out"]], "on_error": "never"},
        {"name": "bad", "kind": "map", "inputs": [["src", "out"]], "retry": {"tries": 2}},
        {"name": "bad", "kind": "sink", "inputs": [["src", "out"]], "sink_mode": "sometimes"},
    ],
)
def test_malformed_stage_names_the_stage(stage: dict[str, Any]) -> None:
    """A malformed stage entry is a FlowSerializationError naming that stage."""
    with pytest.raises(rb.FlowSerializationError, match="malformed stage") as caught:
        rb.Flow.from_json(_doc(SOURCE, stage))
    assert_names(caught.value, stage="bad")


def test_hand_written_document_gets_builder_defaults() -> None:
    """Missing ``outputs`` and ``sink_mode`` default to what the builder would make."""
    text = _doc(
        SOURCE,
        {
            "name": "twice",
            "kind": "map",
            "inputs": [["src", "out"]],
            "fn": {"ref": "tests.model.flowlib:double"},
        },
        {
            "name": "show",
            "kind": "sink",
            "inputs": [["twice", "out"]],
            "fn": {"ref": "builtins:print"},
        },
    )
    flow = rb.Flow.from_json(text)
    assert flow.stage("src").outputs == ("out",)
    assert flow.stage("twice").outputs == ("out",)
    assert flow.stage("show").outputs == ()
    assert flow.stage("show").sink_mode is rb.SinkMode.EVENT
    built = rb.Flow("hand")
    built.source([1, 2], name="src").map(flowlib.double, name="twice").sink(print, name="show")
    assert flow.version == built.version


def test_version_mismatch_is_refused() -> None:
    """A document saved at another version than its code now gives is refused."""
    flow = rb.Flow("saved")
    flow.source(flowlib.NUMBERS).map(flowlib.double).sink(print)
    document = json.loads(flow.to_json())
    document["version"] = "0" * 16
    with pytest.raises(rb.FlowSerializationError, match="some stage's code changed") as caught:
        rb.Flow.from_json(json.dumps(document))
    assert caught.value.flow == "saved"


def test_hand_written_dangling_document_is_refused() -> None:
    """A document that validates badly raises the same error the builder would."""
    text = _doc(
        SOURCE,
        {
            "name": "twice",
            "kind": "map",
            "inputs": [["src", "out"]],
            "fn": {"ref": "tests.model.flowlib:double"},
        },
    )
    with pytest.raises(rb.DanglingStreamError) as caught:
        rb.Flow.from_json(text)
    assert_names(caught.value, stage="twice", fn=flowlib.double)


# -- versions ----------------------------------------------------------------------------


def _flow_of(fn: Any, name: str = "versions") -> rb.Flow:
    flow = rb.Flow(name)
    flow.source(flowlib.NUMBERS).map(fn, name="step").sink(print)
    return flow


def _exec_def(body: str) -> Any:
    namespace: dict[str, Any] = {"__name__": "generated"}
    exec(compile(f"def step(x):\n    return {body}\n", "generated.py", "exec"), namespace)
    return namespace["step"]


def test_version_is_deterministic() -> None:
    """Building the same flow twice gives the same version."""
    assert flowlib.full_flow().version == flowlib.full_flow().version


def test_version_changes_when_a_function_body_changes() -> None:
    """Same-named defs with other bodies give other stage and flow versions."""
    one, same, other = _exec_def("x + 1"), _exec_def("x + 1"), _exec_def("x + 2")
    assert one.__qualname__ == other.__qualname__ == "step"
    assert _flow_of(one).version == _flow_of(same).version
    assert _flow_of(one).version != _flow_of(other).version
    step = [_flow_of(fn).stage("step") for fn in (one, same, other)]
    assert serialize.stage_version(step[0]) == serialize.stage_version(step[1])
    assert serialize.stage_version(step[0]) != serialize.stage_version(step[2])


def test_version_changes_with_the_structure() -> None:
    """Another flow name, another stage, or another wiring gives another version."""
    base = _flow_of(flowlib.double)
    assert _flow_of(flowlib.double, name="renamed").version != base.version
    longer = rb.Flow("versions")
    longer.source(flowlib.NUMBERS).map(flowlib.double, name="step").inspect(flowlib.log).sink(print)
    assert longer.version != base.version
    rewired = rb.Flow("versions")
    source = rewired.source(flowlib.NUMBERS)
    source.map(flowlib.double, name="step").sink(flowlib.collect, name="print")
    assert rewired.version != base.version


def test_stage_version_depends_on_the_stage_kind() -> None:
    """The same function as a map and as a filter gives different stage versions."""
    flow = rb.Flow("kinds")
    source = flow.source(flowlib.NUMBERS)
    source.map(flowlib.is_even, name="as_map").sink(print)
    source.filter(flowlib.is_even, name="as_filter").sink(print)
    assert serialize.stage_version(flow.stage("as_map")) != serialize.stage_version(
        flow.stage("as_filter")
    )


_VERSION_SCRIPT = """
import sys
sys.path[:0] = [{root!r}, {src!r}]
import riverbed as rb
from tests.model import flowlib
flow = rb.Flow("seeded")
letters = flow.source(["a", "b"]).filter(flowlib.is_vowel)
letters.map(flowlib.double).sink(print)
print(flow.version)
"""


def _version_in_subprocess(seed: str) -> str:
    script = _VERSION_SCRIPT.format(root=str(ROOT), src=str(ROOT / "src"))
    env = {**os.environ, "PYTHONHASHSEED": seed}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_version_is_the_same_in_every_process() -> None:
    """A version ignores the hash seed, even for set literals (salted frozensets)."""
    versions = {_version_in_subprocess(seed) for seed in ("0", "1", "2", "12345")}
    assert len(versions) == 1
    flow = rb.Flow("seeded")
    flow.source(["a", "b"]).filter(flowlib.is_vowel).map(flowlib.double).sink(print)
    assert versions == {flow.version}


def test_partial_source_gets_a_message_about_the_partial() -> None:
    """A functools.partial has no import name: the error says so and what to write."""
    flow = rb.Flow("partial")
    flow.source(functools.partial(flowlib.numbers), name="nums").sink(print, name="out")
    with pytest.raises(rb.FlowSerializationError, match="a partial has no import name") as caught:
        flow.to_json()
    assert "tests.model.flowlib.numbers" in str(caught.value)
    assert caught.value.stage == "nums"


def test_a_plain_starting_value_round_trips_through_json():
    flow = rb.Flow("plain-json")
    flow.source(flowlib.NUMBERS).key_by(flowlib.key_of).fold(0, flowlib.add, name="f").sink(print)
    again = rb.Flow.from_json(flow.to_json())
    assert again.stage("f").initial() == 0
    assert again.version == flow.version
