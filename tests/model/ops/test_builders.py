"""The builder methods: what they add, what they refuse (naming the fix), and that flows
with them serialize and keep their versions."""

from __future__ import annotations

from typing import Any

import pytest

import riverbed as rb

pytestmark = pytest.mark.usefixtures("on_runner")


def when(event: Any) -> float:
    return float(event)


def keyed() -> rb.KeyedStream:
    return rb.Flow("b").source([], name="events").key_by(len)


def test_window_on_keyed_and_plain_streams() -> None:
    """A window on a keyed stream is keyed; on a plain stream it is not."""
    assert isinstance(keyed().window(rb.Tumbling(1)), rb.KeyedStream)
    plain = rb.Flow("p").source([]).window(rb.Tumbling(1))
    assert type(plain) is rb.Stream


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"window": rb.Tumbling(0)}, "Tumbling size must be a finite number > 0"),
        ({"window": rb.Sliding(1, 2)}, "every must be <= size"),
        ({"window": rb.Session(-1)}, "Session gap"),
        ({"window": rb.CountWindow(0)}, "CountWindow size"),
        ({"window": 5}, "window must be rb.Tumbling"),
        ({"window": rb.Tumbling(1), "aggregate": sum}, "aggregate must be rb.Count"),
        ({"window": rb.Tumbling(1), "max_delay": -1}, "max_delay must be a number"),
        ({"window": rb.Tumbling(1), "idle_timeout": 0}, "idle_timeout"),
        ({"window": rb.Tumbling(1), "late": "drop"}, "late must be an rb.LatePolicy"),
        ({"window": rb.Tumbling(1), "early_every": 0}, "early_every"),
        ({"window": rb.CountWindow(2), "event_time": when}, "needs no event_time"),
        ({"window": rb.Tumbling(1), "allowed_lateness": 5}, "goes with late=rb.LatePolicy"),
        ({"window": rb.CountWindow(2), "late": rb.LatePolicy.SIDE}, "no late events"),
        ({"window": rb.Session(2), "early_interval": 1.0}, "use early_every"),
    ],
)
def test_window_settings_are_checked(kwargs: dict[str, Any], message: str) -> None:
    """Bad window settings are a FlowDefinitionError saying what is expected."""
    with pytest.raises(rb.FlowDefinitionError, match=message):
        keyed().window(**kwargs)


def test_an_aggregator_class_needs_result() -> None:
    """A class with add() but no result() is refused, naming the class."""

    class Half:
        def add(self, value: Any) -> None: ...

    with pytest.raises(rb.FlowDefinitionError, match=r"Half has add.. but no result"):
        keyed().window(rb.Tumbling(1), Half)


def test_getter_arity_is_checked() -> None:
    """An event_time getter that takes no argument is a SignatureError."""
    with pytest.raises(rb.SignatureError):
        keyed().window(rb.Tumbling(1), event_time=lambda: 0.0)


def test_other_settings_are_checked() -> None:
    """collect, group, sample, reservoir, lookup and rendezvous check their settings."""
    plain = rb.Flow("o").source([])
    with pytest.raises(rb.FlowDefinitionError, match="max_size=, max_wait="):
        plain.collect()
    with pytest.raises(rb.FlowDefinitionError, match="key_by"):
        plain.group()
    with pytest.raises(rb.FlowDefinitionError, match=r"rb.Collect"):
        keyed().group(until="window")
    with pytest.raises(rb.FlowDefinitionError, match=r"\[0, 1\]"):
        plain.sample(1.5)
    with pytest.raises(rb.FlowDefinitionError, match="size must be an int"):
        plain.reservoir(0)
    with pytest.raises(rb.FlowDefinitionError, match="dict or a function"):
        plain.lookup(5)  # type: ignore[arg-type]
    with pytest.raises(rb.FlowDefinitionError, match="orphans must be"):
        keyed().rendezvous(keyed(), orphans=3)  # type: ignore[arg-type]


def test_flows_with_every_operator_round_trip_through_json() -> None:
    """Windows, joins, collect, sample, reservoir and lookup serialize and come back with
    the same version."""
    flow = rb.Flow("all")
    events = flow.source([1, 2, 3], name="events")
    keys = events.key_by(str)
    keys.window(rb.Sliding(10, 5), rb.Fold(int, max), event_time=when, max_delay=2.5).sink(
        print, name="w"
    )
    keys.window(rb.Session(3.0), rb.Max(key=when), late=rb.LatePolicy.UPDATE).sink(print, name="s")
    keys.join(events.map(when).key_by(str), window=rb.Tumbling(5), how="outer").sink(
        print, name="j"
    )
    events.collect(max_size=2, max_wait=1.0).sink(print, name="c")
    events.sample(0.5, seed=3).reservoir(2).sink(print, name="r")
    events.lookup({"1": "one"}, key=str, how="left").sink(print, name="l")
    again = rb.Flow.from_json(flow.to_json())
    assert again.version == flow.version
    assert [s.fn for s in again.stages if s.kind is rb.StageKind.PROCESS] == [
        s.fn for s in flow.stages if s.kind is rb.StageKind.PROCESS
    ]


def test_settings_change_the_version() -> None:
    """Changing a window's size changes the flow's version."""

    def version(size: float) -> str:
        flow = rb.Flow("v")
        flow.source([]).window(rb.Tumbling(size)).sink(print)
        return flow.version

    assert version(1.0) != version(2.0)


def test_public_shapes() -> None:
    """Results are pairs (window, value); early and updated ones are named pairs."""
    for result in [rb.Early(rb.Window(0.0, 1.0), 3), rb.Updated(rb.Window(0.0, 1.0), 3)]:
        window, value = result
        assert (window.start, window.end, value) == (0.0, 1.0, 3)
        assert (result.window, result.value) == (window, value)
