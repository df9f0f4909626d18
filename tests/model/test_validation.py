"""Build-time mistakes: each raises its own error class, and the message names the stage
and the user's function (module, name, file and line) so the mistake can be found."""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable
from typing import Any

import pytest

import riverbed as rb
from riverbed._model import graph
from tests.model import flowlib
from tests.model.expect import assert_names


def numbers_flow(name: str = "checks") -> tuple[rb.Flow, rb.Stream]:
    flow = rb.Flow(name)
    return flow, flow.source(flowlib.NUMBERS)


def keyed_flow() -> tuple[rb.Flow, rb.KeyedStream]:
    flow, source = numbers_flow()
    return flow, source.key_by(flowlib.key_of)


# -- the hierarchy -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "bases"),
    [
        (rb.FlowDefinitionError, (rb.RiverbedError, ValueError)),
        (rb.NotCallableError, (rb.FlowDefinitionError, TypeError)),
        (rb.SignatureError, (rb.FlowDefinitionError, TypeError)),
        (rb.DuplicateStageError, (rb.FlowDefinitionError,)),
        (rb.DanglingStreamError, (rb.FlowDefinitionError,)),
        (rb.CycleError, (rb.FlowDefinitionError,)),
        (rb.FlowSerializationError, (rb.RiverbedError, ValueError)),
    ],
)
def test_build_errors_subclass_the_fitting_builtins(error: type, bases: tuple[type, ...]) -> None:
    """Each build-time error is a RiverbedError and the built-in it resembles."""
    assert issubclass(error, rb.RiverbedError)
    for base in bases:
        assert issubclass(error, base)


# -- a stream that goes nowhere ----------------------------------------------------------


def test_dangling_map_names_stage_and_function() -> None:
    """A map whose output nothing reads is a DanglingStreamError naming it and its def."""
    flow, source = numbers_flow()
    source.map(flowlib.double)
    with pytest.raises(rb.DanglingStreamError, match="goes nowhere") as caught:
        flow.validate()
    assert_names(caught.value, stage="double", fn=flowlib.double)
    assert caught.value.flow == "checks"


def test_dangling_lambda_names_its_location() -> None:
    """A dangling lambda stage is named by the operator and located by file and line."""
    flow, source = numbers_flow()
    fn = lambda x: x  # noqa: E731 - the point is a lambda
    source.filter(fn)
    with pytest.raises(rb.DanglingStreamError) as caught:
        flow.validate()
    assert_names(caught.value, stage="filter", fn=fn)


def test_dangling_source_names_the_source() -> None:
    """A source that nothing reads is dangling too."""
    flow, _ = numbers_flow()
    with pytest.raises(rb.DanglingStreamError, match="source IterableSource") as caught:
        flow.validate()
    assert_names(caught.value, stage="source")


def test_dangling_branch_side_names_the_output() -> None:
    """Using only one side of a branch leaves the other dangling, named by output."""
    flow, source = numbers_flow()
    source.branch(flowlib.is_even).trues.sink(print)
    with pytest.raises(rb.DanglingStreamError, match=r"\(output 'false'\)") as caught:
        flow.validate()
    assert_names(caught.value, stage="is_even", fn=flowlib.is_even)


def test_dangling_route_output() -> None:
    """An unused route output is dangling, named by output."""
    flow, source = numbers_flow()
    routes = source.route(flowlib.parity, ["even", "odd"])
    routes.even.sink(print)
    with pytest.raises(rb.DanglingStreamError, match=r"\(output 'odd'\)") as caught:
        flow.validate()
    assert_names(caught.value, stage="parity", fn=flowlib.parity)


def test_dangling_stateful_names_the_method() -> None:
    """A dangling stateful stage is described by its class's method."""
    flow, keyed = keyed_flow()
    keyed.stateful(flowlib.Average, flowlib.Average.add)
    with pytest.raises(rb.DanglingStreamError, match="stateful") as caught:
        flow.validate()
    assert_names(caught.value, stage="add", fn=flowlib.Average.add)


def test_dangling_merge() -> None:
    """A merge nothing reads is dangling."""
    flow = rb.Flow("checks")
    rb.merge(flow.source(flowlib.NUMBERS, name="a"), flow.source(flowlib.NUMBERS, name="b"))
    with pytest.raises(rb.DanglingStreamError, match="a merge") as caught:
        flow.validate()
    assert_names(caught.value, stage="merge")


@pytest.mark.parametrize("action", ["validate", "to_mermaid", "to_json"])
def test_dangling_is_caught_by_every_consumer_of_the_graph(action: str) -> None:
    """Drawing and serializing validate first, as running does."""
    flow, source = numbers_flow()
    source.map(flowlib.double)
    with pytest.raises(rb.DanglingStreamError):
        getattr(flow, action)()


def test_a_complete_flow_validates() -> None:
    """A flow whose every stream ends in a sink passes validation."""
    flow, source = numbers_flow()
    trues, falses = source.branch(flowlib.is_even)
    trues.map(flowlib.double).sink(print)
    falses.key_by(flowlib.key_of).fold(flowlib.zero, flowlib.add).sink(print)
    flow.validate()


def test_flow_without_a_source_is_refused() -> None:
    """A flow needs at least one source."""
    with pytest.raises(rb.FlowDefinitionError, match="no source"):
        rb.Flow("empty").validate()


# -- not callable ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "stage"),
    [
        (lambda s: s.map(5), "map"),
        (lambda s: s.flat_map("explode"), "flat_map"),
        (lambda s: s.filter(None), "filter"),
        (lambda s: s.inspect(3.5), "inspect"),
        (lambda s: s.key_by([1]), "key_by"),
        (lambda s: s.branch(True), "branch"),
        (lambda s: s.route("x", ["x"]), "route"),
        (lambda s: s.sink(5), "sink"),
        (lambda s: s.sink_batch("out.txt"), "sink"),
    ],
)
def test_not_callable_names_the_stage_and_value(
    build: Callable[[rb.Stream], Any], stage: str
) -> None:
    """A value where a function goes is a NotCallableError naming stage and value."""
    _, source = numbers_flow()
    with pytest.raises(rb.NotCallableError, match="must be callable") as caught:
        build(source)
    assert_names(caught.value, stage=stage)


def test_not_callable_uses_the_explicit_stage_name() -> None:
    """With ``name=``, the message names that stage."""
    _, source = numbers_flow()
    with pytest.raises(rb.NotCallableError, match=r"got int 42") as caught:
        source.map(42, name="answer")  # type: ignore[arg-type]
    assert_names(caught.value, stage="answer")


def test_result_of_calling_instead_of_the_function() -> None:
    """Passing ``double(2)`` instead of ``double`` hints at the mistake."""
    _, source = numbers_flow()
    with pytest.raises(rb.NotCallableError, match="not the result of calling it"):
        source.map(flowlib.double(2))  # type: ignore[arg-type]


def test_state_method_by_name_that_is_not_callable() -> None:
    """``stateful(Cls, "attr")`` where the attribute is data is a NotCallableError."""
    _, keyed = keyed_flow()
    with pytest.raises(rb.NotCallableError, match="state method") as caught:
        keyed.stateful(flowlib.SelfOnly, "limit")
    assert_names(caught.value, stage="stateful")


def test_fold_initial_may_be_a_plain_value() -> None:
    """``fold(0, add)`` (a value, not a factory) is taken as the start of every key: before
    issue 10 it was a NotCallableError, the first thing new users tripped on."""
    _, keyed = keyed_flow()
    folded = keyed.fold(0, flowlib.add)
    assert folded.flow.stage("add").initial() == 0


def test_stateful_initial_may_be_a_plain_value() -> None:
    """``stateful(fn, initial=0)``: every key starts from 0 (as ``fold(0, fn)``)."""
    _, keyed = keyed_flow()
    counted = keyed.stateful(flowlib.count, initial=0)
    assert counted.flow.stage("count").initial() == 0


# -- wrong number of parameters ----------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "fn", "stage"),
    [
        (lambda s: s.map(flowlib.two_args), flowlib.two_args, "two_args"),
        (lambda s: s.map(flowlib.no_args), flowlib.no_args, "no_args"),
        (lambda s: s.flat_map(flowlib.two_args), flowlib.two_args, "two_args"),
        (lambda s: s.filter(flowlib.no_args), flowlib.no_args, "no_args"),
        (lambda s: s.inspect(flowlib.three_args), flowlib.three_args, "three_args"),
        (lambda s: s.key_by(flowlib.two_args), flowlib.two_args, "two_args"),
        (lambda s: s.branch(flowlib.no_args), flowlib.no_args, "no_args"),
        (lambda s: s.route(flowlib.two_args, ["a"]), flowlib.two_args, "two_args"),
        (lambda s: s.sink(flowlib.two_args), flowlib.two_args, "two_args"),
        (lambda s: s.sink_batch(flowlib.no_args), flowlib.no_args, "no_args"),
        (lambda s: s.map(flowlib.two_args, name="mine"), flowlib.two_args, "mine"),
    ],
)
def test_one_event_operators_want_one_parameter(
    build: Callable[[rb.Stream], Any], fn: Callable[..., Any], stage: str
) -> None:
    """Per-event operators refuse defs that cannot take one argument, naming them."""
    _, source = numbers_flow()
    with pytest.raises(rb.SignatureError, match="with 1 positional argument;") as caught:
        build(source)
    assert_names(caught.value, stage=stage, fn=fn)


def test_state_class_whose_constructor_wants_arguments() -> None:
    """A state class whose __init__ needs arguments is refused, located at __init__."""
    _, keyed = keyed_flow()
    with pytest.raises(rb.SignatureError, match=r"state class .*takes \(size\)") as caught:
        keyed.stateful(flowlib.NeedsArg, flowlib.NeedsArg.add)
    assert_names(caught.value, stage="add", fn=flowlib.NeedsArg)


def test_state_method_without_a_value_parameter() -> None:
    """A state method ``def update(self)`` (no value parameter) is refused."""
    _, keyed = keyed_flow()
    with pytest.raises(rb.SignatureError, match=r"takes \(self\).* 2 positional") as caught:
        keyed.stateful(flowlib.SelfOnly, flowlib.SelfOnly.update)
    assert_names(caught.value, stage="update", fn=flowlib.SelfOnly.update)


def test_state_method_by_name_is_checked_too() -> None:
    """``stateful(Cls, "method")`` checks the named method like a passed one."""
    _, keyed = keyed_flow()
    with pytest.raises(rb.SignatureError) as caught:
        keyed.stateful(flowlib.SelfOnly, "update", name="counter")
    assert_names(caught.value, stage="counter", fn=flowlib.SelfOnly.update)


@pytest.mark.parametrize("fn", [flowlib.one_arg, flowlib.three_args])
def test_stateful_function_wants_state_and_value(fn: Callable[..., Any]) -> None:
    """The function form is called as ``fn(state, value)``."""
    _, keyed = keyed_flow()
    with pytest.raises(rb.SignatureError, match="with 2 positional arguments") as caught:
        keyed.stateful(fn, initial=int)
    assert_names(caught.value, stage=fn.__name__, fn=fn)


def test_stateful_initial_takes_no_arguments() -> None:
    """``initial`` is called with no arguments; the error names the stage it belongs to."""
    _, keyed = keyed_flow()
    with pytest.raises(rb.SignatureError, match="initial") as caught:
        keyed.stateful(flowlib.count, initial=flowlib.one_arg)
    assert_names(caught.value, stage="count", fn=flowlib.one_arg)


@pytest.mark.parametrize("fn", [flowlib.one_arg, flowlib.three_args])
def test_fold_function_wants_accumulator_and_value(fn: Callable[..., Any]) -> None:
    """``fold`` and ``reduce`` call ``fn(acc, value)``."""
    _, keyed = keyed_flow()
    with pytest.raises(rb.SignatureError, match="with 2 positional arguments") as caught:
        keyed.fold(flowlib.zero, fn)
    assert_names(caught.value, stage=fn.__name__, fn=fn)
    with pytest.raises(rb.SignatureError, match="with 2 positional arguments") as caught:
        keyed.reduce(fn, name="r")
    assert_names(caught.value, stage="r", fn=fn)


def test_fold_initial_takes_no_arguments() -> None:
    """A fold ``initial`` with a parameter is refused, naming the fold's own stage."""
    _, keyed = keyed_flow()
    with pytest.raises(rb.SignatureError, match="initial") as caught:
        keyed.fold(flowlib.one_arg, flowlib.add)
    assert_names(caught.value, stage="add", fn=flowlib.one_arg)


@pytest.mark.parametrize(
    "fn",
    [
        flowlib.double,
        functools.partial(flowlib.add, 1),
        lambda x, scale=2: x * scale,
        lambda *events: events,
        flowlib.MyMapper(),
        len,
        str,
    ],
)
def test_callables_that_fit_one_argument_are_accepted(fn: Callable[..., Any]) -> None:
    """Defaults, ``*args``, partials, callable objects and fitting builtins pass."""
    _, source = numbers_flow()
    source.map(fn).sink(print)


# -- stateful on an unkeyed stream --------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "operator", "fn"),
    [
        (lambda s: s.stateful(flowlib.Average, flowlib.Average.add), "stateful", flowlib.Average),
        (lambda s: s.stateful(flowlib.count, initial=int), "stateful", flowlib.count),
        (lambda s: s.fold(flowlib.zero, flowlib.add), "fold", flowlib.add),
        (lambda s: s.reduce(flowlib.add), "reduce", flowlib.add),
    ],
)
def test_per_key_operators_need_a_keyed_stream(
    build: Callable[[rb.Stream], Any], operator: str, fn: Callable[..., Any]
) -> None:
    """stateful/fold/reduce unkeyed point to key_by, naming operator, def and stage."""
    _, source = numbers_flow()
    mapped = source.map(flowlib.double)
    with pytest.raises(rb.FlowDefinitionError, match=r"needs a keyed stream.*key_by") as caught:
        build(mapped)
    assert str(caught.value).startswith(operator)
    assert_names(caught.value, stage="double", fn=fn)


def test_stateful_class_needs_a_method() -> None:
    """``stateful(Class)`` without the method says which method form to use."""
    _, keyed = keyed_flow()
    with pytest.raises(rb.FlowDefinitionError, match=r"stateful\(Average, Average.update\)"):
        keyed.stateful(flowlib.Average)


def test_stateful_class_with_unknown_method_name() -> None:
    """A method name the class lacks is refused, naming the class."""
    _, keyed = keyed_flow()
    with pytest.raises(rb.FlowDefinitionError, match="Average has no method 'update'"):
        keyed.stateful(flowlib.Average, "update")


def test_stateful_function_with_a_method_is_refused() -> None:
    """A method only goes with a class."""
    _, keyed = keyed_flow()
    with pytest.raises(rb.FlowDefinitionError, match=r"flowlib\.count .*is not a class"):
        keyed.stateful(flowlib.count, flowlib.Average.add)


# -- duplicate names ---------------------------------------------------------------------


def test_duplicate_explicit_name_names_both_stages() -> None:
    """A reused name is a DuplicateStageError naming the stage and its holder's def."""
    _, source = numbers_flow()
    source.map(flowlib.double, name="step").sink(print)
    with pytest.raises(rb.DuplicateStageError, match="already has a stage named") as caught:
        source.map(flowlib.is_even, name="step")
    assert_names(caught.value, stage="step", fn=flowlib.double)
    assert caught.value.flow == "checks"


def test_explicit_name_equal_to_a_derived_one() -> None:
    """An explicit name that a derived name already took is a duplicate too."""
    _, source = numbers_flow()
    source.map(flowlib.double).sink(print)
    with pytest.raises(rb.DuplicateStageError) as caught:
        source.filter(flowlib.is_even, name="double")
    assert_names(caught.value, stage="double", fn=flowlib.double)


@pytest.mark.parametrize(
    "build",
    [
        lambda f, s: f.source(flowlib.NUMBERS, name="taken"),
        lambda f, s: s.sink(print, name="taken"),
        lambda f, s: s.sink(flowlib.Printer(), name="taken"),
        lambda f, s: rb.merge(s, name="taken"),
        lambda f, s: s.branch(flowlib.is_even, name="taken"),
        lambda f, s: s.key_by(flowlib.key_of).stateful(flowlib.Average, "add", name="taken"),
        lambda f, s: s.key_by(flowlib.key_of).values(name="taken"),
    ],
)
def test_every_builder_refuses_a_taken_name(build: Callable[[rb.Flow, rb.Stream], Any]) -> None:
    """Sources, sinks, merges, branches, stateful and values stages all check the name."""
    flow, source = numbers_flow()
    source.map(flowlib.double, name="taken").sink(print)
    with pytest.raises(rb.DuplicateStageError) as caught:
        build(flow, source)
    assert_names(caught.value, stage="taken", fn=flowlib.double)


def test_add_stage_refuses_a_taken_name() -> None:
    """``add_stage`` with a name in use is a DuplicateStageError."""
    flow, _ = numbers_flow()
    with pytest.raises(rb.DuplicateStageError) as caught:
        flow.add_stage(rb.Stage(name="source", kind=rb.StageKind.SOURCE, fn=flowlib.NUMBERS))
    assert_names(caught.value, stage="source")


@pytest.mark.parametrize("name", ["", "has space", "a/b", "ünïcode", 7])
def test_invalid_explicit_stage_names(name: Any) -> None:
    """Explicit stage names use the flow-name alphabet; others are refused, also ``""``."""
    _, source = numbers_flow()
    with pytest.raises(rb.FlowDefinitionError, match="is not valid"):
        source.map(flowlib.double, name=name)


def test_empty_source_name_is_refused() -> None:
    """``source(..., name="")`` is refused rather than quietly replaced by a derived name."""
    flow = rb.Flow("checks")
    with pytest.raises(rb.FlowDefinitionError, match="stage name '' is not valid"):
        flow.source(flowlib.NUMBERS, name="")


# -- cycles ------------------------------------------------------------------------------


def _stage(
    name: str, *inputs: str, fn: Any = flowlib.double, kind: rb.StageKind = rb.StageKind.MAP
) -> rb.Stage:
    return rb.Stage(name=name, kind=kind, inputs=tuple(rb.Port(i) for i in inputs), fn=fn)


def _document(*stages: dict[str, Any]) -> str:
    return json.dumps({"riverbed_flow": 1, "name": "loop", "stages": list(stages)})


SOURCE = {"name": "src", "kind": "source", "fn": {"items": [1, 2]}}
SINK = {"name": "out", "kind": "sink", "inputs": [["b", "out"]], "fn": {"ref": "builtins:print"}}


def test_cycle_in_a_hand_written_document() -> None:
    """A looping JSON document is a CycleError naming the loop's stages and defs."""
    text = _document(
        SOURCE,
        {
            "name": "a",
            "kind": "map",
            "inputs": [["src", "out"], ["b", "out"]],
            "fn": {"ref": "tests.model.flowlib:double"},
        },
        {
            "name": "b",
            "kind": "filter",
            "inputs": [["a", "out"]],
            "fn": {"ref": "tests.model.flowlib:is_even"},
        },
        SINK,
    )
    with pytest.raises(rb.CycleError, match="has a cycle") as caught:
        rb.Flow.from_json(text)
    message = str(caught.value)
    assert message.startswith("flow 'loop' has a cycle: 'a' (map tests.model.flowlib.double")
    assert "-> 'b' (filter tests.model.flowlib.is_even" in message
    assert_names(caught.value, stage="a", fn=flowlib.double)
    assert_names(caught.value, stage="b", fn=flowlib.is_even, attribute=False)
    assert "'out'" not in message  # downstream of the loop, not on it


def test_self_loop_in_a_document() -> None:
    """A stage reading its own output is a cycle of one."""
    text = _document(
        SOURCE,
        {
            "name": "b",
            "kind": "map",
            "inputs": [["src", "out"], ["b", "out"]],
            "fn": {"ref": "tests.model.flowlib:double"},
        },
        SINK,
    )
    with pytest.raises(rb.CycleError, match=r"cycle: 'b' \(map .*\) -> 'b'") as caught:
        rb.Flow.from_json(text)
    assert_names(caught.value, stage="b", fn=flowlib.double)


def test_cycle_of_stage_records() -> None:
    """``graph.validate`` on records that loop raises CycleError naming the loop only."""
    stages = [
        _stage("src", kind=rb.StageKind.SOURCE, fn=flowlib.NUMBERS),
        _stage("a", "src", "c"),
        _stage("b", "a", fn=flowlib.is_even),
        _stage("c", "b", fn=flowlib.explode),
        _stage("after", "c", fn=flowlib.log),
    ]
    with pytest.raises(rb.CycleError) as caught:
        graph.validate("loop", stages)
    message = str(caught.value)
    assert "cycle: 'a' (map" in message
    assert "-> 'b' (map" in message
    assert "-> 'c' (map" in message
    assert "-> 'a' (map" in message
    assert "'after'" not in message
    assert_names(caught.value, stage="a", fn=flowlib.double)
    assert_names(caught.value, stage="c", fn=flowlib.explode, attribute=False)
    assert caught.value.flow == "loop"


def test_add_stage_refuses_forward_references() -> None:
    """``add_stage`` refuses inputs not yet in the flow, so builders make no cycles."""
    flow, _ = numbers_flow()
    with pytest.raises(
        rb.FlowDefinitionError, match=r"reads from 'later'.*add that stage first"
    ) as caught:
        flow.add_stage(_stage("early", "source", "later"))
    assert_names(caught.value, stage="early")


def test_add_stage_refuses_unknown_output_ports() -> None:
    """Reading an output the upstream stage does not have is refused, listing its outputs."""
    flow, source = numbers_flow()
    source.branch(flowlib.is_even)
    bad = rb.Stage(
        name="reader",
        kind=rb.StageKind.MAP,
        inputs=(rb.Port("is_even", "maybe"),),
        fn=flowlib.double,
    )
    with pytest.raises(
        rb.FlowDefinitionError, match=r"output 'maybe'.*\['true', 'false'\]"
    ) as caught:
        flow.add_stage(bad)
    assert_names(caught.value, stage="reader")


def test_records_with_an_unknown_input() -> None:
    """``graph.validate`` on records naming a missing stage says which."""
    stages = [_stage("src", kind=rb.StageKind.SOURCE, fn=flowlib.NUMBERS), _stage("a", "ghost")]
    with pytest.raises(rb.FlowDefinitionError, match="reads from 'ghost'") as caught:
        graph.validate("records", stages)
    assert_names(caught.value, stage="a")


def test_non_source_without_input_is_refused() -> None:
    """A transform record with no inputs is refused by validation."""
    flow, source = numbers_flow()
    source.sink(print)
    flow.add_stage(_stage("orphan"))
    with pytest.raises(rb.FlowDefinitionError, match="has no input") as caught:
        flow.validate()
    assert_names(caught.value, stage="orphan")


# -- bad policy arguments ----------------------------------------------------------------


@pytest.mark.parametrize("timeout", [-1, 0, "5", True, math.nan, math.inf])
def test_bad_timeout(timeout: Any) -> None:
    """A timeout must be finite seconds above zero; the error names stage and def."""
    _, source = numbers_flow()
    with pytest.raises(rb.FlowDefinitionError, match="timeout must be") as caught:
        source.map(flowlib.double, timeout=timeout)
    assert_names(caught.value, stage="double", fn=flowlib.double)


@pytest.mark.parametrize("concurrency", [0, -3, 2.5, True, "8"])
def test_bad_concurrency(concurrency: Any) -> None:
    """Concurrency must be an int of at least one."""
    _, source = numbers_flow()
    with pytest.raises(rb.FlowDefinitionError, match="concurrency must be") as caught:
        source.map(flowlib.slow_double, concurrency=concurrency)
    assert_names(caught.value, stage="slow_double", fn=flowlib.slow_double)


def test_on_error_as_a_string_is_refused() -> None:
    """``on_error="skip"`` is a TypeError asking for ``rb.OnError``, naming stage and def."""
    _, source = numbers_flow()
    with pytest.raises(TypeError, match=r"on_error takes an rb.OnError, got 'skip'") as caught:
        source.map(flowlib.double, on_error="skip")
    assert_names(caught.value, stage="double", fn=flowlib.double)


def test_retry_as_a_number_is_refused() -> None:
    """``retry=3`` is a TypeError asking for ``rb.Retry``."""
    _, source = numbers_flow()
    with pytest.raises(TypeError, match=r"retry takes an rb.Retry, got 3") as caught:
        source.filter(flowlib.is_even, retry=3)
    assert_names(caught.value, stage="is_even", fn=flowlib.is_even)


def test_unknown_setting_is_refused() -> None:
    """A misspelt setting is a TypeError listing the real ones."""
    _, source = numbers_flow()
    with pytest.raises(TypeError, match=r"unknown setting\(s\) \['retries'\]") as caught:
        source.map(flowlib.double, retries=3)
    assert_names(caught.value, stage="double", fn=flowlib.double)


def test_policy_of_sink_objects_and_state_classes_is_checked() -> None:
    """Sink objects and stateful class stages check their settings as well."""
    _, source = numbers_flow()
    with pytest.raises(rb.FlowDefinitionError, match="timeout") as caught:
        source.sink(flowlib.Printer(), timeout=-1)
    assert_names(caught.value, stage="printer")
    assert "tests.model.flowlib.Printer" in str(caught.value)
    keyed = source.key_by(flowlib.key_of)
    with pytest.raises(TypeError, match="on_error") as caught_type:
        keyed.stateful(flowlib.Average, "add", on_error="stop")
    assert_names(caught_type.value, stage="add", fn=flowlib.Average.add)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"on_error": "skip"}, r"Flow\(on_error=...\) takes an rb.OnError, got 'skip'"),
        ({"retry": 2}, r"Flow\(retry=...\) takes an rb.Retry, got 2"),
    ],
)
def test_bad_flow_level_policy(kwargs: dict[str, Any], match: str) -> None:
    """``Flow(on_error=...)`` and ``Flow(retry=...)`` take the policy types only."""
    with pytest.raises(TypeError, match=match):
        rb.Flow("policy", **kwargs)


# -- flow names and sources ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["", "has space", "a/b", "tab\t", "ünï", None, 3])
def test_invalid_flow_names(name: Any) -> None:
    """A flow name outside [A-Za-z0-9_.-] is a FlowDefinitionError repeating it."""
    with pytest.raises(rb.FlowDefinitionError, match=r"flow name .* is not valid") as caught:
        rb.Flow(name)
    assert repr(name) in str(caught.value)


@pytest.mark.parametrize("text", ["readings.txt", b"raw bytes"])
def test_source_of_a_string_is_refused(text: Any) -> None:
    """A str or bytes would yield characters: refused, naming the stage and the fix."""
    flow = rb.Flow("checks")
    with pytest.raises(
        rb.FlowDefinitionError, match=r"is not a source .*wrap it in a list"
    ) as caught:
        flow.source(text)
    assert_names(caught.value, stage="source")


def test_source_of_a_string_with_a_name() -> None:
    """The explicit stage name is the one the error reports."""
    flow = rb.Flow("checks")
    with pytest.raises(rb.FlowDefinitionError) as caught:
        flow.source("lines", name="lines")
    assert_names(caught.value, stage="lines")


def test_source_of_a_non_iterable_is_refused() -> None:
    """A number is not a source."""
    with pytest.raises(rb.FlowDefinitionError, match="cannot read events from int") as caught:
        rb.Flow("checks").source(42)
    assert_names(caught.value, stage="source")


async def _fetch() -> list[int]:
    return [1, 2]


def test_source_of_a_coroutine_function_is_refused() -> None:
    """An ``async def`` without ``yield`` is refused as a source, naming it."""
    with pytest.raises(rb.FlowDefinitionError, match="coroutine function") as caught:
        rb.Flow("checks").source(_fetch)
    assert_names(caught.value, stage="fetch", fn=_fetch)
