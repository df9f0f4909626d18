"""Window joins, rendezvous and lookups against plain-Python references; checkpointed runs
against uninterrupted ones."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import riverbed as rb
from riverbed.testing import Pause, drive

pytestmark = pytest.mark.usefixtures("on_runner")

PROPERTY = settings(max_examples=150, deadline=None)


def get_t(value: tuple[int, int]) -> int:
    return value[0]


def inputs(n: int) -> list[rb.KeyedStream]:
    flow = rb.Flow("j")
    return [flow.source([], name=f"in{i}").key_by(len) for i in range(n)]


tagged = st.lists(
    st.tuples(st.sampled_from("ab"), st.integers(0, 2), st.integers(0, 40)), max_size=40
).map(lambda rows: [(k, (i, (t, n))) for n, (k, i, t) in enumerate(rows)])


@pytest.mark.parametrize("how", ["inner", "left", "outer"])
@PROPERTY
@given(events=tagged, cut=st.integers(0, 40))
def test_window_join_equals_reference(how: str, events: Any, cut: int) -> None:
    """A tumbling window join of three inputs gives, per key and window, the rows SQL's
    join of the three lists would (None for a missing side where ``how`` allows it)."""
    a, b, c = inputs(3)
    joined = a.join(b, c, window=rb.Tumbling(10), how=how, event_time=get_t, max_delay=100)
    groups: dict[tuple[str, int], list[list[Any]]] = defaultdict(lambda: [[], [], []])
    for key, (index, value) in events:
        groups[(key, value[0] // 10)][index].append(value)
    expected: Counter[Any] = Counter()
    for (key, _), lists in groups.items():
        if how == "inner" and not all(lists):
            continue
        if how == "left" and not lists[0]:
            continue
        for row in itertools.product(*(values or [None] for values in lists)):
            expected[(key, row)] += 1
    got = drive(joined, events)
    assert Counter(got) == expected
    assert drive(joined, events, checkpoint_at=min(cut, len(events))) == got


def test_session_join_pairs_events_of_one_burst() -> None:
    """A session-window join pairs the events of one burst of activity of a key."""
    a, b = inputs(2)
    joined = a.join(b, window=rb.Session(5), event_time=get_t)
    events = [("k", (0, (1, "a1"))), ("k", (1, (3, "b1"))), ("k", (1, (20, "b2")))]
    assert drive(joined, events) == [("k", ((1, "a1"), (3, "b1")))]


def test_processing_time_join_closes_on_ticks() -> None:
    """Without event_time, a join's windows are processing time and close on ticks."""
    a, b = inputs(2)
    joined = a.join(b, window=rb.Tumbling(10), how="outer")
    steps = [("k", (0, "a1")), Pause(3.0), ("k", (1, "b1")), Pause(10.0), ("k", (1, "b2"))]
    assert drive(joined, steps, finish=False) == [("k", ("a1", "b1"))]
    assert drive(joined, steps) == [("k", ("a1", "b1")), ("k", (None, "b2"))]


def reference_rendezvous(events: Any, n: int) -> list[Any]:
    queues: dict[str, list[list[Any]]] = defaultdict(lambda: [[] for _ in range(n)])
    out = []
    for key, (index, value) in events:
        queues[key][index].append(value)
        if all(queues[key]):
            out.append((key, tuple(q.pop(0) for q in queues[key])))
    return out


@PROPERTY
@given(events=tagged, cut=st.integers(0, 40))
def test_rendezvous_equals_reference(events: Any, cut: int) -> None:
    """A rendezvous emits, as soon as every input has a value for a key, the oldest value
    of each, in stream order."""
    a, b, c = inputs(3)
    met = a.rendezvous(b, c)
    expected = reference_rendezvous(events, 3)
    assert drive(met, events) == expected
    assert drive(met, events, checkpoint_at=min(cut, len(events))) == expected


def test_rendezvous_max_pending_evicts_the_oldest_key() -> None:
    """MaxPending(n) keeps the n most recent waiting keys."""
    a, b = inputs(2)
    met = a.rendezvous(b, orphans=rb.MaxPending(2))
    events = [("x", (0, 1)), ("y", (0, 2)), ("z", (0, 3)), ("x", (1, 4)), ("z", (1, 5))]
    assert drive(met, events) == [("z", (3, 5))]


def test_rendezvous_expiry_forgets_keys_after_a_while() -> None:
    """ExpireAfter(s) forgets a key that waited s seconds of processing time."""
    a, b = inputs(2)
    met = a.rendezvous(b, orphans=rb.ExpireAfter(10.0))
    events = [("x", (0, 1)), ("y", (0, 2)), Pause(6.0), ("y", (1, 3)), Pause(6.0)]
    assert drive(met, [*events, ("x", (1, 4)), ("y", (1, 5))]) == [("y", (2, 3))]


def test_join_needs_keyed_streams_and_at_most_eight() -> None:
    """Joining a plain stream, or more than eight, is refused with the fix."""
    flow = rb.Flow("bad")
    plain = flow.source([], name="p")
    keyed = flow.source([], name="k").key_by(len)
    with pytest.raises(rb.FlowDefinitionError, match="key_by"):
        keyed.join(plain, window=rb.Tumbling(1))
    with pytest.raises(rb.FlowDefinitionError, match="2 to 8"):
        keyed.rendezvous(*[flow.source([], name=f"s{i}").key_by(len) for i in range(8)])
    with pytest.raises(rb.FlowDefinitionError, match=r"Tumbling.*Session"):
        keyed.join(keyed, window=rb.Sliding(2, 1))  # type: ignore[arg-type]


def test_join_flows_serialize_and_keep_their_version() -> None:
    """A flow with a join (tag maps, merge, processor) goes to JSON and back unchanged."""
    a, b = inputs(2)
    a.join(b, window=rb.Tumbling(10), how="outer", event_time=get_t).sink(print)
    flow = a.flow
    again = rb.Flow.from_json(flow.to_json())
    assert again.version == flow.version
    assert [s.name for s in again.stages] == [s.name for s in flow.stages]


def test_lookup_in_a_table() -> None:
    """A dict lookup emits (event, found); left keeps misses with None."""
    stream = rb.Flow("t").source([])
    assert drive(stream.lookup({1: "one"}), [1, 2, 1]) == [(1, "one"), (1, "one")]
    assert drive(stream.lookup({1: "one"}, how="left", name="l"), [1, 2]) == [
        (1, "one"),
        (2, None),
    ]


def test_lookup_function_is_cached_lru_and_ttl() -> None:
    """A lookup function is called once per key while its answer is cached; the LRU
    evicts the least recently used key, and the TTL refreshes old answers."""
    calls: list[int] = []

    def square(n: int) -> int:
        calls.append(n)
        return n * n

    stream = rb.Flow("f").source([])
    lru = stream.lookup(square, cache_size=2)
    assert drive(lru, [1, 2, 1, 3, 1, 2]) == [(n, n * n) for n in [1, 2, 1, 3, 1, 2]]
    assert calls == [1, 2, 3, 2]
    calls.clear()
    ttl = stream.lookup(square, ttl=5.0, name="ttl")
    drive(ttl, [1, Pause(3.0), 1, Pause(3.0), 1])
    assert calls == [1, 1]
    calls.clear()
    assert drive(lru, [1, 2, 1], checkpoint_at=2) == [(1, 1), (2, 4), (1, 1)]
    assert calls == [1, 2]


def test_keyed_lookup_uses_the_stream_key() -> None:
    """On a keyed stream, the lookup key is the stream's key unless key= is given."""
    stream = rb.Flow("k").source([]).key_by(len)
    assert drive(stream.lookup({"a": 1}, how="left"), [("a", "x"), ("b", "y")]) == [
        ("a", ("x", 1)),
        ("b", ("y", None)),
    ]


def test_keyed_lookup_with_a_key_function() -> None:
    """key= looks up by a function of the value instead of the stream's key."""
    stream = rb.Flow("k").source([]).key_by(len)

    def first_letter(value: str) -> str:
        return value[0]

    lookup = stream.lookup({"x": "ex"}, key=first_letter)
    assert drive(lookup, [(1, "xy"), (2, "zz")]) == [(1, ("xy", "ex"))]
