"""The builder API: what each operator adds to the flow, how stages are named, and the
shape of the streams it hands back."""

from __future__ import annotations

import functools
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

import riverbed as rb
from riverbed._model.stages import DEFAULT_PORT
from tests.model import flowlib


def kinds(flow: rb.Flow) -> list[tuple[str, rb.StageKind]]:
    return [(stage.name, stage.kind) for stage in flow.stages]


# -- the flow object ---------------------------------------------------------------------


def test_flow_keeps_stages_in_building_order() -> None:
    """``Flow.stages`` lists the stages in the order the builder added them."""
    flow = rb.Flow("order")
    flow.source(flowlib.NUMBERS).map(flowlib.double).filter(flowlib.is_even).sink(print)
    assert kinds(flow) == [
        ("source", rb.StageKind.SOURCE),
        ("double", rb.StageKind.MAP),
        ("is_even", rb.StageKind.FILTER),
        ("print", rb.StageKind.SINK),
    ]


def test_stage_lookup_by_name() -> None:
    """``Flow.stage(name)`` returns that stage's record."""
    flow = rb.Flow("lookup")
    flow.source(flowlib.NUMBERS).map(flowlib.double).sink(print)
    stage = flow.stage("double")
    assert stage.kind is rb.StageKind.MAP
    assert stage.fn is flowlib.double
    assert stage.inputs == (rb.Port("source"),)


def test_unknown_stage_lookup_names_the_known_ones() -> None:
    """Looking up a missing stage is a LookupError listing the stages the flow has."""
    flow = rb.Flow("lookup")
    flow.source(flowlib.NUMBERS).sink(print)
    with pytest.raises(LookupError, match=r"no stage 'nope'.*\['source', 'print'\]"):
        flow.stage("nope")


def test_repr_counts_stages() -> None:
    """``repr(flow)`` shows its name and how many stages it has."""
    flow = rb.Flow("counted")
    flow.source(flowlib.NUMBERS).sink(print)
    assert repr(flow) == "<Flow 'counted': 2 stages>"


def test_stages_are_frozen() -> None:
    """A stage record cannot be changed after it is made."""
    flow = rb.Flow("frozen")
    flow.source(flowlib.NUMBERS).sink(print)
    with pytest.raises(AttributeError):
        flow.stage("print").name = "other"  # type: ignore[misc]


def test_flow_level_policy_is_kept() -> None:
    """``Flow(on_error=..., retry=...)`` keeps both for stages that set none."""
    retry = rb.Retry(attempts=2)
    flow = rb.Flow("policy", on_error=rb.OnError.SKIP, retry=retry)
    assert flow.on_error is rb.OnError.SKIP
    assert flow.retry is retry


@pytest.mark.parametrize("name", ["a", "temperature-monitor", "v1.2_x", "A-Z.0_9"])
def test_valid_flow_names(name: str) -> None:
    """Flow names of letters, digits, '_', '-' and '.' are accepted."""
    assert rb.Flow(name).name == name


# -- derived stage names -----------------------------------------------------------------


def test_stage_name_is_the_function_name() -> None:
    """A stage built from a def is named after the function."""
    flow = rb.Flow("names")
    flow.source(flowlib.numbers).map(flowlib.double).flat_map(flowlib.explode).sink(print)
    assert [s.name for s in flow.stages] == ["numbers", "double", "explode", "print"]


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (lambda s: s.map(lambda x: x).sink(print), "map"),
        (lambda s: s.flat_map(lambda x: [x]).sink(print), "flat_map"),
        (lambda s: s.filter(lambda x: x).sink(print), "filter"),
        (lambda s: s.inspect(lambda x: None).sink(print), "inspect"),
        (lambda s: s.key_by(lambda x: x).sink(print), "key_by"),
    ],
)
def test_lambda_stages_get_the_operator_name(
    build: Callable[[rb.Stream], object], expected: str
) -> None:
    """A lambda has no name of its own: its stage is named after the operator."""
    flow = rb.Flow("lambdas")
    build(flow.source(flowlib.NUMBERS))
    assert flow.stages[1].name == expected


def test_lambda_sink_branch_and_route_get_the_operator_name() -> None:
    """Sinks, branches and routes of lambdas are named sink, branch and route."""
    flow = rb.Flow("lambdas")
    source = flow.source(flowlib.NUMBERS)
    trues, falses = source.branch(lambda x: x > 2)
    routes = trues.route(lambda x: "a", ["a"])
    routes.a.sink(lambda x: None)
    falses.sink(print)
    assert [s.name for s in flow.stages] == ["source", "branch", "route", "sink", "print"]


def test_lambda_source_is_named_source() -> None:
    """A lambda source is named ``source``, like a list, not ``lambda``."""
    flow = rb.Flow("lambdas")
    stream = flow.source(lambda: iter(flowlib.NUMBERS))
    assert stream.port == rb.Port("source")


def test_stateful_lambda_method_is_named_stateful() -> None:
    """A stateful stage whose method is a lambda is named ``stateful``."""
    flow = rb.Flow("lambdas")
    keyed = flow.source(flowlib.NUMBERS).key_by(flowlib.key_of)
    out = keyed.stateful(flowlib.Average, lambda self, value: self.add(value))
    assert out.port.stage == "stateful"


def test_source_names() -> None:
    """Sources are named: list 'source', generator function its name, object its class."""

    class NumberFeed:
        def partitions(self) -> list[str]:
            return ["0"]

        def open(self, partition: str, position: object) -> object:
            raise NotImplementedError

    flow = rb.Flow("sources")
    names = [
        flow.source(flowlib.NUMBERS).port.stage,
        flow.source(flowlib.numbers).port.stage,
        flow.source(NumberFeed()).port.stage,
        flow.source(range(3)).port.stage,
    ]
    assert names == ["source", "numbers", "number_feed", "source_2"]


def test_callable_objects_partials_and_classes_are_named_sensibly() -> None:
    """Callable objects and sink objects take their class's name, partials the inner def's."""
    flow = rb.Flow("names")
    stream = flow.source(flowlib.NUMBERS).map(flowlib.MyMapper())
    stream = stream.map(functools.partial(flowlib.add, 1))
    stream.sink(flowlib.Printer())
    assert [s.name for s in flow.stages] == ["source", "my_mapper", "add", "printer"]


def test_duplicate_derived_names_are_numbered_in_building_order() -> None:
    """The second and third stage of one function get ``_2`` and ``_3``."""
    flow = rb.Flow("dupes")
    flow.source(flowlib.NUMBERS).map(flowlib.double).map(flowlib.double).map(flowlib.double).sink(
        print
    )
    assert [s.name for s in flow.stages][1:4] == ["double", "double_2", "double_3"]


def test_derived_names_skip_names_taken_explicitly() -> None:
    """A derived name steps past a name already given explicitly."""
    flow = rb.Flow("dupes")
    stream = flow.source(flowlib.NUMBERS).map(flowlib.double)
    stream = stream.map(flowlib.is_even, name="double_2")
    stream.map(flowlib.double).sink(print)
    assert [s.name for s in flow.stages][1:4] == ["double", "double_2", "double_3"]


def test_explicit_name_wins_over_derived() -> None:
    """``name=`` names the stage, whatever its function."""
    flow = rb.Flow("named")
    flow.source(flowlib.NUMBERS, name="readings").map(flowlib.double, name="twice").sink(
        print, name="out"
    )
    assert [s.name for s in flow.stages] == ["readings", "twice", "out"]


def test_values_twice_gets_numbered_names() -> None:
    """Two ``values()`` in one flow are ``values`` and ``values_2``, not a duplicate."""
    flow = rb.Flow("values")
    keyed = flow.source(flowlib.NUMBERS).key_by(flowlib.key_of)
    keyed.values().sink(print)
    keyed.values().sink(print)
    assert [s.name for s in flow.stages if s.kind is rb.StageKind.MAP] == ["values", "values_2"]


def _build(ops: list[int]) -> rb.Flow:
    functions = [flowlib.double, flowlib.is_even, flowlib.explode, flowlib.log]
    flow = rb.Flow("generated")
    stream = flow.source(flowlib.NUMBERS)
    for op in ops:
        fn = functions[op]
        if fn is flowlib.is_even:
            stream = stream.filter(fn)
        elif fn is flowlib.explode:
            stream = stream.flat_map(fn)
        elif fn is flowlib.log:
            stream = stream.inspect(fn)
        else:
            stream = stream.map(fn)
    stream.sink(print)
    return flow


@given(st.lists(st.integers(min_value=0, max_value=3), max_size=12))
def test_derived_names_are_unique_numbered_and_stable(ops: list[int]) -> None:
    """Derived names are unique, numbered ``name_n`` per use, the same on every rebuild."""
    flow = _build(ops)
    names = [stage.name for stage in flow.stages]
    assert len(set(names)) == len(names)
    seen: dict[str, int] = {}
    for stage in flow.stages[1:-1]:
        base = stage.fn.__name__
        seen[base] = seen.get(base, 0) + 1
        assert stage.name == (base if seen[base] == 1 else f"{base}_{seen[base]}")
    assert names == [stage.name for stage in _build(ops).stages]


# -- stage records -----------------------------------------------------------------------


def test_each_stage_reads_the_stream_it_was_called_on() -> None:
    """A stage's only input is the output port of the stream it was built from."""
    flow = rb.Flow("inputs")
    source = flow.source(flowlib.NUMBERS)
    source.map(flowlib.double).sink(print)
    source.filter(flowlib.is_even).sink(print)
    assert flow.stage("double").inputs == (rb.Port("source", DEFAULT_PORT),)
    assert flow.stage("is_even").inputs == (rb.Port("source", DEFAULT_PORT),)
    assert flow.stage("print").inputs == (rb.Port("double"),)
    assert flow.stage("print_2").inputs == (rb.Port("is_even"),)


def test_sources_and_sinks_have_no_inputs_and_no_outputs_respectively() -> None:
    """A source has no inputs; a sink has no outputs; others have the single ``out``."""
    flow = rb.Flow("shape")
    flow.source(flowlib.NUMBERS).map(flowlib.double).sink(print)
    source, double, sink = flow.stages
    assert source.inputs == ()
    assert source.is_source
    assert not source.is_sink
    assert double.outputs == ("out",)
    assert sink.outputs == ()
    assert sink.is_sink


def test_sink_modes() -> None:
    """sink(callable) is per event, sink(object) and sink_batch per batch; sink returns None."""
    flow = rb.Flow("sinks")
    source = flow.source(flowlib.NUMBERS)
    assert source.sink(print) is None
    source.sink(flowlib.Printer())
    source.sink_batch(flowlib.collect)
    modes = [s.sink_mode for s in flow.stages if s.is_sink]
    assert modes == [rb.SinkMode.EVENT, rb.SinkMode.OBJECT, rb.SinkMode.BATCH]


def test_stage_policy_settings_are_kept() -> None:
    """``on_error``, ``retry``, ``timeout`` and ``concurrency`` land on the stage."""
    retry = rb.Retry(attempts=5, on=(ValueError,))
    flow = rb.Flow("policy")
    flow.source(flowlib.NUMBERS).map(
        flowlib.slow_double,
        on_error=rb.OnError.DEAD_LETTER,
        retry=retry,
        timeout=2.5,
        concurrency=8,
    ).sink(print)
    stage = flow.stage("slow_double")
    assert stage.on_error is rb.OnError.DEAD_LETTER
    assert stage.retry is retry
    assert stage.timeout == 2.5
    assert stage.concurrency == 8


def test_unset_policy_settings_are_none() -> None:
    """A stage that sets no policy leaves it to the flow (None on the record)."""
    flow = rb.Flow("policy")
    flow.source(flowlib.NUMBERS).map(flowlib.double).sink(print)
    stage = flow.stage("double")
    assert (stage.on_error, stage.retry, stage.timeout, stage.concurrency) == (None,) * 4


# -- keyedness ---------------------------------------------------------------------------


def test_key_by_makes_a_keyed_stream() -> None:
    """``key_by`` returns a KeyedStream and marks its stage keyed."""
    flow = rb.Flow("keys")
    keyed = flow.source(flowlib.NUMBERS).key_by(flowlib.key_of)
    assert isinstance(keyed, rb.KeyedStream)
    assert flow.stage("key_of").keyed


def test_map_of_a_keyed_stream_is_unkeyed() -> None:
    """A map may change the pairs into anything: its output is a plain stream."""
    flow = rb.Flow("keys")
    out = flow.source(flowlib.NUMBERS).key_by(flowlib.key_of).map(flowlib.log)
    assert type(out) is rb.Stream
    assert not flow.stage("log").keyed


def test_filter_and_inspect_keep_keyedness() -> None:
    """Filter and inspect pass events through unchanged, so a keyed stream stays keyed."""
    flow = rb.Flow("keys")
    keyed = flow.source(flowlib.NUMBERS).key_by(flowlib.key_of)
    filtered = keyed.filter(flowlib.log).inspect(flowlib.log)
    assert isinstance(filtered, rb.KeyedStream)
    plain = flow.source(flowlib.NUMBERS).filter(flowlib.is_even)
    assert type(plain) is rb.Stream


def test_values_drops_the_keys() -> None:
    """``values()`` is an unkeyed map stage."""
    flow = rb.Flow("keys")
    values = flow.source(flowlib.NUMBERS).key_by(flowlib.key_of).values()
    assert type(values) is rb.Stream
    assert flow.stage("values").kind is rb.StageKind.MAP


def test_stateful_with_a_class_and_method() -> None:
    """``stateful(Class, Class.method)`` is a keyed stage named after the method."""
    flow = rb.Flow("state")
    out = (
        flow.source(flowlib.NUMBERS)
        .key_by(flowlib.key_of)
        .stateful(flowlib.Average, flowlib.Average.add)
    )
    assert isinstance(out, rb.KeyedStream)
    stage = flow.stage("add")
    assert stage.kind is rb.StageKind.STATEFUL
    assert (stage.fn, stage.method, stage.keyed) == (flowlib.Average, flowlib.Average.add, True)


def test_stateful_method_by_name() -> None:
    """The method may be given by name: ``stateful(Average, "add")``."""
    flow = rb.Flow("state")
    flow.source(flowlib.NUMBERS).key_by(flowlib.key_of).stateful(flowlib.Average, "add")
    assert flow.stage("add").method is flowlib.Average.add


def test_stateful_with_a_function_and_initial() -> None:
    """``stateful(fn, initial=...)`` records the function and the state factory."""
    flow = rb.Flow("state")
    flow.source(flowlib.NUMBERS).key_by(flowlib.key_of).stateful(flowlib.count, initial=int)
    stage = flow.stage("count")
    assert (stage.fn, stage.method, stage.initial, stage.keyed) == (flowlib.count, None, int, True)


def test_fold_and_reduce() -> None:
    """fold keeps ``initial`` and ``running``; reduce is a fold without initial; both keyed."""
    flow = rb.Flow("folds")
    keyed = flow.source(flowlib.NUMBERS).key_by(flowlib.key_of)
    folded = keyed.fold(flowlib.zero, flowlib.add, running=True, name="total")
    reduced = keyed.reduce(flowlib.add)
    assert isinstance(folded, rb.KeyedStream)
    assert isinstance(reduced, rb.KeyedStream)
    total, add = flow.stage("total"), flow.stage("add")
    assert (total.kind, total.initial, total.running, total.keyed) == (
        rb.StageKind.FOLD,
        flowlib.zero,
        True,
        True,
    )
    assert (add.kind, add.initial, add.running) == (rb.StageKind.FOLD, None, False)


# -- branch and route --------------------------------------------------------------------


def test_branch_outputs() -> None:
    """``branch`` has outputs ``true`` and ``false``, handed back as ``Branch(trues, falses)``."""
    flow = rb.Flow("branch")
    branch = flow.source(flowlib.NUMBERS).branch(flowlib.is_even)
    assert isinstance(branch, rb.Branch)
    trues, falses = branch
    assert trues is branch.trues
    assert falses is branch.falses
    assert trues.port == rb.Port("is_even", "true")
    assert falses.port == rb.Port("is_even", "false")
    stage = flow.stage("is_even")
    assert (stage.kind, stage.outputs) == (rb.StageKind.BRANCH, ("true", "false"))


def test_branch_of_a_keyed_stream_is_keyed() -> None:
    """Both sides of a branch of a keyed stream are keyed; of a plain stream, plain."""
    flow = rb.Flow("branch")
    keyed = flow.source(flowlib.NUMBERS).key_by(flowlib.key_of).branch(flowlib.log)
    plain = flow.source(flowlib.NUMBERS).branch(flowlib.is_even)
    assert all(isinstance(s, rb.KeyedStream) for s in keyed)
    assert all(type(s) is rb.Stream for s in plain)


def test_route_outputs() -> None:
    """``route`` has one output per name, by key or attribute, in the order given."""
    flow = rb.Flow("route")
    routes = flow.source(flowlib.NUMBERS).route(flowlib.parity, ["even", "odd"])
    assert isinstance(routes, rb.Routes)
    assert list(routes) == ["even", "odd"]
    assert len(routes) == 2
    assert routes["even"] is routes.even
    assert routes.odd.port == rb.Port("parity", "odd")
    stage = flow.stage("parity")
    assert (stage.kind, stage.outputs) == (rb.StageKind.ROUTE, ("even", "odd"))


def test_unknown_route_names_the_routes() -> None:
    """A missing route is a KeyError (by key) or AttributeError (by attribute) listing them."""
    flow = rb.Flow("route")
    routes = flow.source(flowlib.NUMBERS).route(flowlib.parity, ["even", "odd"])
    with pytest.raises(KeyError, match=r"\['even', 'odd'\]"):
        routes["nope"]
    with pytest.raises(AttributeError, match=r"\['even', 'odd'\]"):
        _ = routes.nope


@pytest.mark.parametrize("outputs", [[], ["a", "a"], ["a", ""], ["a", 3]])
def test_route_outputs_must_be_distinct_non_empty_strings(outputs: list[object]) -> None:
    """Route output names must be distinct non-empty strings."""
    flow = rb.Flow("route")
    with pytest.raises(rb.FlowDefinitionError, match="route outputs"):
        flow.source(flowlib.NUMBERS).route(flowlib.parity, outputs)  # type: ignore[arg-type]


# -- merge -------------------------------------------------------------------------------


def test_merge_reads_every_input_in_order() -> None:
    """A merge stage's inputs are the merged streams' ports, in the order given."""
    flow = rb.Flow("merge")
    a = flow.source(flowlib.NUMBERS, name="a")
    b = flow.source(flowlib.NUMBERS, name="b").map(flowlib.double)
    c = flow.source(flowlib.NUMBERS, name="c")
    merged = a.merge(b, c)
    stage = flow.stage(merged.port.stage)
    assert stage.name == "merge"
    assert stage.kind is rb.StageKind.MERGE
    assert stage.inputs == (rb.Port("a"), rb.Port("double"), rb.Port("c"))


def test_merge_forms_agree() -> None:
    """rb.merge, flow.merge and stream.merge make the same stage, numbered merge names."""
    flow = rb.Flow("merge")
    a = flow.source(flowlib.NUMBERS, name="a")
    b = flow.source(flowlib.NUMBERS, name="b")
    one = rb.merge(a, b)
    two = flow.merge(a, b)
    three = a.merge(b, name="joined")
    assert [one.port.stage, two.port.stage, three.port.stage] == ["merge", "merge_2", "joined"]
    assert {flow.stage(n).inputs for n in ("merge", "merge_2", "joined")} == {
        (rb.Port("a"), rb.Port("b"))
    }


def test_merge_of_keyed_streams_is_keyed() -> None:
    """Merging only keyed streams gives a keyed stream."""
    flow = rb.Flow("merge")
    a = flow.source(flowlib.NUMBERS, name="a").key_by(flowlib.key_of)
    b = flow.source(flowlib.NUMBERS, name="b").key_by(flowlib.parity)
    merged = a.merge(b)
    assert isinstance(merged, rb.KeyedStream)
    assert flow.stage("merge").keyed


def test_merge_with_an_unkeyed_stream_is_unkeyed() -> None:
    """One unkeyed input makes the merged stream unkeyed."""
    flow = rb.Flow("merge")
    a = flow.source(flowlib.NUMBERS, name="a").key_by(flowlib.key_of)
    b = flow.source(flowlib.NUMBERS, name="b")
    merged = a.merge(b)
    assert type(merged) is rb.Stream
    assert not flow.stage("merge").keyed


def test_merge_of_one_stream_is_allowed() -> None:
    """Merging a single stream is a pass-through stage, not an error."""
    flow = rb.Flow("merge")
    merged = rb.merge(flow.source(flowlib.NUMBERS))
    assert flow.stage(merged.port.stage).inputs == (rb.Port("source"),)


def test_merge_the_same_stream_twice_is_refused() -> None:
    """The same stream twice would double every event: FlowDefinitionError."""
    flow = rb.Flow("merge")
    a = flow.source(flowlib.NUMBERS, name="a")
    with pytest.raises(rb.FlowDefinitionError, match="same stream twice"):
        a.merge(a)


def test_merge_across_flows_is_refused() -> None:
    """Streams of two different flows cannot be merged."""
    a = rb.Flow("one").source(flowlib.NUMBERS)
    b = rb.Flow("two").source(flowlib.NUMBERS)
    with pytest.raises(rb.FlowDefinitionError, match="different flows"):
        a.merge(b)


def test_merge_of_a_non_stream_is_refused() -> None:
    """``merge`` takes streams only."""
    a = rb.Flow("one").source(flowlib.NUMBERS)
    with pytest.raises(rb.FlowDefinitionError, match="merge takes streams, got list"):
        a.merge([1, 2])  # type: ignore[arg-type]


def test_merge_of_nothing_is_refused() -> None:
    """``rb.merge()`` and ``flow.merge()`` need at least one stream."""
    with pytest.raises(rb.FlowDefinitionError, match="at least one stream"):
        rb.merge()
    with pytest.raises(rb.FlowDefinitionError, match="at least one stream"):
        rb.Flow("empty").merge()


# -- add_stage ---------------------------------------------------------------------------


def test_add_stage_takes_a_ready_made_record() -> None:
    """``add_stage`` adds a Stage record as is and returns a stream of its output."""
    flow = rb.Flow("records")
    flow.source(flowlib.NUMBERS)
    stream = flow.add_stage(
        rb.Stage(
            name="twice", kind=rb.StageKind.MAP, inputs=(rb.Port("source"),), fn=flowlib.double
        )
    )
    assert type(stream) is rb.Stream
    assert stream.port == rb.Port("twice")
    keyed = flow.add_stage(
        rb.Stage(
            name="keys",
            kind=rb.StageKind.KEY_BY,
            inputs=(rb.Port("twice"),),
            fn=flowlib.key_of,
            keyed=True,
        )
    )
    assert isinstance(keyed, rb.KeyedStream)


def test_concurrency_on_a_sync_function_is_refused() -> None:
    """concurrency= on a synchronous function without timeout= would do nothing: refused."""
    flow = rb.Flow("conc")
    with pytest.raises(rb.FlowDefinitionError, match="concurrency= applies to async"):
        flow.source([1]).map(str, concurrency=4)


def test_concurrency_on_an_async_or_timed_function_is_accepted() -> None:
    """concurrency= is accepted for async functions and for sync ones with a timeout."""

    async def fetch(x: int) -> int:
        return x

    flow = rb.Flow("conc-ok")
    stream = flow.source([1]).map(fetch, concurrency=4)
    stream.map(str, concurrency=2, timeout=1.0).sink(print)
    assert [s.concurrency for s in flow.stages[1:3]] == [4, 2]


def test_fold_and_stateful_accept_a_plain_starting_value():
    flow = rb.Flow("plain-start")
    keyed = flow.source([("a", 1), ("b", 2), ("a", 3)]).key_by(lambda e: e[0])
    totals = keyed.fold(0, lambda acc, e: acc + e[1], name="totals")
    lists = keyed.fold([], lambda acc, e: [*acc, e[1]], name="lists")
    counts = keyed.stateful(lambda n, e: (n + 1, n + 1), initial=0, name="counts")
    seen: dict[str, list] = {"totals": [], "lists": [], "counts": []}
    totals.sink(seen["totals"].append)
    lists.sink(seen["lists"].append)
    counts.sink(seen["counts"].append)
    flow.run()
    assert sorted(seen["totals"]) == [("a", 4), ("b", 2)]
    assert sorted(seen["lists"]) == [("a", [1, 3]), ("b", [2])]  # no list shared by keys
    assert seen["counts"] == [("a", 1), ("b", 1), ("a", 2)]


def test_a_plain_starting_value_is_part_of_the_stage_version():
    def build(start: int) -> rb.Flow:
        flow = rb.Flow("versioned")
        flow.source([1]).key_by(flowlib.key_of).fold(start, flowlib.add, name="f").sink(print)
        return flow

    assert build(0).version != build(1).version
    assert build(0).version == build(0).version
