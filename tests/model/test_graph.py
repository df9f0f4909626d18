"""Whole-graph views of a flow: validation order, readers, the text listing and Mermaid."""

from __future__ import annotations

import riverbed as rb
from riverbed._model import graph
from tests.model import flowlib

# -- text and Mermaid views --------------------------------------------------------------


def test_describe_lists_every_stage() -> None:
    """``describe()`` has a line per stage with its kind, function, keyedness and inputs."""
    flow = flowlib.full_flow()
    lines = flow.describe().splitlines()
    assert lines[0] == f"Flow 'everything' ({len(flow.stages)} stages)"
    assert len(lines) == len(flow.stages) + 1
    for line, stage in zip(lines[1:], flow.stages, strict=True):
        assert line.split()[0] == stage.name
        assert line.split()[1] == stage.kind.value
        assert ("[keyed]" in line) == stage.keyed
        for port in stage.inputs:
            assert str(port) in line.split("<-")[1]
    assert "tests.model.flowlib.Average.add (flowlib.py, line" in flow.describe()
    assert str(flow) == flow.describe()


def test_mermaid_has_every_stage_and_edge() -> None:
    """The chart has a node per stage and an edge per input, labelled for branch/route."""
    flow = flowlib.full_flow()
    chart = flow.to_mermaid()
    assert chart.startswith("---\ntitle: everything\n---\nflowchart LR\n")
    ids = {stage.name: f"s{index}" for index, stage in enumerate(flow.stages)}
    for stage in flow.stages:
        assert f"    {ids[stage.name]}" in chart
        assert f"{stage.name}<br/><small>{stage.kind.value}</small>" in chart
    edges = [line.strip() for line in chart.splitlines() if "-->" in line]
    expected = []
    for stage in flow.stages:
        for port in stage.inputs:
            arrow = "-->" if port.name == "out" else f"-->|{port.name}|"
            expected.append(f"{ids[port.stage]} {arrow} {ids[stage.name]}")
    assert edges == expected
    assert "-->|true|" in chart
    assert "-->|false|" in chart
    assert "-->|even|" in chart
    assert "-->|odd|" in chart


def test_mermaid_shapes_by_kind() -> None:
    """Sources, sinks, branches, merges and stateful stages have their own node shapes."""
    chart = flowlib.full_flow().to_mermaid()
    assert 's0[/"numbers' in chart  # source: parallelogram
    assert '{"is_even' in chart  # branch: rhombus
    assert '(("merge' in chart  # merge: circle
    assert '[("add' in chart  # stateful: cylinder
    assert '[\\"print' in chart  # sink: trapezoid


def test_mermaid_is_deterministic() -> None:
    """The same flow draws the same chart."""
    assert flowlib.full_flow().to_mermaid() == flowlib.full_flow().to_mermaid()


def test_topological_order_puts_inputs_first_stably() -> None:
    """Every stage comes after its inputs; ties keep building order."""
    flow = rb.Flow("order")
    a = flow.source(flowlib.NUMBERS, name="a")
    b = flow.source(flowlib.NUMBERS, name="b")
    left = a.map(flowlib.double, name="left")
    right = b.map(flowlib.double, name="right")
    merged = rb.merge(right, left)
    merged.sink(print)
    order = [s.name for s in graph.topological_order(flow.name, flow.stages)]
    assert order == ["a", "b", "left", "right", "merge", "print"]
    for stage in flow.stages:
        for port in stage.inputs:
            assert order.index(port.stage) < order.index(stage.name)


def test_topological_order_of_the_full_flow() -> None:
    """In a flow with every operator, each stage still follows all of its inputs."""
    flow = flowlib.full_flow()
    order = [s.name for s in graph.topological_order(flow.name, flow.stages)]
    assert sorted(order) == sorted(s.name for s in flow.stages)
    for stage in flow.stages:
        for port in stage.inputs:
            assert order.index(port.stage) < order.index(stage.name)


def test_consumers_maps_every_output_to_its_readers() -> None:
    """``consumers`` maps every output port to its readers in building order, or []."""
    flow = rb.Flow("readers")
    source = flow.source(flowlib.NUMBERS)
    trues, _ = source.branch(flowlib.is_even)
    trues.sink(print)
    source.map(flowlib.double).sink(print)
    readers = graph.consumers(flow.stages)
    assert readers[rb.Port("source")] == ["is_even", "double"]
    assert readers[rb.Port("is_even", "true")] == ["print"]
    assert readers[rb.Port("is_even", "false")] == []
    assert readers[rb.Port("double")] == ["print_2"]
    assert all(port.stage != "print" for port in readers)


def test_summary_of_each_kind() -> None:
    """``summary`` names a stage's kind and function, a source's reader, or a merge."""
    flow = rb.Flow("summary")
    a = flow.source(flowlib.numbers, name="a")
    rb.merge(a, flow.source([1], name="b")).map(flowlib.double).sink(print)
    line = flowlib.double.__code__.co_firstlineno
    assert graph.summary(flow.stage("double")) == (
        f"map tests.model.flowlib.double (flowlib.py, line {line})"
    )
    assert graph.summary(flow.stage("merge")) == "a merge"
    assert (
        graph.summary(flow.stage("a"))
        == "source FunctionSource(tests.model.flowlib.numbers (flowlib.py, line 16))"
    )
    assert graph.summary(flow.stage("print")) == "sink builtins.print"
