"""Windows, joins, collecting and sampling inside real flows on the local engine."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import riverbed as rb
from riverbed.testing import Capture, Pause, TestClock, TestSource, drive, run_flow
from tests import runners

pytestmark = pytest.mark.usefixtures("on_runner")

PROPERTY = settings(max_examples=40, deadline=None)


def key_of(event: dict[str, Any]) -> Any:
    return event["k"]


def time_of(event: dict[str, Any]) -> Any:
    return event["t"]


events_ = st.lists(
    st.fixed_dictionaries({"k": st.sampled_from("abc"), "t": st.integers(0, 50)}), max_size=50
)


@PROPERTY
@given(events_, st.integers(1, 10), st.integers(1, 20))
def test_windows_in_a_flow_equal_the_processor_driven_by_hand(
    events: list[dict[str, Any]], size: int, batch_size: int
) -> None:
    """A window stage in a flow emits exactly what the processor emits when driven by
    hand, whatever the batch size."""
    flow = rb.Flow("w")
    windows = (
        flow.source([], name="events")
        .key_by(key_of)
        .window(rb.Tumbling(size), rb.Collect(), event_time=time_of, max_delay=3)
    )
    windows.sink(print, name="out")
    expected = drive(windows, [(key_of(e), e) for e in events])
    assert run_flow(flow, events, batch_size=batch_size)["out"] == expected


def test_join_of_two_sources_in_a_flow() -> None:
    """Two sources keyed and joined in a window: the rows come out of the flow."""
    flow = rb.Flow("j")
    orders = flow.source([], name="orders").key_by(key_of)
    payments = flow.source([], name="payments").key_by(key_of)
    orders.join(payments, window=rb.Tumbling(10), how="left", event_time=time_of).sink(
        print, name="out"
    )
    out = run_flow(
        flow,
        {
            "orders": [{"k": "a", "t": 1}, {"k": "b", "t": 2}],
            "payments": [{"k": "a", "t": 3}],
        },
    )["out"]
    expected = [
        ("a", ({"k": "a", "t": 1}, {"k": "a", "t": 3})),
        ("b", ({"k": "b", "t": 2}, None)),
    ]
    assert sorted(out, key=repr) == sorted(expected, key=repr)


def test_rendezvous_of_two_sources_in_a_flow() -> None:
    """A rendezvous pairs each key's values from both sources, whatever the interleaving."""
    flow = rb.Flow("r")
    heads = flow.source([], name="heads").key_by(key_of)
    tails = flow.source([], name="tails").key_by(key_of)
    heads.rendezvous(tails).map(lambda pair: (pair[0], pair[1][0]["t"], pair[1][1]["t"])).sink(
        print, name="out"
    )
    out = run_flow(
        flow,
        {
            "heads": [{"k": "a", "t": 1}, {"k": "b", "t": 2}, {"k": "a", "t": 3}],
            "tails": [{"k": "b", "t": 10}, {"k": "a", "t": 11}, {"k": "a", "t": 12}],
        },
    )["out"]
    assert sorted(out) == [("a", 1, 11), ("a", 3, 12), ("b", 2, 10)]


@runners.test_clock
def test_processing_time_collect_flushes_on_the_run_clock() -> None:
    """collect(max_wait=) flushes a batch on the run clock's ticks once it has waited
    max_wait, while no event comes."""
    clock = TestClock(auto_advance=False)
    seen: list[tuple[float, Any]] = []

    def record(batch: Any) -> None:
        seen.append((clock.now(), batch))

    flow = rb.Flow("c")
    source = TestSource([[1, 2], Pause(5.0), [3]], clock=clock)
    flow.source(source, name="events").map(int).collect(max_size=100, max_wait=1.0).sink(record)

    async def scenario() -> rb.RunResult:
        run = asyncio.ensure_future(flow.arun(clock=clock, progress=False))
        for _ in range(40):
            await asyncio.sleep(0.005)
            clock.advance(0.25)
        return await run

    assert asyncio.run(scenario()).ok
    assert [batch for _, batch in seen] == [[1, 2], [3]]
    assert 1.0 <= seen[0][0] < 5.0


def test_a_raising_aggregator_is_skipped_under_policy() -> None:
    """on_error=SKIP on a window skips the event whose aggregation raised, as if it had
    never come."""

    flow = rb.Flow("s")
    flow.source([], name="events").map(float).window(
        rb.Tumbling(10), rb.Fold(int, _picky_sum), event_time=float, on_error=rb.OnError.SKIP
    ).sink(print, name="out")
    out = run_flow(flow, [1, 2, 13, 11, 25])["out"]
    assert [value for _, value in out] == [3, 11, 25]


def _picky_sum(acc: int, value: int) -> int:
    if value == 13:
        raise ValueError("13 is unlucky")
    return acc + value


def test_a_window_right_after_a_source() -> None:
    """A processor stage reading a source directly runs (no stage in between)."""
    flow = rb.Flow("direct")
    flow.source([], name="events").window(rb.Tumbling(10), event_time=float).sink(print, name="out")
    assert [value for _, value in run_flow(flow, [1, 2, 11])["out"]] == [2, 1]


@runners.test_clock
def test_idle_timeout_closes_windows_while_the_input_is_quiet() -> None:
    """In a real run, an event-time window whose input goes quiet closes on the run clock's
    ticks after idle_timeout: an event of that window arriving later is late."""
    clock = TestClock(auto_advance=False)
    out = Capture()
    flow = rb.Flow("idle")
    source = TestSource([[{"k": "a", "t": 1}], Pause(20.0), [{"k": "a", "t": 2}]], clock=clock)
    flow.source(source, name="events").key_by(key_of).window(
        rb.Tumbling(10), event_time=time_of, idle_timeout=2.0, late=rb.LatePolicy.SIDE
    ).sink(out, name="out")

    async def scenario() -> rb.RunResult:
        run = asyncio.ensure_future(flow.arun(clock=clock, progress=False))
        for _ in range(60):
            await asyncio.sleep(0.005)
            clock.advance(0.5)
        return await run

    assert asyncio.run(scenario()).ok
    assert out.items == [
        ("a", (rb.Window(0.0, 10.0), 1)),
        ("a", rb.Late({"k": "a", "t": 2}, 2.0)),
    ]


@runners.test_clock
def test_processing_time_window_right_after_a_source_closes_on_ticks() -> None:
    """A processing-time window reading a source directly closes when the clock passes its
    end, not when the next event happens to come."""
    clock = TestClock(auto_advance=False)
    seen: list[tuple[float, Any]] = []

    def record(item: Any) -> None:
        seen.append((clock.now(), item))

    flow = rb.Flow("direct-ticks")
    source = TestSource([[1], Pause(20.0), [2]], clock=clock)
    flow.source(source, name="events").window(rb.Tumbling(5), rb.Collect()).sink(record)

    async def scenario() -> rb.RunResult:
        run = asyncio.ensure_future(flow.arun(clock=clock, progress=False))
        for _ in range(60):
            await asyncio.sleep(0.005)
            clock.advance(0.5)
        return await run

    assert asyncio.run(scenario()).ok
    closed_at, first = seen[0]
    assert first == (rb.Window(0.0, 5.0), [1])
    assert 5.0 <= closed_at < 20.0  # on a tick, not when the next event came


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf], ids=repr)
@pytest.mark.parametrize("window", [rb.Tumbling(10), rb.Sliding(10, 5), rb.Session(3)], ids=repr)
def test_a_non_finite_event_time_fails_the_run_naming_stage_and_event(
    window: Any, bad: float
) -> None:
    """A NaN or infinite event time stops the run (STOP, the default) with an error that
    names the window stage and the event, instead of a SUCCEEDED run missing events."""
    events = [{"k": "a", "t": 1}, {"k": "a", "t": bad}, {"k": "a", "t": 12}]
    flow = rb.Flow("non-finite")
    flow.source(events, name="events").key_by(key_of).window(
        window, event_time=time_of, name="per_ten"
    ).sink(Capture(), name="out")
    result = flow.run(progress=False, store=False, raise_on_failure=False)
    assert result.status is rb.RunStatus.FAILED
    assert result.error is not None
    assert result.error.stage == "per_ten"
    assert result.error.error_type == "ValueError"
    assert "finite" in result.error.message
    assert repr(bad) in result.error.event


@pytest.mark.parametrize("policy", [rb.OnError.SKIP, rb.OnError.DEAD_LETTER], ids=lambda p: p.value)
def test_a_non_finite_event_time_follows_the_stage_policy(policy: rb.OnError) -> None:
    """Under SKIP or DEAD_LETTER, the event with a NaN time is counted as that stage's
    failure and every other event is windowed as if it had never come."""
    nan_event = {"k": "a", "t": math.nan}
    events = [{"k": "a", "t": 1}, nan_event, {"k": "a", "t": 12}, {"k": "a", "t": 14}]
    out = Capture()
    flow = rb.Flow("non-finite-policy")
    flow.source(events, name="events").key_by(key_of).window(
        rb.Tumbling(10), event_time=time_of, name="per_ten", on_error=policy
    ).sink(out, name="out")
    result = flow.run(progress=False, store=False)
    assert result.ok
    assert [(w.start, n) for _, (w, n) in out.items] == [(0.0, 1), (10.0, 2)]
    stats = result.stages["per_ten"]
    assert stats.errors == 1
    if policy is rb.OnError.DEAD_LETTER:
        # repr: NaN equals nothing, and on Ray the letter holds a copy of the event.
        assert [repr(d.event) for d in result.dead_letters] == [repr(("a", nan_event))]
    else:
        assert stats.skipped == 1
