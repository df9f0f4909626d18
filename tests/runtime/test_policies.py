"""Failure policies on the local engine: retry with backoff, then stop / skip / continue /
dead-letter; which policy applies; timeouts; errors never pass silently; sinks that fail."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import Counter
from typing import Any

import pytest

import riverbed as rb
from riverbed.testing import Capture, TestClock
from tests import runners

pytestmark = pytest.mark.usefixtures("on_runner")


def _run(flow: rb.Flow, **options: Any) -> rb.RunResult:
    options.setdefault("progress", False)
    return flow.run(**options)


class FailsTimes:
    """Raises ``error`` on the first ``times`` calls for each event, then returns x * 10."""

    def __init__(self, times: int, error: type[Exception] = ConnectionError) -> None:
        self.times = times
        self.error = error
        self.calls: Counter[Any] = Counter()

    def __call__(self, x: Any) -> Any:
        self.calls[x] += 1
        if self.calls[x] <= self.times:
            raise self.error(f"attempt {self.calls[x]} on {x}")
        return x * 10


# -- retry -------------------------------------------------------------------------------


@runners.test_clock
def test_retry_sleeps_on_the_clock_with_exponential_backoff() -> None:
    """Retries sleep backoff * multiplier**(n-1), capped at max_backoff, on the run's clock."""
    clock = TestClock()
    flaky = FailsTimes(3)
    retry = rb.Retry(attempts=4, backoff=0.5, multiplier=3.0, max_backoff=2.0, jitter=False)
    flow = rb.Flow("retry")
    seen = Capture()
    flow.source([7], name="src").map(flaky, name="flaky", retry=retry).sink(seen, name="out")
    result = _run(flow, clock=clock)
    assert seen.items == [70]
    assert clock.sleeps == [0.5, 1.5, 2.0]
    assert clock.now() == pytest.approx(4.0)
    assert flaky.calls[7] == 4
    stats = result.stages["flaky"]
    assert (stats.errors, stats.retries, stats.events_out) == (3, 3, 1)
    assert result.errors == ()  # recovered by retry: nothing was given up


@runners.test_clock
def test_retry_jitter_stays_in_range_and_is_repeatable_with_a_seed() -> None:
    """With jitter each delay lies in [base/2, base], and one seed gives one schedule."""

    def schedule(seed: int) -> list[float]:
        clock = TestClock()
        flow = rb.Flow("jitter")
        retry = rb.Retry(attempts=5, backoff=1.0, multiplier=2.0)
        flow.source([1], name="src").map(FailsTimes(4), name="flaky", retry=retry).sink(
            Capture(), name="out"
        )
        _run(flow, clock=clock, seed=seed)
        return clock.sleeps

    first = schedule(3)
    assert len(first) == 4
    for attempt, delay in enumerate(first, start=1):
        base = 2.0 ** (attempt - 1)
        assert base / 2 <= delay <= base
    assert schedule(3) == first


@runners.test_clock
def test_retries_run_out_then_the_policy_acts() -> None:
    """When every attempt fails, the on_error action applies with the attempt count."""
    flow = rb.Flow("exhausted")
    retry = rb.Retry(attempts=3, backoff=0.1, jitter=False)
    flow.source([1, 2], name="src").map(
        FailsTimes(10), name="flaky", retry=retry, on_error=rb.OnError.DEAD_LETTER
    ).sink(Capture(), name="out")
    result = _run(flow, clock=TestClock())
    assert [(d.event, d.attempts) for d in result.dead_letters] == [(1, 3), (2, 3)]
    stats = result.stages["flaky"]
    assert (stats.errors, stats.retries, stats.dead_lettered) == (6, 4, 2)


@runners.test_clock
def test_retry_only_on_listed_exception_types() -> None:
    """Retry(on=(ConnectionError,)) retries a ConnectionError but never a ValueError."""
    retry = rb.Retry(attempts=3, backoff=0.0, on=(ConnectionError,))
    value_errors = FailsTimes(1, ValueError)
    connection_errors = FailsTimes(2, ConnectionError)
    flow = rb.Flow("retry-on")
    source = flow.source([5], name="src")
    source.map(value_errors, name="v", retry=retry, on_error=rb.OnError.SKIP).sink(
        Capture(), name="v_out"
    )
    source.map(connection_errors, name="c", retry=retry, on_error=rb.OnError.SKIP).sink(
        Capture(), name="c_out"
    )
    result = _run(flow, clock=TestClock())
    assert value_errors.calls[5] == 1
    assert (result.stages["v"].retries, result.stages["v"].skipped) == (0, 1)
    assert [(e.stage, e.error_type, e.attempts) for e in result.errors] == [("v", "ValueError", 1)]
    assert connection_errors.calls[5] == 3
    assert result.outputs["c_out"] == [50]
    assert result.stages["c"].retries == 2


@runners.test_clock
def test_retry_stops_at_an_error_it_does_not_retry() -> None:
    """A retried call that then raises an unlisted type gives up at once with that error."""
    calls: list[int] = []

    def connection_then_value(x: int) -> int:
        calls.append(x)
        if len(calls) == 1:
            raise ConnectionError("first")
        raise ValueError("second")

    flow = rb.Flow("mixed")
    retry = rb.Retry(attempts=5, backoff=0.0, on=(ConnectionError,))
    flow.source([1], name="src").map(
        connection_then_value, name="m", retry=retry, on_error=rb.OnError.SKIP
    ).sink(Capture(), name="out")
    result = _run(flow, clock=TestClock())
    assert len(calls) == 2
    assert [(e.error_type, e.attempts) for e in result.errors] == [("ValueError", 2)]


@runners.test_clock
def test_retry_on_an_async_stage() -> None:
    """An async stage is retried like a sync one, outputs kept in input order."""
    flaky = FailsTimes(2)

    async def call(x: int) -> int:
        await asyncio.sleep(0)
        return flaky(x)

    flow = rb.Flow("async-retry")
    seen = Capture()
    flow.source([3, 1, 2], name="src").map(
        call, name="m", retry=rb.Retry(attempts=3, backoff=0.01, jitter=False)
    ).sink(seen, name="out")
    clock = TestClock()
    result = _run(flow, clock=clock)
    assert seen.items == [30, 10, 20]
    assert result.stages["m"].retries == 6
    assert sorted(clock.sleeps) == [0.01] * 3 + [0.02] * 3


# -- which policy applies ----------------------------------------------------------------


def always_fails(x: int) -> int:
    raise ValueError(f"no {x}")


def test_stage_policy_beats_flow_policy_beats_default_stop() -> None:
    """A stage's on_error wins over the flow's, which wins over the default STOP."""
    flow = rb.Flow("layers", on_error=rb.OnError.SKIP)
    source = flow.source([1, 2], name="src")
    source.map(always_fails, name="own", on_error=rb.OnError.DEAD_LETTER).sink(
        Capture(), name="own_out"
    )
    source.map(always_fails, name="inherits").sink(Capture(), name="inherits_out")
    result = _run(flow)
    assert result.ok
    assert result.stages["own"].dead_lettered == 2
    assert result.stages["own"].skipped == 0
    assert result.stages["inherits"].skipped == 2
    assert [d.stage for d in result.dead_letters] == ["own", "own"]

    plain = rb.Flow("default")
    plain.source([1, 2], name="src").map(always_fails, name="m").sink(Capture(), name="out")
    with pytest.raises(rb.RunFailedError):
        _run(plain)


@runners.test_clock
def test_stage_retry_beats_flow_retry() -> None:
    """A stage's retry replaces the flow's; stages without one use the flow's."""
    flow = rb.Flow("retries", retry=rb.Retry(attempts=3, backoff=0.0), on_error=rb.OnError.SKIP)
    source = flow.source([1], name="src")
    source.map(always_fails, name="own", retry=rb.Retry(attempts=2, backoff=0.0)).sink(
        Capture(), name="own_out"
    )
    source.map(always_fails, name="inherits").sink(Capture(), name="inherits_out")
    result = _run(flow, clock=TestClock())
    attempts = {e.stage: e.attempts for e in result.errors}
    assert attempts == {"own": 2, "inherits": 3}


@runners.test_clock
def test_stop_raises_run_failed_error_with_the_result() -> None:
    """STOP fails the run: RunFailedError carries the FAILED result naming the stage."""
    flow = rb.Flow("stops")
    flow.source([1, 2, 3], name="src").map(
        FailsTimes(5, KeyError), name="broken", retry=rb.Retry(attempts=2, backoff=0.0)
    ).sink(Capture(), name="out")
    with pytest.raises(rb.RunFailedError, match="broken") as caught:
        _run(flow, clock=TestClock())
    result = caught.value.result
    assert result.status is rb.RunStatus.FAILED
    assert not result.ok
    assert result.error is not None
    assert result.error.stage == "broken"
    assert result.error.error_type == "KeyError"
    assert result.error.attempts == 2
    assert result.error.action is rb.OnError.STOP
    assert result.error.event == "1"
    assert "KeyError" in result.error.traceback
    stage_error = caught.value.__cause__
    assert isinstance(stage_error, rb.StageFailedError)
    assert stage_error.stage == "broken"
    assert isinstance(stage_error.__cause__, KeyError)


def test_raise_on_failure_false_returns_the_failed_result() -> None:
    """raise_on_failure=False returns the FAILED result instead of raising."""
    flow = rb.Flow("quiet")
    flow.source([1], name="src").map(always_fails, name="m").sink(Capture(), name="out")
    result = _run(flow, raise_on_failure=False)
    assert result.status is rb.RunStatus.FAILED
    assert result.error is not None
    assert (result.error.stage, result.error.error_type) == ("m", "ValueError")
    assert "failed at stage 'm'" in result.summary()


def test_stop_in_a_sink_fails_the_run() -> None:
    """A per-event sink raising under STOP fails the run, naming the sink."""

    def broken_sink(x: int) -> None:
        if x == 2:
            raise OSError("disk full")

    flow = rb.Flow("sink-stop")
    flow.source([1, 2, 3], name="src").sink(broken_sink, name="writer")
    result = _run(flow, raise_on_failure=False)
    assert result.status is rb.RunStatus.FAILED
    assert result.error is not None
    assert (result.error.stage, result.error.error_type) == ("writer", "OSError")


def test_continue_where_an_event_cannot_pass_counts_it_skipped() -> None:
    """CONTINUE on key_by or a sink drops the event and counts it skipped, not lost."""

    def bad_key(x: int) -> int:
        if x == 2:
            raise ValueError("no key")
        return x

    flow = rb.Flow("cannot-pass")
    seen = Capture()
    flow.source([1, 2, 3], name="src").key_by(
        bad_key, name="key", on_error=rb.OnError.CONTINUE
    ).sink(seen, name="out")
    result = _run(flow)
    assert seen.items == [(1, 1), (3, 3)]
    assert result.stages["key"].skipped == 1
    assert [e.action for e in result.errors] == [rb.OnError.SKIP]


def test_continue_on_a_branch_sends_the_event_to_false() -> None:
    """CONTINUE on a failing branch predicate sends the event down the false side."""

    def pred(x: int) -> bool:
        if x == 2:
            raise ValueError("cannot tell")
        return x > 2

    flow = rb.Flow("branch-continue")
    sides = flow.source([1, 2, 3], name="src").branch(
        pred, name="split", on_error=rb.OnError.CONTINUE
    )
    sides.trues.sink(Capture(), name="yes")
    sides.falses.sink(Capture(), name="no")
    result = _run(flow)
    assert result.outputs == {"yes": [3], "no": [1, 2]}


def test_unknown_route_is_an_error_of_the_route_stage() -> None:
    """A route function returning an unknown name is handled by the route's policy."""
    flow = rb.Flow("routes")
    routes = flow.source(["a", "b", "zzz"], name="src").route(
        lambda x: x, ["a", "b"], name="router", on_error=rb.OnError.DEAD_LETTER
    )
    routes.a.sink(Capture(), name="to_a")
    routes.b.sink(Capture(), name="to_b")
    result = _run(flow)
    assert result.outputs == {"to_a": ["a"], "to_b": ["b"]}
    assert [(d.stage, d.event, d.error_type) for d in result.dead_letters] == [
        ("router", "zzz", "UnknownRouteError")
    ]
    assert "'zzz'" in result.dead_letters[0].message


def test_stateful_function_returning_no_pair_is_a_stage_error() -> None:
    """A stateful function not returning (state, output) is an error of that stage."""

    def not_a_pair(state: Any, value: int) -> int:
        return value

    flow = rb.Flow("pairs")
    flow.source([1], name="src").key_by(lambda x: x, name="key").stateful(
        not_a_pair, name="state"
    ).sink(Capture(), name="out")
    result = _run(flow, raise_on_failure=False)
    assert result.error is not None
    assert result.error.stage == "state"
    assert "(state, output)" in result.error.message


def _count(state: int, value: Any) -> tuple[int, int]:
    return state + 1, state + 1


async def _count_async(state: int, value: Any) -> tuple[int, int]:
    await asyncio.sleep(0)
    return state + 1, state + 1


@pytest.mark.parametrize("form", ["stateful", "stateful-async", "fold"])
def test_unhashable_key_is_a_stage_error_handled_by_policy(form: str) -> None:
    """A key_by returning an unhashable key is an error of the flow's stages, handled by
    their policy, never an internal engine error."""
    flow = rb.Flow("unhashable", on_error=rb.OnError.SKIP)
    keyed = flow.source([1, 2, 3], name="src").key_by(lambda x: [x] if x == 2 else x, name="key")
    if form == "fold":
        out = keyed.fold(int, lambda acc, v: acc + v, name="state")
    else:
        out = keyed.stateful(
            _count if form == "stateful" else _count_async, initial=int, name="state"
        )
    out.sink(Capture(), name="out")
    result = _run(flow, raise_on_failure=False)
    assert result.status is rb.RunStatus.SUCCEEDED
    assert sorted(result.outputs["out"]) == [(1, 1), (3, 1 if form != "fold" else 3)]
    assert [e.error_type for e in result.errors] == ["TypeError"]
    assert result.errors[0].stage in ("key", "state")


# -- timeouts ----------------------------------------------------------------------------


def test_timeout_on_an_async_function_is_handled_by_policy() -> None:
    """An async call running past its timeout raises StageTimeoutError into the policy."""

    async def slow_on_two(x: int) -> int:
        if x == 2:
            await asyncio.sleep(5)
        return x

    flow = rb.Flow("timeouts")
    seen = Capture()
    flow.source([1, 2, 3], name="src").map(
        slow_on_two, name="slow", timeout=0.05, on_error=rb.OnError.DEAD_LETTER
    ).sink(seen, name="out")
    result = _run(flow)
    assert seen.items == [1, 3]
    [letter] = result.dead_letters
    assert (letter.stage, letter.event, letter.error_type) == ("slow", 2, "StageTimeoutError")
    assert "0.05" in letter.message


def test_timeout_on_a_sync_function_runs_it_in_a_thread() -> None:
    """A sync call with a timeout runs in a thread and times out the same way."""

    def sleepy(x: int) -> int:
        if x == 2:
            time.sleep(0.3)
        return x

    flow = rb.Flow("sync-timeouts")
    seen = Capture()
    flow.source([1, 2, 3], name="src").map(
        sleepy, name="sleepy", timeout=0.05, on_error=rb.OnError.SKIP
    ).sink(seen, name="out")
    result = _run(flow)
    assert seen.items == [1, 3]
    assert result.stages["sleepy"].skipped == 1
    assert [e.error_type for e in result.errors] == ["StageTimeoutError"]


@runners.shared_objects
def test_timed_out_call_is_retried_when_the_policy_says_so() -> None:
    """StageTimeoutError is a TimeoutError: Retry(on=(TimeoutError,)) retries it."""
    calls: Counter[int] = Counter()

    async def slow_first_time(x: int) -> int:
        calls[x] += 1
        if calls[x] == 1:
            await asyncio.sleep(5)
        return x

    flow = rb.Flow("timeout-retry")
    seen = Capture()
    flow.source([1, 2], name="src").map(
        slow_first_time,
        name="m",
        timeout=0.05,
        retry=rb.Retry(attempts=2, backoff=0.0, on=(TimeoutError,)),
    ).sink(seen, name="out")
    result = _run(flow)
    assert seen.items == [1, 2]
    assert dict(calls) == {1: 2, 2: 2}
    assert result.stages["m"].retries == 2


def test_timeout_with_stop_fails_the_run() -> None:
    """A timeout under the default STOP fails the run with StageTimeoutError."""

    async def hangs(x: int) -> int:
        await asyncio.sleep(5)
        return x

    flow = rb.Flow("timeout-stop")
    flow.source([1], name="src").map(hangs, name="hangs", timeout=0.05).sink(Capture(), name="out")
    with pytest.raises(rb.RunFailedError) as caught:
        _run(flow)
    assert caught.value.result.error is not None
    assert caught.value.result.error.error_type == "StageTimeoutError"


# -- never silent ------------------------------------------------------------------------


@pytest.mark.local_only("it reads the log of the test's process; Ray's workers log in theirs")
def test_errors_are_logged_counted_and_kept(caplog: pytest.LogCaptureFixture) -> None:
    """Every handled error is in result.errors and the counters, and logged (the first few
    per stage in full, then a note)."""
    flow = rb.Flow("noisy")
    flow.source(range(12), name="src").map(always_fails, name="m", on_error=rb.OnError.SKIP).sink(
        Capture(), name="out"
    )
    with caplog.at_level(logging.WARNING, logger="riverbed"):
        result = _run(flow)
    assert result.ok
    assert result.stages["m"].errors == 12
    assert result.stages["m"].skipped == 12
    assert [e.event for e in result.errors] == [str(i) for i in range(12)]
    assert all(e.stage == "m" and e.error_type == "ValueError" for e in result.errors)
    messages = [r.getMessage() for r in caplog.records if r.name == "riverbed"]
    detailed = [m for m in messages if "ValueError: no " in m]
    assert len(detailed) == 5
    assert all("'m'" in m and "skip" in m for m in detailed)
    assert any("not logged one by one" in m for m in messages)


def test_max_errors_limits_the_kept_list_not_the_counters() -> None:
    """max_errors caps result.errors; the counters still count every failure."""
    flow = rb.Flow("capped")
    flow.source(range(10), name="src").map(always_fails, name="m", on_error=rb.OnError.SKIP).sink(
        Capture(), name="out"
    )
    result = _run(flow, max_errors=3)
    assert len(result.errors) == 3
    assert result.stages["m"].errors == 10


@pytest.mark.local_only("the letter holds the event itself in one process; on Ray, an equal copy")
def test_dead_letter_keeps_event_traceback_and_attempts() -> None:
    """A dead letter keeps the event object itself, its stage, traceback and attempts."""
    event = {"id": 1}
    flow = rb.Flow("letters")
    flow.source([event], name="src").map(
        lambda e: e["missing"], name="lookup", on_error=rb.OnError.DEAD_LETTER
    ).sink(Capture(), name="out")
    result = _run(flow)
    [letter] = result.dead_letters
    assert letter.event is event
    assert letter.stage == "lookup"
    assert letter.error_type == "KeyError"
    assert letter.attempts == 1
    assert "KeyError" in letter.traceback
    assert letter.at is not None


@runners.unpicklable_events
def test_a_dead_letter_is_its_record_and_the_event(tmp_path: Any) -> None:
    """A result's dead letter is a view of the one record the store keeps (the event
    pickled, its repr, the error), with the event object beside it; an event that cannot
    be pickled is kept by its repr only, and the store gets exactly those records."""
    import pickle
    import threading

    lock = threading.Lock()  # cannot be pickled
    flow = rb.Flow("views")
    flow.source([3, lock], name="src").map(
        lambda e: e["missing"], name="lookup", on_error=rb.OnError.DEAD_LETTER
    ).sink(Capture(), name="out")
    with rb.open_store(f"sqlite:///{tmp_path}/runs.db") as store:
        result = _run(flow, store=store)
        stored = store.dead_letters(run_id=result.run_id)
    plain, unpicklable = result.dead_letters
    assert isinstance(plain.record, rb.DeadLetterRecord)
    assert (plain.record.run_id, plain.record.flow) == (result.run_id, "views")
    assert (plain.stage, plain.error_type, plain.attempts) == ("lookup", "TypeError", 1)
    assert pickle.loads(plain.record.event) == 3
    assert plain.record.event_repr == "3" == result.errors[0].event
    assert unpicklable.event is lock
    assert not unpicklable.record.replayable
    assert [dataclasses.replace(letter, id=None) for letter in stored] == [
        letter.record for letter in result.dead_letters
    ]


class UnprintableError(Exception):
    """A user's exception whose __str__ itself fails."""

    def __str__(self) -> str:
        raise RuntimeError("no str for you")


class UnprintableEvent:
    """A user's event whose __repr__ fails."""

    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


def test_exception_with_a_failing_str_is_still_handled_by_policy() -> None:
    """A user exception whose __str__ raises is skipped like any other error."""

    def bad(x: int) -> int:
        if x == 2:
            raise UnprintableError()
        return x

    flow = rb.Flow("unprintable-error")
    flow.source([1, 2, 3], name="src").map(bad, name="m", on_error=rb.OnError.SKIP).sink(
        Capture(), name="out"
    )
    result = _run(flow, raise_on_failure=False)
    assert result.status is rb.RunStatus.SUCCEEDED
    assert result.outputs == {"out": [1, 3]}
    assert [(e.stage, e.error_type) for e in result.errors] == [("m", "UnprintableError")]


def test_stop_on_an_event_with_a_failing_repr_names_the_stage_not_the_engine() -> None:
    """STOP on an event whose __repr__ raises fails the run at that stage, with no
    internal error."""
    flow = rb.Flow("unprintable-event")
    flow.source([UnprintableEvent()], name="src").map(lambda e: 1 / 0, name="m").sink(
        Capture(), name="out"
    )
    with pytest.raises(rb.RunFailedError) as caught:
        _run(flow)
    result = caught.value.result
    assert [(e.stage, e.error_type) for e in result.errors] == [("m", "ZeroDivisionError")]
    assert isinstance(caught.value.__cause__, rb.StageFailedError)


# -- batch sinks and sink objects --------------------------------------------------------


class FlakySinkObject:
    """A sink object whose write_batch fails the first ``failures`` calls."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.calls = 0
        self.written: list[Any] = []
        self.closed = 0

    def write_batch(self, events: list[Any]) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError("sink down")
        self.written.extend(events)

    def close(self) -> None:
        self.closed += 1


@runners.test_clock
def test_sink_object_is_retried_per_batch_and_closed_once() -> None:
    """A failing write_batch is retried with the same batch; close() runs once."""
    sink = FlakySinkObject(failures=2)
    flow = rb.Flow("sink-retry")
    flow.source(range(6), name="src").sink(
        sink, name="store", retry=rb.Retry(attempts=3, backoff=0.0)
    )
    result = _run(flow, batch_size=3, clock=TestClock())
    assert sink.written == list(range(6))
    assert sink.calls == 4
    assert sink.closed == 1
    assert result.stages["store"].retries == 2
    assert result.stages["store"].events_in == 6


def test_batch_sink_failure_dead_letters_each_event_of_the_batch() -> None:
    """A batch sink that gives up dead-letters every event of its batch, none lost."""
    written: list[list[int]] = []

    def write(events: list[int]) -> None:
        if 4 in events:
            raise OSError("rejected")
        written.append(list(events))

    flow = rb.Flow("batch-letters")
    flow.source(range(9), name="src").sink_batch(
        write, name="bulk", on_error=rb.OnError.DEAD_LETTER
    )
    result = _run(flow, batch_size=3)
    assert written == [[0, 1, 2], [6, 7, 8]]
    assert [d.event for d in result.dead_letters] == [3, 4, 5]
    assert result.stages["bulk"].dead_lettered == 3
    assert result.stages["bulk"].errors == 1  # one failed call


def test_batch_sink_failure_under_skip_counts_every_event() -> None:
    """SKIP on a failing batch sink counts each event of the batch as skipped."""

    def write(events: list[int]) -> None:
        raise OSError("never")

    flow = rb.Flow("batch-skip")
    flow.source(range(5), name="src").sink_batch(write, name="bulk", on_error=rb.OnError.SKIP)
    result = _run(flow, batch_size=2)
    assert result.ok
    assert result.stages["bulk"].skipped == 5
    assert len(result.errors) == 5


def test_batch_sink_stop_fails_the_run() -> None:
    """A batch sink failing under STOP fails the run, naming the sink."""

    def write(events: list[int]) -> None:
        raise OSError("never")

    flow = rb.Flow("batch-stop")
    flow.source(range(5), name="src").sink_batch(write, name="bulk")
    result = _run(flow, raise_on_failure=False)
    assert result.status is rb.RunStatus.FAILED
    assert result.error is not None
    assert (result.error.stage, result.error.error_type) == ("bulk", "OSError")


def test_sink_object_is_closed_once_when_the_run_fails() -> None:
    """close() is called exactly once even when a STOP elsewhere fails the run."""
    sink = FlakySinkObject()
    other = FlakySinkObject()
    flow = rb.Flow("close-on-fail")
    source = flow.source(range(10), name="src")
    source.map(always_fails, name="m").sink(sink, name="store")
    source.sink(other, name="other")
    result = _run(flow, raise_on_failure=False)
    assert result.status is rb.RunStatus.FAILED
    assert sink.closed == 1
    assert other.closed == 1


def test_sink_object_is_closed_once_when_its_own_write_fails() -> None:
    """close() runs once after the sink's own write_batch failed the run."""
    sink = FlakySinkObject(failures=100)
    flow = rb.Flow("close-own")
    flow.source(range(3), name="src").sink(sink, name="store")
    result = _run(flow, raise_on_failure=False)
    assert result.status is rb.RunStatus.FAILED
    assert sink.closed == 1


def test_failing_close_fails_the_run() -> None:
    """A sink whose close() raises fails an otherwise good run, naming the sink."""

    class BadClose(FlakySinkObject):
        def close(self) -> None:
            super().close()
            raise OSError("cannot flush")

    sink = BadClose()
    flow = rb.Flow("bad-close")
    flow.source([1, 2], name="src").sink(sink, name="store")
    result = _run(flow, raise_on_failure=False)
    assert result.status is rb.RunStatus.FAILED
    assert result.error is not None
    assert result.error.stage == "store"
    assert sink.closed == 1


def test_async_sink_object_is_awaited_and_closed() -> None:
    """A sink object with async write_batch and async close is awaited for both."""

    class AsyncSink:
        def __init__(self) -> None:
            self.written: list[int] = []
            self.closed = 0

        async def write_batch(self, events: list[int]) -> None:
            await asyncio.sleep(0)
            self.written.extend(events)

        async def close(self) -> None:
            await asyncio.sleep(0)
            self.closed += 1

    sink = AsyncSink()
    flow = rb.Flow("async-sink")
    flow.source(range(7), name="src").map(lambda x: x * 2, name="m").sink(sink, name="store")
    result = _run(flow, batch_size=3)
    assert result.ok
    assert sink.written == [x * 2 for x in range(7)]
    assert sink.closed == 1


@pytest.mark.parametrize("form", ["fold", "stateful"])
def test_continue_on_a_per_key_stage_drops_the_event_instead_of_emitting_it_raw(
    form: str,
) -> None:
    """CONTINUE cannot pass a raw event out of stateful or fold (they emit outputs or
    accumulators): the event is dropped and counted as skipped, the state untouched."""

    def add(acc: int, value: int) -> int:
        if value == 3:
            raise ValueError("three")
        return acc + value

    def step(state: int, value: int) -> tuple[int, int]:
        total = add(state, value)
        return total, total

    flow = rb.Flow("continue-per-key")
    keyed = flow.source([1, 2, 3, 4], name="src").key_by(lambda x: "k", name="key")
    if form == "fold":
        out = keyed.fold(int, add, name="agg", on_error=rb.OnError.CONTINUE)
    else:
        out = keyed.stateful(step, initial=int, name="agg", on_error=rb.OnError.CONTINUE)
    out.sink(Capture(), name="out")
    result = flow.run(progress=False)
    expected = [("k", 7)] if form == "fold" else [("k", 1), ("k", 3), ("k", 7)]
    assert result.outputs["out"] == expected
    assert result.stages["agg"].skipped == 1
    assert result.stages["agg"].errors == 1
