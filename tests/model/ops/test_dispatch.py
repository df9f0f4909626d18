"""Match routing (``Stream.dispatch``): interests inferred from ``case`` patterns, strict and
lenient routing, cascades and their depth bound, priorities, phases and shutdown."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import pytest

import riverbed as rb
from riverbed.testing import drive, run_flow
from tests import runners


@dataclass(frozen=True)
class Msg:
    name: str
    who: str = ""


@dataclass(frozen=True)
class Urgent(Msg):
    """A subclass: handlers matching ``Msg(...)`` get it too (the MRO counts)."""


class Color(enum.Enum):
    RED = "red"


def greeter(event: Any) -> Any:
    match event:
        case Msg(name="start", who=who):
            yield Msg("greet", who)
        case Msg(name="greet", who=who):
            yield ("said", f"hello {who}")


def shouter(event: Any) -> Any:
    match event:
        case ("said", text):
            return [text.upper()]
    return None


def kinds(event: Any) -> Any:
    match event:
        case 3 | "three":
            return ["literal"]
        case Color.RED:
            return ["enum"]
        case None:
            return ["none"]
        case {"id": _}:
            return ["mapping"]
        case ["pair", _, *_]:
            return ["sequence"]
    return None


def no_match(event: Any) -> Any:
    if isinstance(event, tuple):
        return None
    return [("anything", event)]


def test_interests_come_from_case_patterns() -> None:
    """Class patterns with literal attributes, subclasses, literals, enums, None, mappings
    and sequences: an event is wanted exactly when some pattern can match it."""
    greet = rb.Handler(greeter)
    assert greet.wants(Msg("start"))
    assert greet.wants(Msg("greet"))
    assert greet.wants(Urgent("start"))
    assert not greet.wants(Msg("other"))
    assert not greet.wants("start")
    assert rb.Handler(shouter).wants(("said", "x"))
    assert not rb.Handler(shouter).wants(("said", "x", "y"))
    assert not rb.Handler(shouter).wants(("heard", "x"))
    assert not rb.Handler(shouter).wants("said")
    wanted = rb.Handler(kinds)
    for event in [3, "three", Color.RED, None, {"id": 1}, ["pair", 1], ("pair", 1, 2)]:
        assert wanted.wants(event), event
    for event in [4, "four", "red", 0, ["single"], ("other", 1)]:
        assert not wanted.wants(event), event
    assert rb.Handler(no_match).wants("x") is None


class Counter:
    """A class handler: one instance per run, kept in the stage's state."""

    def __init__(self) -> None:
        self.seen = 0

    def __call__(self, event: Any) -> Any:
        match event:
            case Msg(name="tick"):
                self.seen += 1
                yield ("count", self.seen)


def test_a_class_handler_keeps_its_state_across_a_checkpoint() -> None:
    """The handlers live in the state dict: a resumed stage goes on counting."""
    stream = rb.Flow("count").source([]).dispatch(Counter)
    ticks = [Msg("tick")] * 4
    assert drive(stream, ticks) == [("count", n) for n in range(1, 5)]
    assert drive(stream, ticks, checkpoint_at=2) == drive(stream, ticks)


def test_strict_routing_refuses_a_handler_it_cannot_read() -> None:
    """strict=True with a handler that has no match on its event fails at build time,
    naming the handler and the fix."""
    flow = rb.Flow("strict")
    with pytest.raises(rb.FlowDefinitionError, match=r"no_match.*no `match event:`"):
        flow.source([]).dispatch(greeter, no_match, strict=True)
    with pytest.raises(rb.FlowDefinitionError, match="lambda"):
        flow.source([]).dispatch(lambda e: [e], strict=True)
    with pytest.raises(rb.FlowDefinitionError, match="at least one handler"):
        flow.source([]).dispatch()
    with pytest.raises(rb.FlowDefinitionError, match="max_depth must be an int >= 1"):
        flow.source([]).dispatch(greeter, max_depth=0)
    with pytest.raises(rb.FlowDefinitionError, match="a handler must be a function"):
        flow.source([]).dispatch("greeter")


def test_routing_cascades_without_wiring(on_runner: str) -> None:
    """What a handler emits is routed like the input, and everything emitted goes out."""
    flow = rb.Flow("greetings")
    routed = flow.source([Msg("start", "world"), Msg("ignored")]).dispatch(
        shouter, greeter, strict=True
    )
    routed.sink(print, name="out")
    assert run_flow(flow)["out"] == [Msg("greet", "world"), ("said", "hello world"), "HELLO WORLD"]


def test_lenient_routing_gives_unwanted_events_to_unreadable_handlers(on_runner: str) -> None:
    """By default a handler without inferable interests gets the events no other wants."""
    flow = rb.Flow("lenient")
    routed = flow.source([Msg("start", "ann"), "stray"]).dispatch(greeter, no_match)
    routed.sink(print, name="out")
    out = run_flow(flow)["out"]
    assert ("anything", "stray") in out
    assert ("anything", Msg("start", "ann")) not in out  # greeter wanted it


def first(event: Any) -> Any:
    match event:
        case Msg(name="go"):
            return ["first"]
    return None


def second(event: Any) -> Any:
    match event:
        case Msg(name="go"):
            return ["second"]
    return None


def test_lower_priority_runs_first(on_runner: str) -> None:
    """Where several handlers are ready for one event, the lower priority runs first."""
    flow = rb.Flow("priorities")
    routed = flow.source([Msg("go")]).dispatch(
        rb.Handler(first, priority=5), rb.Handler(second, priority=1)
    )
    routed.sink(print, name="out")
    assert run_flow(flow)["out"] == ["second", "first"]


def ping(event: Any) -> Any:
    match event:
        case ("ping", n):
            return [("pong", n + 1)]
        case ("pong", n):
            return [("ping", n + 1)] if n < 10 else None
    return None


def forever(event: Any) -> Any:
    match event:
        case ("ping", n) | ("pong", n):
            return [("ping", n + 1)]
    return None


def test_finite_cycles_run_and_endless_ones_fail_clearly(on_runner: str) -> None:
    """A cycle that ends runs to its end; one that does not hits max_depth and fails the
    run with a message that says so."""
    flow = rb.Flow("ping-pong")
    flow.source([("ping", 0)]).dispatch(ping).sink(print, name="out")
    assert run_flow(flow)["out"][-1] == ("pong", 11)
    endless = rb.Flow("endless")
    endless.source([("ping", 0)]).dispatch(forever, max_depth=50).sink(print, name="out")
    with pytest.raises(rb.RunFailedError, match=r"depth 50.*cycle"):
        run_flow(endless)


class Batcher:
    """Collects what it gets; flushes at each end of phase."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.closed = False

    def __call__(self, event: Any) -> Any:
        match event:
            case int(n):
                self.items.append(n)
        return None

    def end_phase(self) -> Any:
        items, self.items = self.items, []
        return [("batch", items)] if items else None

    def close(self) -> None:
        self.closed = True


class Totals:
    """Sums batches; emits its total at the phase after the batches came."""

    def __init__(self) -> None:
        self.total: int | None = None

    def __call__(self, event: Any) -> Any:
        match event:
            case ("batch", items):
                self.total = (self.total or 0) + sum(items)
        return None

    def end_phase(self) -> Any:
        total, self.total = self.total, None
        return [("total", total)] if total is not None else None


def test_phases_repeat_until_quiescent(on_runner: str) -> None:
    """At the end of input, phases run while they emit: the batcher flushes in the first,
    the totals (fed by that flush) in the second."""
    flow = rb.Flow("phases")
    flow.source([1, 2, 3]).dispatch(Batcher, Totals).sink(print, name="out")
    assert run_flow(flow)["out"] == [("batch", [1, 2, 3]), ("total", 6)]


@runners.shared_objects
def test_shutdown_closes_every_handler(on_runner: str) -> None:
    """After the last phase, every handler's close() is called."""
    batcher = Batcher()
    flow = rb.Flow("closing")
    flow.source([1]).dispatch(batcher).sink(print, name="out")
    run_flow(flow)
    assert batcher.closed


class Restless:
    def __call__(self, event: Any) -> Any:
        return None

    def end_phase(self) -> Any:
        return ["again"]


def test_a_phase_that_never_settles_is_an_error() -> None:
    """A handler that emits at every phase end fails the run after max_phases."""
    flow = rb.Flow("restless")
    flow.source([1]).dispatch(Restless, max_phases=3).sink(print, name="out")
    with pytest.raises(rb.RunFailedError, match="after 3 phases"):
        run_flow(flow)


def test_the_stage_version_is_stable() -> None:
    """The flow's version names the handlers and patterns, not object addresses."""

    def build() -> rb.Flow:
        flow = rb.Flow("versions")
        flow.source([]).dispatch(Counter(), greeter).sink(print)
        return flow

    assert build().version == build().version


def test_routes_are_remembered_by_what_the_patterns_look_at() -> None:
    """The receivers cached for one event never leak to an event the patterns tell apart:
    same type, other literal attribute or item; unhashable events are routed too."""
    events = [3, 4, 3, "three", ["pair", 1], ["pair"], {"id": 1}, {"id": 2}, ("pair", 1, 2)]
    flow = rb.Flow("cached-routes")
    flow.source(events).dispatch(kinds, strict=True).sink(print, name="out")
    assert run_flow(flow)["out"] == [
        "literal",
        "literal",
        "literal",
        "sequence",
        "mapping",
        "mapping",
        "sequence",
    ]
    msgs = [Msg("start", "a"), Msg("other"), Urgent("start", "b"), Msg("start", "c")]
    greeted = rb.Flow("cached-classes")
    greeted.source(msgs).dispatch(greeter, strict=True).sink(print, name="out")
    said = [e for e in run_flow(greeted)["out"] if isinstance(e, tuple)]
    assert said == [("said", "hello a"), ("said", "hello b"), ("said", "hello c")]
