"""Routines with slots and events (``rb.Routines``): built into a workflow, run on every
runner and store, with per-routine statistics, policies, cycles refused and resume."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

import riverbed as rb

CALLS: Counter[str] = Counter()
BROKEN: set[str] = set()


def split(params: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    CALLS["split"] += 1
    return [("word", {"text": word}) for word in params["line"].split()] + [
        ("done", {"count": len(params["line"].split())})
    ]


def upper(params: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    CALLS["upper"] += 1
    if "upper" in BROKEN:
        raise ConnectionError("upper is down")
    return [("out", {"value": params["value"].upper()})]


def length(params: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    CALLS["length"] += 1
    return [("out", {"n": len(params["text"])})]


def count(params: dict[str, Any]) -> None:
    CALLS["count"] += 1


@pytest.fixture(autouse=True)
def _fresh() -> None:
    CALLS.clear()
    BROKEN.clear()


def words(**policy: Any) -> rb.Routines:
    net = rb.Routines("words", **policy)
    net.add("split", {"line": split}, ["word", "done"])
    net.add("upper", {"value": upper}, ["out"])
    net.add("length", {"text": length}, ["out"])
    net.add("count", {"total": count})
    net.connect("split", "word", "upper", "value", params={"text": "value"})
    net.connect("split", "word", "length", "text")
    net.connect("split", "done", "count", "total")
    return net


def test_routines_run_as_a_workflow(store: rb.Store, on_runner: str) -> None:
    """Events reach every slot connected to them (renamed as asked); what goes nowhere
    is the output; each routine's stage counts its calls and emissions."""
    result = rb.run(words().flow("split"), {"line": "to be"}, store=store)
    assert result.ok, result.error
    got = sorted((e.routine, tuple(e.params.items())) for e in result.outputs["output"])
    assert got == [
        ("length", (("n", 2),)),
        ("length", (("n", 2),)),
        ("upper", (("value", "BE"),)),
        ("upper", (("value", "TO"),)),
    ]
    assert (result.stages["split"].events_in, result.stages["split"].events_out) == (1, 3)
    assert result.stages["upper"].events_in == 2
    assert result.stages["count"].events_in == 1
    assert [step.stage for step in result.steps][:2] == ["split.line", "split"]


def test_policies_are_the_routines(store: rb.Store) -> None:
    """A routine's on_error / retry apply to its calls: SKIP drops the failed call's
    emissions and the run goes on; retry calls again; the flow's policy is the default."""
    net = words(on_error=rb.OnError.SKIP)
    BROKEN.add("upper")
    result = rb.run(net.flow("split"), {"line": "a b"}, store=store)
    assert result.ok
    assert result.stages["upper"].skipped == 2
    assert {e.routine for e in result.outputs["output"]} == {"length"}
    strict = rb.Routines("strict")
    strict.add("upper", {"value": upper}, ["out"], retry=rb.Retry(attempts=3, backoff=0))
    failed = rb.run(strict.flow("upper"), {"value": "x"}, store=store)
    assert failed.status is rb.RunStatus.FAILED
    assert failed.error is not None
    assert failed.error.stage == "upper"
    assert CALLS["upper"] == 2 + 3


def test_a_failed_run_resumes_from_the_routine_that_failed(store: rb.Store) -> None:
    """Resuming calls only the routines not yet recorded."""
    BROKEN.add("upper")
    flow = words().flow("split")
    failed = rb.run(flow, {"line": "a"}, store=store)
    assert failed.status is rb.RunStatus.FAILED
    BROKEN.clear()
    CALLS.clear()
    resumed = rb.run(words().flow("split"), store=store, resume=failed.run_id)
    assert resumed.ok
    assert CALLS["split"] == 0
    assert CALLS["upper"] == 1
    assert "split" in resumed.replayed


def test_building_errors_name_the_culprit() -> None:
    """Unknown routines, events and slots, an unnamed entry slot and cycles are refused."""
    net = words()
    with pytest.raises(rb.FlowDefinitionError, match="no event 'nope'"):
        net.connect("split", "nope", "upper", "value")
    with pytest.raises(rb.FlowDefinitionError, match="no slot 'nope'"):
        net.connect("split", "word", "upper", "nope")
    with pytest.raises(rb.FlowDefinitionError, match="no routine 'ghost'"):
        net.flow("ghost")
    loop = rb.Routines("loop")
    loop.add("a", {"in": upper}, ["out"])
    loop.add("b", {"in": upper}, ["out"])
    loop.connect("a", "out", "b", "in")
    loop.connect("b", "out", "a", "in")
    with pytest.raises(rb.FlowDefinitionError, match=r"cycle through routines \['a', 'b'\]"):
        loop.flow("a")
    two = rb.Routines("two")
    two.add("r", {"x": upper, "y": upper}, ["out"])
    with pytest.raises(rb.FlowDefinitionError, match="several slots"):
        two.flow("r")


def test_an_undeclared_event_fails_the_call() -> None:
    """Emitting an event the routine does not declare is an error of its call."""
    net = rb.Routines("undeclared")
    net.add("r", {"x": lambda p: [("surprise", {})]}, ["out"])
    result = rb.run(net.flow("r"), {}, store=False)
    assert result.error is not None
    assert "emitted 'surprise', which it does not declare" in result.error.message
