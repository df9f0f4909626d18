"""Window processors against plain-Python references, and checkpointed runs against
uninterrupted ones (``riverbed.testing.drive``)."""

from __future__ import annotations

import contextlib
import math
import pickle
import re
from collections import Counter, defaultdict
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import riverbed as rb
from riverbed.testing import Pause, drive

pytestmark = pytest.mark.usefixtures("on_runner")

PROPERTY = settings(max_examples=150, deadline=None)


def get_t(event: tuple[int, str]) -> int:
    return event[0]


def stream() -> rb.KeyedStream:
    return rb.Flow("w").source([]).key_by(len)


class Mean:
    """A user aggregator class."""

    def __init__(self) -> None:
        self.n, self.total = 0, 0.0

    def add(self, value: tuple[int, str]) -> None:
        self.n += 1
        self.total += value[0]

    def result(self) -> float:
        return self.total / self.n


keys = st.sampled_from(["a", "b", "c"])
times = st.integers(0, 60)
keyed_events = st.lists(st.tuples(keys, times), max_size=60).map(
    lambda pairs: [(k, (t, f"{k}{i}")) for i, (k, t) in enumerate(pairs)]
)


def reference_tumbling(
    events: list[tuple[str, tuple[int, str]]], size: int, delay: int
) -> tuple[list[Any], int]:
    """Tumbling count windows, closed by the watermark, late events dropped: the plain
    loop. Results in order of window end, then of the key's first event in the window."""
    wm = -math.inf
    open_: dict[int, dict[str, int]] = {}
    out: list[Any] = []
    dropped = 0

    def close(mark: float) -> None:
        for end in sorted(e for e in open_ if e <= mark):
            for key, n in open_.pop(end).items():
                out.append((key, (rb.Window(end - size, end), n)))

    for key, value in events:
        t = value[0]
        end = t - t % size + size
        if end <= wm:
            dropped += 1
            continue
        bucket = open_.setdefault(end, {})
        bucket[key] = bucket.get(key, 0) + 1
        wm = max(wm, t - delay)
        close(wm)
    close(math.inf)
    return out, dropped


@PROPERTY
@given(keyed_events, st.integers(1, 15), st.integers(0, 20), st.integers(0, 60))
def test_tumbling_count_equals_reference(events: Any, size: int, delay: int, cut: int) -> None:
    """Tumbling event-time counts equal the plain loop's, late events dropped and counted;
    a checkpoint anywhere changes nothing."""
    windows = stream().window(rb.Tumbling(size), event_time=get_t, max_delay=delay)
    expected, dropped = reference_tumbling(events, size, delay)
    assert drive(windows, events) == expected
    assert drive(windows, events, checkpoint_at=min(cut, len(events))) == expected
    state: dict[str, Any] = {}
    processor = windows.flow.stage("window").fn.create(state)
    for event in events:
        processor.process(event, 0.0)
    assert state["late_dropped"] == dropped


@PROPERTY
@given(keyed_events, st.integers(1, 15), st.integers(1, 15), st.integers(0, 60))
def test_sliding_collect_equals_reference(events: Any, size: int, every: int, cut: int) -> None:
    """Sliding windows hold exactly the events whose time falls in them (no lateness when
    the watermark waits for everything); checkpoints change nothing."""
    every = min(every, size)
    windows = stream().window(
        rb.Sliding(size, every), rb.Collect(), event_time=get_t, max_delay=1000
    )
    expected: dict[tuple[str, float], list[Any]] = defaultdict(list)
    for key, value in events:
        start = value[0] - value[0] % every
        while start > value[0] - size:
            expected[(key, start)].append(value)
            start -= every
    got = drive(windows, events)
    assert {(k, w.start): v for k, (w, v) in got} == dict(expected)
    assert all(w.end - w.start == size for _, (w, _) in got)
    assert drive(windows, events, checkpoint_at=min(cut, len(events))) == got


def reference_sessions(events: Any, gap: int) -> Counter[Any]:
    """Sessions of each key: its events sorted by time, split where two are ``gap`` or more
    apart; each session's events in arrival order."""
    by_key: dict[str, list[Any]] = defaultdict(list)
    for arrival, (key, value) in enumerate(events):
        by_key[key].append((value[0], arrival, value))
    found: Counter[Any] = Counter()

    def session(key: str, run: list[Any]) -> tuple[Any, ...]:
        in_arrival_order = tuple(value for _, _, value in sorted(run, key=lambda e: e[1]))
        return (key, run[0][0], run[-1][0] + gap, in_arrival_order)

    for key, timed in by_key.items():
        timed.sort(key=lambda e: e[0])
        run = [timed[0]]
        for entry in timed[1:]:
            if entry[0] - run[-1][0] >= gap:
                found[session(key, run)] += 1
                run = []
            run.append(entry)
        found[session(key, run)] += 1
    return found


@PROPERTY
@given(keyed_events, st.integers(1, 10), st.booleans(), st.integers(0, 60))
def test_sessions_equal_reference(events: Any, gap: int, ordered: bool, cut: int) -> None:
    """Session windows (merging the sessions an event bridges) equal the sessions of the
    sorted times, whether events come in time order (closing as they go) or in any order
    with a watermark that waits; rb.Collect() keeps each session's events in arrival
    order, also across merges; checkpoints change nothing."""
    if ordered:
        events = sorted(events, key=lambda e: e[1][0])
    windows = stream().window(
        rb.Session(gap), rb.Collect(), event_time=get_t, max_delay=0 if ordered else 1000
    )
    got = drive(windows, events)
    found = Counter((k, w.start, w.end, tuple(v)) for k, (w, v) in got)
    assert found == reference_sessions(events, gap)
    assert drive(windows, events, checkpoint_at=min(cut, len(events))) == got


def _same(value: Any) -> int:
    return 0


def _concat(acc: str, value: float) -> str:
    return f"{acc}{value:g},"


ARRIVAL_ORDER_AGGREGATES = [
    (rb.Collect(), list),
    (rb.Fold(str, _concat), lambda values: "".join(f"{v:g}," for v in values)),
    (rb.Min(key=_same), lambda values: values[0]),
    (rb.Max(key=_same), lambda values: values[0]),
    (rb.Reservoir(10), list),
]


@pytest.mark.parametrize(
    ("arrivals", "window"),
    [
        ([0.0, 30.0, 5.0, 14.0, 22.0], rb.Window(0.0, 40.0)),
        ([10.0, 0.0, 12.0, 5.0], rb.Window(0.0, 22.0)),
    ],
    ids=["0-30-5-14-22", "10-0-12-5"],
)
@pytest.mark.parametrize(
    ("aggregate", "reference"), ARRIVAL_ORDER_AGGREGATES, ids=lambda a: repr(a)[:20]
)
def test_merged_sessions_aggregate_in_arrival_order(
    aggregate: Any, reference: Any, arrivals: list[float], window: rb.Window
) -> None:
    """Events that end in one session merged from several (gap 10): every aggregate sees
    them in arrival order, as one that never merged would (rb.Collect() is "in arrival
    order"; Min/Max keep the first of equals; a reservoir larger than the session keeps
    everything, in order)."""
    windows = (
        rb.Flow("s").source([]).window(rb.Session(10), aggregate, event_time=float, max_delay=100)
    )
    assert drive(windows, arrivals) == [(window, reference(arrivals))]


@PROPERTY
@given(keyed_events, st.integers(1, 5), st.integers(0, 60))
def test_count_windows_equal_chunks(events: Any, size: int, cut: int) -> None:
    """Count windows are each key's events in chunks of ``size``, the rest at the end."""
    windows = stream().window(rb.CountWindow(size), rb.Collect())
    got = drive(windows, events)
    by_key: dict[str, list[Any]] = defaultdict(list)
    for key, value in events:
        by_key[key].append(value)
    expected = Counter(
        (key, tuple(values[i : i + size]))
        for key, values in by_key.items()
        for i in range(0, len(values), size)
    )
    assert Counter((k, tuple(v)) for k, (_, v) in got) == expected
    assert drive(windows, events, checkpoint_at=min(cut, len(events))) == got


AGGREGATES = [
    (rb.Count(), len),
    (rb.Collect(), list),
    (rb.Fold(int, lambda acc, v: acc + v[0]), lambda vs: sum(v[0] for v in vs)),
    (rb.Reduce(max), max),
    (rb.Min(key=get_t), lambda vs: min(vs, key=get_t)),
    (rb.Max(), max),
    (Mean, lambda vs: sum(v[0] for v in vs) / len(vs)),
]


@pytest.mark.parametrize(("aggregate", "reference"), AGGREGATES, ids=lambda a: repr(a)[:20])
@PROPERTY
@given(events=keyed_events, cut=st.integers(0, 60))
def test_aggregates_equal_reference(aggregate: Any, reference: Any, events: Any, cut: int) -> None:
    """Every aggregator gives what the plain function of the window's events gives."""
    windows = stream().window(rb.Tumbling(10), aggregate, event_time=get_t, max_delay=1000)
    by_window: dict[tuple[str, float], list[Any]] = defaultdict(list)
    for key, value in events:
        by_window[(key, value[0] - value[0] % 10)].append(value)
    got = drive(windows, events)
    assert {(k, w.start): v for k, (w, v) in got} == {
        w: reference(vs) for w, vs in by_window.items()
    }
    assert drive(windows, events, checkpoint_at=min(cut, len(events))) == got


@PROPERTY
@given(st.lists(times, max_size=60), st.integers(1, 10), st.integers(0, 60), st.integers(0, 50))
def test_reservoir_per_window_is_a_seeded_sample(
    ts: list[int], size: int, seed: int, cut: int
) -> None:
    """``rb.Reservoir`` keeps min(size, n) of a window's events, the same ones for the
    same seed, also across a checkpoint."""
    windows = (
        rb.Flow("r")
        .source([])
        .window(rb.Tumbling(20), rb.Reservoir(size, seed=seed), event_time=float, max_delay=100)
    )
    got = drive(windows, ts)
    for window, sample in got:
        members = [t for t in ts if window.start <= t < window.end]
        assert len(sample) == min(size, len(members))
        assert Counter(sample) <= Counter(members)
    assert drive(windows, ts, checkpoint_at=min(cut, len(ts))) == got


def test_global_window_emits_results_without_keys() -> None:
    """A window on a plain stream aggregates all events together."""
    windows = rb.Flow("g").source([]).window(rb.Tumbling(10), rb.Collect(), event_time=float)
    assert drive(windows, [1, 2, 11, 3, 25]) == [
        (rb.Window(0.0, 10.0), [1, 2]),
        (rb.Window(10.0, 20.0), [11]),
        (rb.Window(20.0, 30.0), [25]),
    ]


def test_late_side_emits_late_events() -> None:
    """late=SIDE emits a late event as ``rb.Late`` among the results."""
    windows = (
        rb.Flow("l").source([]).window(rb.Tumbling(10), event_time=float, late=rb.LatePolicy.SIDE)
    )
    out = drive(windows, [1, 12, 3, 25])
    assert out[1] == rb.Late(3, 3.0)
    assert [r[1] for r in out if not isinstance(r, rb.Late)] == [1, 1, 1]


def test_late_update_emits_updated_results_within_allowed_lateness() -> None:
    """late=UPDATE re-emits a closed window's result with the late event as rb.Updated,
    until the watermark passes ``end + allowed_lateness``."""
    windows = (
        rb.Flow("u")
        .source([])
        .window(rb.Tumbling(10), event_time=float, late=rb.LatePolicy.UPDATE, allowed_lateness=10)
    )
    out = drive(windows, [1, 12, 3, 35, 4])
    assert out == [
        (rb.Window(0.0, 10.0), 1),
        rb.Updated(rb.Window(0.0, 10.0), 2),
        (rb.Window(10.0, 20.0), 1),
        (rb.Window(30.0, 40.0), 1),
    ]
    assert type(out[0]) is tuple
    assert type(out[1]) is rb.Updated


def test_session_late_update_merges_into_the_closed_session() -> None:
    """late=UPDATE on sessions adds a late event to the closed session it falls in."""
    windows = (
        rb.Flow("s")
        .source([])
        .window(rb.Session(5), rb.Collect(), event_time=float, late=rb.LatePolicy.UPDATE)
    )
    out = drive(windows, [1, 3, 20, 2], finish=False)
    assert out == [
        (rb.Window(1.0, 8.0), [1, 3]),
        rb.Updated(rb.Window(1.0, 8.0), [1, 3, 2]),
    ]
    assert isinstance(out[1], rb.Updated)


def test_early_results_every_n_events() -> None:
    """early_every=N emits a running result every N events of a window, then the final."""
    windows = stream().window(rb.Tumbling(10), event_time=get_t, early_every=2)
    out = drive(windows, [("a", (1, "x")), ("a", (2, "y")), ("a", (3, "z"))])
    assert [(r[1], isinstance(r, rb.Early)) for _, r in out] == [(2, True), (3, False)]


def test_early_results_on_ticks() -> None:
    """early_interval emits the windows that changed since the last tick."""
    windows = stream().window(rb.Tumbling(10), event_time=get_t, max_delay=100, early_interval=1.0)
    out = drive(windows, [("a", (1, "x")), Pause(1.0), Pause(1.0), ("a", (2, "y"))])
    assert [(r[1], isinstance(r, rb.Early)) for _, r in out] == [(1, True), (2, False)]


def test_idle_timeout_moves_the_watermark_with_the_clock() -> None:
    """With no events for idle_timeout seconds, the watermark follows processing time, so
    the window of the last event closes without any further event."""
    windows = stream().window(rb.Tumbling(10), event_time=get_t, idle_timeout=5.0)
    out = drive(windows, [("a", (1, "x")), Pause(4.0)], finish=False)
    assert out == []
    out = drive(windows, [("a", (1, "x")), Pause(12.0)], finish=False)
    assert [value for _, (_, value) in out] == [1]


def test_processing_time_windows_close_on_ticks() -> None:
    """Without event_time, an event's time is ``now`` and windows close as time passes."""
    windows = stream().window(rb.Tumbling(10), rb.Collect())
    steps = ["x", Pause(3.0), "y", Pause(8.0), "z"]
    out = drive(windows, [(s, s) if isinstance(s, str) else s for s in steps], finish=False)
    assert out == [
        ("x", (rb.Window(0.0, 10.0), ["x"])),
        ("y", (rb.Window(0.0, 10.0), ["y"])),
    ]


def test_datetimes_are_event_times() -> None:
    """An event_time getter may return datetimes (aware ones are exact)."""
    import datetime

    def when(event: datetime.datetime) -> datetime.datetime:
        return event

    utc = datetime.UTC
    start = datetime.datetime(2026, 1, 1, tzinfo=utc)
    times_ = [start + datetime.timedelta(seconds=s) for s in (1, 2, 61)]
    windows = rb.Flow("d").source([]).window(rb.Tumbling(60), event_time=when)
    out = drive(windows, times_)
    assert [value for _, value in out] == [2, 1]
    assert out[0][0].start == start.timestamp()


def test_a_getter_returning_something_else_names_the_stage() -> None:
    """A getter that returns a string is a TypeError naming the getter and the fix."""
    windows = rb.Flow("e").source([]).window(rb.Tumbling(60), event_time=str)
    with pytest.raises(TypeError, match=r"seconds .int or float. or a datetime"):
        drive(windows, [1])


@pytest.mark.parametrize(
    "window", [rb.Tumbling(10), rb.Sliding(10, 5), rb.Session(3), rb.CountWindow(2)], ids=repr
)
def test_a_raising_aggregator_leaves_the_state_unchanged(window: Any) -> None:
    """A fold that raises on an event changes nothing: skipping it gives the run without
    it (the engine's SKIP policy relies on this)."""

    def picky(acc: int, value: int) -> int:
        if value == 13:
            raise ValueError("13")
        return acc + value

    event_time = None if isinstance(window, rb.CountWindow) else float
    windows = rb.Flow("f").source([]).window(window, rb.Fold(int, picky), event_time=event_time)
    spec = windows.flow.stage("window").fn
    values = [1, 2, 11, 12, 13, 14, 25]
    state: dict[str, Any] = {}
    processor = spec.create(state)
    out: list[Any] = []
    for value in values:
        with contextlib.suppress(ValueError):
            out.extend(processor.process(value, 0.0) or ())
    out.extend(processor.finish() or ())
    assert out == drive(windows, [v for v in values if v != 13])


def reference_update(
    events: list[tuple[str, tuple[int, str]]], size: int, delay: int, lateness: int
) -> list[Any]:
    """Tumbling counts with late=UPDATE: the plain loop, closed windows kept until the
    watermark passes end + lateness, late events re-emitting their window's count."""
    wm = -math.inf
    open_: dict[int, dict[str, int]] = {}
    closed: dict[int, dict[str, int]] = {}
    out: list[Any] = []
    for key, value in events:
        t = value[0]
        end = t - t % size + size
        if end <= wm:
            if end + lateness > wm:
                bucket = closed.setdefault(end, {})
                bucket[key] = bucket.get(key, 0) + 1
                out.append((key, rb.Updated(rb.Window(end - size, end), bucket[key])))
            continue
        bucket = open_.setdefault(end, {})
        bucket[key] = bucket.get(key, 0) + 1
        wm = max(wm, t - delay)
        for done in sorted(e for e in open_ if e <= wm):
            emitted = open_.pop(done)
            out.extend((k, (rb.Window(done - size, done), n)) for k, n in emitted.items())
            if done + lateness > wm:
                closed[done] = emitted
        for gone in [e for e in closed if e + lateness <= wm]:
            del closed[gone]
    for done in sorted(open_):
        out.extend((k, (rb.Window(done - size, done), n)) for k, n in open_[done].items())
    return out


@PROPERTY
@given(keyed_events, st.integers(1, 15), st.integers(0, 10), st.integers(0, 30), st.integers(0, 60))
def test_late_updates_equal_reference(
    events: Any, size: int, delay: int, lateness: int, cut: int
) -> None:
    """late=UPDATE re-emits exactly what the plain loop does, across checkpoints too."""
    windows = stream().window(
        rb.Tumbling(size),
        event_time=get_t,
        max_delay=delay,
        late=rb.LatePolicy.UPDATE,
        allowed_lateness=lateness,
    )
    expected = reference_update(events, size, delay, lateness)
    got = drive(windows, events)
    assert got == expected
    assert [type(r) for _, r in got] == [type(r) for _, r in expected]
    assert drive(windows, events, checkpoint_at=min(cut, len(events))) == expected


def test_global_sessions_and_count_windows() -> None:
    """On a plain stream, sessions and count windows span all events together."""
    plain = rb.Flow("g").source([])
    sessions = plain.window(rb.Session(5), rb.Collect(), event_time=float)
    assert drive(sessions, [1, 3, 20, 22]) == [
        (rb.Window(1.0, 8.0), [1, 3]),
        (rb.Window(20.0, 27.0), [20, 22]),
    ]
    counts = plain.window(rb.CountWindow(3), rb.Reduce(max), name="threes")
    assert drive(counts, [4, 9, 2, 7, 1]) == [(rb.Window(0, 3), 9), (rb.Window(3, 5), 7)]


def test_early_every_on_sessions_and_count_windows() -> None:
    """early_every works on sessions and count windows too."""
    keyed = stream()
    sessions = keyed.window(rb.Session(5), event_time=get_t, early_every=2)
    out = drive(sessions, [("a", (1, "x")), ("a", (2, "y")), ("a", (3, "z"))])
    assert [(type(r).__name__, r[1]) for _, r in out] == [("Early", 2), ("tuple", 3)]
    counts = keyed.window(rb.CountWindow(4), early_every=3, name="c")
    out = drive(counts, [("a", (i, "v")) for i in range(4)])
    assert [(type(r).__name__, r[1]) for _, r in out] == [("Early", 3), ("tuple", 4)]


NON_FINITE = [math.nan, math.inf, -math.inf]
TIMED_WINDOWS = [rb.Tumbling(10), rb.Sliding(10, 5), rb.Session(3)]


@pytest.mark.parametrize("bad", NON_FINITE, ids=repr)
@pytest.mark.parametrize("window", TIMED_WINDOWS, ids=repr)
def test_a_non_finite_event_time_is_an_error(window: Any, bad: float) -> None:
    """NaN and +-inf are no time at all: the window raises a ValueError that says so (the
    stage's policy then applies), and skipping the event leaves the run as without it."""
    windows = rb.Flow("n").source([]).window(window, rb.Collect(), event_time=float)
    state: dict[str, Any] = {}
    processor = windows.flow.stage("window").fn.create(state)
    out: list[Any] = []
    for value in [1.0, 12.0]:
        out.extend(processor.process(value, 0.0) or ())
    with pytest.raises(ValueError, match=rf"returned {re.escape(repr(bad))}, .* finite"):
        processor.process(bad, 0.0)
    for value in [14.0, 25.0, 40.0]:
        out.extend(processor.process(value, 0.0) or ())
    out.extend(processor.finish() or ())
    assert out == drive(windows, [1.0, 12.0, 14.0, 25.0, 40.0])
    assert state["late_dropped"] == 0


def test_sliding_late_update_updates_the_closed_windows_of_a_partly_late_event() -> None:
    """An event of two sliding windows, one closed and one open: with late=UPDATE it goes
    into both, and the closed one's result comes again as rb.Updated."""
    windows = (
        rb.Flow("s")
        .source([])
        .window(
            rb.Sliding(10, 5),
            rb.Collect(),
            event_time=float,
            late=rb.LatePolicy.UPDATE,
            allowed_lateness=100,
        )
    )
    assert drive(windows, [1, 12, 7]) == [
        (rb.Window(-5.0, 5.0), [1]),
        (rb.Window(0.0, 10.0), [1]),
        rb.Updated(rb.Window(0.0, 10.0), [1, 7]),
        (rb.Window(5.0, 15.0), [12, 7]),
        (rb.Window(10.0, 20.0), [12]),
    ]


def _window_ends(t: int, size: int, every: int) -> list[int]:
    """The ends of the sliding windows ``[start, start + size)`` holding ``t``, in order."""
    start = t - t % every
    starts = range(start, t - size, -every)
    return sorted(s + size for s in starts)


def reference_sliding(
    events: list[tuple[str, tuple[int, str]]],
    window: tuple[int, int, int],
    late: str,
    lateness: int,
) -> tuple[list[Any], int]:
    """Sliding windows collecting events, closed by the watermark, with a late policy: the
    plain loop. An event goes into each of its windows still open; for each closed one,
    UPDATE adds it if the watermark has not passed ``end + lateness`` and emits the window
    again (rb.Updated); an event that missed a window is counted as dropped, unless SIDE
    sent the whole event to the side because all its windows had closed."""
    size, every, delay = window
    wm = -math.inf
    open_: dict[int, dict[str, list[Any]]] = {}
    closed: dict[int, dict[str, list[Any]]] = {}
    out: list[Any] = []
    dropped = 0
    for key, value in events:
        t = value[0]
        ends = _window_ends(t, size, every)
        if late == "side" and all(end <= wm for end in ends):
            out.append((key, rb.Late(value, t)))
            continue
        missed = False
        for end in ends:
            if end > wm:
                open_.setdefault(end, {}).setdefault(key, []).append(value)
            elif late == "update" and end + lateness > wm:
                values = closed.setdefault(end, {}).setdefault(key, [])
                values.append(value)
                out.append((key, rb.Updated(rb.Window(end - size, end), list(values))))
            else:
                missed = True
        dropped += missed
        wm = max(wm, t - delay)
        for end in sorted(e for e in open_ if e <= wm):
            bucket = open_.pop(end)
            out.extend((k, (rb.Window(end - size, end), list(vs))) for k, vs in bucket.items())
            if late == "update" and end + lateness > wm:
                closed[end] = bucket
        for gone in [e for e in closed if e + lateness <= wm]:
            del closed[gone]
    for end in sorted(open_):
        out.extend((k, (rb.Window(end - size, end), vs)) for k, vs in open_[end].items())
    return out, dropped


@PROPERTY
@given(
    keyed_events,
    st.tuples(st.integers(1, 15), st.integers(1, 15), st.integers(0, 10)),
    st.sampled_from(rb.LatePolicy),
    st.integers(0, 30),
    st.integers(0, 60),
)
def test_sliding_late_policies_equal_reference(
    events: Any, window: tuple[int, int, int], late: rb.LatePolicy, lateness: int, cut: int
) -> None:
    """Sliding (and tumbling: every == size) windows under each late policy emit exactly
    what the plain loop does and count the same dropped events, across checkpoints too."""
    size, every, delay = window
    every = min(every, size)
    windows = stream().window(
        rb.Sliding(size, every),
        rb.Collect(),
        event_time=get_t,
        max_delay=delay,
        late=late,
        allowed_lateness=lateness if late is rb.LatePolicy.UPDATE else None,
    )
    expected, dropped = reference_sliding(events, (size, every, delay), late.value, lateness)
    state: dict[str, Any] = {}
    processor = windows.flow.stage("window").fn.create(state)
    got: list[Any] = []
    for event in events:
        got.extend(processor.process(event, 0.0) or ())
    got.extend(processor.finish() or ())
    assert got == expected
    assert [type(r) for _, r in got] == [type(r) for _, r in expected]
    assert state["late_dropped"] == dropped
    assert drive(windows, events, checkpoint_at=min(cut, len(events))) == expected


def _fussy(acc: int, value: tuple[int, str]) -> int:
    """A fold that raises for some (accumulator, value) pairs, so that an event may fail in
    its second or third window after its first took it."""
    if (acc * 31 + value[0]) % 7 == 3:
        raise ValueError("fussy")
    return acc + value[0]


class FussyAdd:
    """A user aggregator updated in place whose ``add`` raises for some values (before
    changing anything, as it should)."""

    def __init__(self) -> None:
        self.total = 0

    def add(self, value: tuple[int, str]) -> None:
        if (self.total * 31 + value[0]) % 7 == 3:
            raise ValueError("fussy add")
        self.total += value[0]

    def result(self) -> int:
        return self.total

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and vars(other) == vars(self)

    __hash__ = None  # type: ignore[assignment]


class FussyResult(FussyAdd):
    """A user aggregator updated in place whose ``result`` raises for some totals."""

    def add(self, value: tuple[int, str]) -> None:
        self.total += value[0]

    def result(self) -> int:
        if self.total % 5 == 1:
            raise ValueError("fussy result")
        return self.total


RAISING = [
    (window, aggregate, late)
    for window in [rb.Tumbling(10), rb.Sliding(10, 5), rb.Sliding(9, 2), rb.Session(4)]
    for aggregate in [rb.Fold(int, _fussy), FussyAdd, FussyResult]
    for late in rb.LatePolicy
    # What an instance took in place cannot be undone when a later call raises: the
    # add of another window of a sliding event, or the result of a late update.
    if not isinstance(aggregate, type)
    or not (isinstance(window, rb.Sliding) or (aggregate is FussyResult and late.value == "update"))
]


def _drive_skipping(processor: Any, events: Any) -> tuple[list[Any], list[Any]]:
    """Run events through a processor as the SKIP policy does: an event whose call raises
    is dropped. Returns what it emitted (with "finish failed" if finish raised) and the
    events it took."""
    out: list[Any] = []
    taken = []
    for event in events:
        try:
            out.extend(processor.process(event, 0.0) or ())
        except ValueError:
            continue
        taken.append(event)
    try:
        out.extend(processor.finish() or ())
    except ValueError:
        out.append("finish failed")
    return out, taken


@PROPERTY
@given(keyed_events, st.sampled_from(RAISING), st.integers(0, 5))
def test_an_event_whose_user_code_raises_leaves_no_trace(
    events: Any, setting: tuple[Any, Any, rb.LatePolicy], delay: int
) -> None:
    """Skipping the events whose fold, ``add`` or ``result`` raised (the engine's SKIP)
    gives exactly the run that never saw them, whichever of an event's windows raised,
    late ones and the windows it closes included."""
    window, aggregate, late = setting
    windows = stream().window(
        window,
        aggregate,
        event_time=get_t,
        max_delay=delay,
        late=late,
        allowed_lateness=5 if late is rb.LatePolicy.UPDATE else None,
    )
    spec = windows.flow.stage("window").fn
    out, taken = _drive_skipping(spec.create({}), events)
    again, retaken = _drive_skipping(spec.create({}), taken)
    assert (again, retaken) == (out, taken)


def _canonical(state: dict[str, Any]) -> dict[str, Any]:
    """A copy of a window's state that compares equal when it means the same: heaps as
    their sorted contents, and a session's heap entry (open or closed) by its number and
    key (its time is when to look at the session again, which may move on without
    changing anything: an expiry pushed back for a session a late event extended)."""
    copy = pickle.loads(pickle.dumps(state))
    for heap in ("ends", "closed_ends"):
        if heap in copy:
            copy[heap] = sorted(copy[heap])
    for heap, sessions in (("due", "sessions"), ("closed_due", "closed")):
        if heap in copy:
            live = {(key, s[4]) for key, ss in copy[sessions].items() for s in ss}
            copy[heap] = sorted((n, repr(k)) for _, n, k in copy[heap] if (k, n) in live)
    return copy


@settings(max_examples=400, deadline=None)
@given(keyed_events, st.sampled_from(RAISING), st.integers(0, 5))
def test_a_raising_call_leaves_the_state_as_it_was(
    events: Any, setting: tuple[Any, Any, rb.LatePolicy], delay: int
) -> None:
    """After an event whose fold, ``add`` or ``result`` (of a window it closes, or of its
    late update) raised, the state means exactly what it meant before the event (the
    promise that lets the stage's policy skip or retry it), as far as user classes
    updated in place allow (see ``RAISING``)."""
    window, aggregate, late = setting
    windows = stream().window(
        window,
        aggregate,
        event_time=get_t,
        max_delay=delay,
        late=late,
        allowed_lateness=5 if late is rb.LatePolicy.UPDATE else None,
    )
    state: dict[str, Any] = {}
    processor = windows.flow.stage("window").fn.create(state)
    for event in events:
        before = _canonical(state)
        try:
            processor.process(event, 0.0)
        except ValueError:
            assert _canonical(state) == before


@pytest.mark.parametrize(
    ("window", "delay", "events"),
    [
        (rb.Tumbling(10), 5, [("a", (6, "x")), ("a", (12, "y")), ("a", (16, "z"))]),
        (rb.Session(4), 0, [("a", (6, "x")), ("b", (8, "y")), ("b", (11, "z"))]),
        (
            rb.Session(4),
            0,
            [("b", (5, "w")), ("a", (6, "x")), ("b", (8, "y")), ("b", (11, "z"))],
        ),
    ],
    ids=["tumbling", "session", "session-due-itself"],
)
def test_results_of_closing_windows_come_before_the_event_is_added(
    window: Any, delay: int, events: Any
) -> None:
    """The last event adds to an open window of a user class (in place) and closes an
    older one whose result() raises: the results are asked first, so the failed event
    has added nothing and the state is as it was (also when the last event's own
    session came due at the same moment)."""
    windows = stream().window(window, FussyResult, event_time=get_t, max_delay=delay)
    state: dict[str, Any] = {}
    processor = windows.flow.stage("window").fn.create(state)
    for event in events[:-1]:
        processor.process(event, 0.0)
    before = _canonical(state)
    with pytest.raises(ValueError, match="fussy result"):
        processor.process(events[-1], 0.0)
    assert _canonical(state) == before


def test_a_session_checkpoint_of_an_earlier_riverbed_resumes() -> None:
    """A checkpoint whose sessions have the layout riverbed had before arrival numbers
    (four fields, a heap entry per event; here after 1, 3, 20, 2, 22) resumes as the
    run would have gone on, late updates of its closed sessions included."""
    windows = (
        rb.Flow("s")
        .source([])
        .window(
            rb.Session(5),
            rb.Collect(),
            event_time=float,
            late=rb.LatePolicy.UPDATE,
            allowed_lateness=100,
        )
    )
    earlier: dict[str, Any] = {
        "clock": [22.0, 22.0, 0.0],
        "sessions": {None: [[20.0, 22.0, [20, 22], [20, 22]]]},
        "due": [(25.0, 3, None), (27.0, 4, None)],
        "seq": [4],
        "closed": {None: [[1.0, 3.0, [1, 3, 2], [1, 3, 2]]]},
        "late_dropped": 0,
    }
    processor = windows.flow.stage("window").fn.create(earlier)
    out: list[Any] = []
    for value in [24, 4, 40]:
        out.extend(processor.process(value, 0.0) or ())
    out.extend(processor.finish() or ())
    assert out == drive(windows, [1, 3, 20, 2, 22, 24, 4, 40])[2:]
