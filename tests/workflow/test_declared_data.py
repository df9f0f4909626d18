"""Declared data of workflow steps (``reads=`` / ``writes=``, ``flow.input(keys=)``):
checked when the flow is built, and the contexts checked at the step that breaks them."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime
from typing import Any

import pytest

import riverbed as rb


def reserve(ctx: dict[str, Any]) -> dict[str, Any]:
    return {**ctx, "reserved": True}


def charge(ctx: dict[str, Any]) -> dict[str, Any]:
    return {**ctx, "charged": ctx["qty"] * 12.5}


def ship(ctx: dict[str, Any]) -> dict[str, Any]:
    return {**ctx, "tracking": f"TRK-{ctx['order_id']}"}


def orders(name: str = "declared") -> rb.Flow:
    flow = rb.Flow(name)
    (
        flow.input(keys=["order_id", "qty"])
        .map(reserve, reads=["order_id"], writes=["reserved"])
        .map(charge, reads=["qty", "reserved"], writes=["charged"])
        .map(ship, reads=["charged"], writes="tracking")
        .output()
    )
    return flow


def test_a_read_of_a_key_nobody_wrote_is_refused_when_built() -> None:
    """A step reading a key that no step before it writes fails at once, naming both."""
    flow = rb.Flow("bad-read")
    stream = flow.input(keys=["order_id"]).map(reserve, writes=["reserved"])
    with pytest.raises(rb.FlowDefinitionError, match=r"step 'charge' reads context key 'qty'"):
        stream.map(charge, reads=["qty"], writes=["charged"])


def test_a_key_written_twice_is_refused_when_built() -> None:
    """A step writing a key that a step before it wrote fails, naming that step."""
    flow = rb.Flow("twice")
    stream = flow.input().map(reserve, writes=["reserved"])
    with pytest.raises(rb.FlowDefinitionError, match=r"'again'.*'reserved'.*step 'reserve'"):
        stream.map(reserve, name="again", writes=["reserved"])


def test_keys_on_separate_branches_are_not_seen_by_each_other() -> None:
    """Only what is upstream counts: a key written on one side of a branch cannot be read
    on the other, and both sides may write the same key."""
    flow = rb.Flow("sides")
    sides = flow.input(keys=["qty"]).branch(lambda ctx: ctx["qty"] > 1, name="big")
    sides.trues.map(reserve, name="bulk", writes=["reserved"]).output()
    sides.falses.map(reserve, name="single", writes=["reserved"])  # no error: other path
    with pytest.raises(rb.FlowDefinitionError, match="'shipped' reads context key 'ok'"):
        sides.falses.map(ship, name="shipped", reads=["ok"])


def test_bad_declarations_are_type_errors() -> None:
    """Keys are non-empty strings; a key named twice is refused."""
    flow = rb.Flow("typed")
    with pytest.raises(TypeError, match="non-empty strings"):
        flow.input().map(reserve, writes=[1])  # type: ignore[list-item]
    with pytest.raises(rb.FlowDefinitionError, match="names a key twice"):
        rb.Flow("twice-named").input(keys=["a", "a"])


def test_declared_workflow_runs_and_records(store: rb.Store, on_runner: str) -> None:
    """The declared workflow runs to its output on every runner, and is recorded."""
    result = rb.run(orders(), {"order_id": 7, "qty": 2}, store=store)
    assert result.ok, result.error
    assert result.output == {
        "order_id": 7,
        "qty": 2,
        "reserved": True,
        "charged": 25.0,
        "tracking": "TRK-7",
    }
    assert [step.stage for step in result.steps] == ["reserve", "charge", "ship"]


def test_a_context_that_is_not_json_fails_at_the_step_that_broke_it() -> None:
    """A step that puts a datetime into the context fails the run, naming step and key;
    the steps after it are not called."""
    called = []

    def stamp(ctx: dict[str, Any]) -> dict[str, Any]:
        return {**ctx, "when": datetime.now(UTC)}

    flow = rb.Flow("not-json")
    flow.input().map(stamp, writes=["when"]).map(lambda c: called.append(c), name="after").output()
    result = rb.run(flow, {"a": 1}, store=False)
    assert result.status is rb.RunStatus.FAILED
    assert result.error is not None
    assert result.error.stage == "stamp"
    assert "'when'" in result.error.message
    assert "JSON" in result.error.message
    assert called == []


def test_a_step_that_adds_a_key_it_did_not_declare_fails() -> None:
    """Adding an undeclared key, or leaving out a declared one, fails the step."""
    flow = rb.Flow("undeclared")
    flow.input().map(charge, reads=[], writes=["other"]).output()
    result = rb.run(flow, {"qty": 1}, store=False)
    assert result.error is not None
    assert result.error.stage == "charge"
    assert "declares writes=['other']" in result.error.message
    sneaky = rb.Flow("sneaky")
    sneaky.input().map(reserve, writes=["x"], name="first").map(charge, name="second").output()
    result = rb.run(sneaky, {"qty": 1}, store=False)
    assert result.error is not None
    assert result.error.stage == "first"


def test_a_step_that_changes_an_earlier_key_fails() -> None:
    """A key written once keeps its value: a later step changing it fails."""

    def bump(ctx: dict[str, Any]) -> dict[str, Any]:
        return {**ctx, "qty": ctx["qty"] + 1}

    flow = rb.Flow("changed")
    flow.input(keys=["qty"]).map(bump, reads=["qty"]).output()
    result = rb.run(flow, {"qty": 1}, store=False)
    assert result.error is not None
    assert "changed context key 'qty'" in result.error.message


def test_the_input_is_checked_before_the_run_starts() -> None:
    """An input without the declared keys, or not JSON, is a ValueError/TypeError."""
    with pytest.raises(ValueError, match=r"lacks the context key\(s\) \['qty'\]"):
        rb.run(orders("input-keys"), {"order_id": 1}, store=False)
    with pytest.raises(TypeError, match="not a dict"):
        rb.run(orders("input-type"), [1, 2], store=False)


def test_declarations_survive_json_and_change_the_version() -> None:
    """reads/writes are part of the flow's document and of its version."""
    flow = rb.Flow("doc")
    flow.input(keys=["qty"]).map(charge, reads=["qty"], writes=["charged"]).output()
    back = rb.Flow.from_json(flow.to_json())
    assert back.stage("charge").reads == ("qty",)
    assert back.stage("charge").writes == ("charged",)
    assert back.stage("input").writes == ("qty",)
    plain = rb.Flow("doc")
    plain.input().map(charge).output()
    assert plain.version != flow.version


def test_a_queued_run_can_be_run_here_by_resuming_it(store: rb.Store) -> None:
    """``rb.run(flow, resume=RUN)`` on a queued (SCHEDULED) run takes it from the queue
    and runs it now as its first attempt."""
    flow = orders("queued")
    record = rb.RunRecord(
        run_id="queued0001",
        flow=flow.name,
        flow_version=flow.version,
        status=rb.RunStatus.SCHEDULED,
        input=pickle.dumps({"order_id": 3, "qty": 1}),
        created_at=datetime.now(UTC),
    )
    store.enqueue(record)
    result = rb.run(flow, store=store, resume="queued0001")
    assert result.ok
    assert result.output["tracking"] == "TRK-3"
    run = store.get_run("queued0001")
    assert run.status is rb.RunStatus.SUCCEEDED
    assert run.attempt == 1
    assert store.claim("w", 10) is None
