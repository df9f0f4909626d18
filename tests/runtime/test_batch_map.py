"""``batch_map`` on the local engine: calls by size, by time on the run's clock, at end of
stream; one output per input, checked; failures of a whole call under each policy."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import riverbed as rb
from riverbed.testing import Capture, Pause, TestClock, TestSource, run_flow
from tests import runners

pytestmark = pytest.mark.usefixtures("on_runner")


class Recorder:
    """A batch function that records each call's list (and the clock's time then) and
    returns each event times ten."""

    def __init__(self, clock: TestClock | None = None) -> None:
        self.calls: list[list[Any]] = []
        self.times: list[float] = []
        self.clock = clock

    def __call__(self, events: list[Any]) -> list[Any]:
        self.calls.append(list(events))
        if self.clock is not None:
            self.times.append(self.clock.now())
        return [x * 10 for x in events]


def _flow(fn: Any, source: Any, **options: Any) -> rb.Flow:
    flow = rb.Flow("batching")
    flow.source(source, name="src").batch_map(fn, name="bm", **options).sink(Capture(), name="out")
    return flow


@runners.shared_objects
def test_calls_with_max_size_events_and_the_rest_at_the_end() -> None:
    """Full lists of max_size are called as they fill; the remainder when the input ends."""
    fn = Recorder()
    out = run_flow(_flow(fn, list(range(10)), max_size=3, max_wait=None), batch_size=4)
    assert out == {"out": [x * 10 for x in range(10)]}
    assert fn.calls == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]


@runners.shared_objects
def test_what_waits_at_end_of_stream_is_called() -> None:
    """With no size or time reached, the buffered events are called when the input ends."""
    fn = Recorder()
    assert run_flow(_flow(fn, [1, 2, 3], max_size=100, max_wait=None)) == {"out": [10, 20, 30]}
    assert fn.calls == [[1, 2, 3]]


@runners.test_clock
def test_calls_after_max_wait_on_the_run_clock() -> None:
    """A partial list is called once its first event has waited max_wait clock seconds."""
    clock = TestClock(auto_advance=False)
    fn = Recorder(clock)
    source = TestSource([[1, 2], Pause(10.0), [3]], clock=clock)
    flow = _flow(fn, source, max_size=100, max_wait=1.0)

    async def scenario() -> rb.RunResult:
        run = asyncio.ensure_future(flow.arun(clock=clock, progress=False))
        for _ in range(40):
            await asyncio.sleep(0.01)
            clock.advance(0.5)
        return await run

    result = asyncio.run(scenario())
    assert result.outputs["out"] == [10, 20, 30]
    assert fn.calls == [[1, 2], [3]]
    assert 1.0 <= fn.times[0] < 10.0  # by time, long before the source went on


def test_async_batch_function() -> None:
    """An async def batch function is awaited."""

    async def double(events: list[int]) -> list[int]:
        await asyncio.sleep(0)
        return [2 * x for x in events]

    assert run_flow(_flow(double, list(range(5)), max_size=2)) == {"out": [0, 2, 4, 6, 8]}


def test_length_mismatch_is_an_error_naming_the_stage() -> None:
    """A function returning fewer outputs than inputs fails the stage, saying both counts."""

    def drops_one(events: list[int]) -> list[int]:
        return events[1:]

    with pytest.raises(rb.RunFailedError, match=r"'bm'.*returned 2 outputs for 3 inputs"):
        run_flow(_flow(drops_one, [1, 2, 3], max_size=3))


def test_non_list_result_is_an_error() -> None:
    """A function returning no list (here None) fails the stage, saying what it returned."""

    def forgets(events: list[int]) -> None:
        return None

    with pytest.raises(rb.RunFailedError, match="returned NoneType"):
        run_flow(_flow(forgets, [1, 2], max_size=2))


class FailingCalls:
    """Fails its first ``times`` calls, then returns each event times ten."""

    def __init__(self, times: int) -> None:
        self.times = times
        self.calls = 0

    def __call__(self, events: list[int]) -> list[int]:
        self.calls += 1
        if self.calls <= self.times:
            raise ConnectionError(f"call {self.calls}")
        return [x * 10 for x in events]


@runners.test_clock
def test_failed_call_is_retried_as_a_whole() -> None:
    """retry=: the whole list is called again after a failure, and succeeds."""
    fn = FailingCalls(2)
    retry = rb.Retry(attempts=3, backoff=0.01)
    result = _flow(fn, [1, 2, 3, 4], max_size=2, retry=retry).run(progress=False, clock=TestClock())
    assert result.outputs["out"] == [10, 20, 30, 40]
    stats = result.stages["bm"]
    assert (stats.errors, stats.retries) == (2, 2)


@pytest.mark.parametrize(
    ("action", "out", "field"),
    [
        (rb.OnError.SKIP, [30, 40], "skipped"),
        (rb.OnError.DEAD_LETTER, [30, 40], "dead_lettered"),
        (rb.OnError.CONTINUE, [1, 2, 30, 40], None),
    ],
)
def test_policy_action_applies_to_each_event_of_a_failed_call(
    action: rb.OnError, out: list[int], field: str | None
) -> None:
    """After retries, the action applies to every event of the failed list."""
    result = _flow(FailingCalls(1), [1, 2, 3, 4], max_size=2, on_error=action).run(progress=False)
    assert result.outputs["out"] == out
    assert [e.event for e in result.errors] == ["1", "2"]
    if field is not None:
        assert getattr(result.stages["bm"], field) == 2
    if action is rb.OnError.DEAD_LETTER:
        assert [d.event for d in result.dead_letters] == [1, 2]


def test_stop_fails_the_run() -> None:
    """The default policy: a failed call fails the run, naming the stage."""
    with pytest.raises(rb.RunFailedError, match="'bm'"):
        run_flow(_flow(FailingCalls(1), [1, 2], max_size=2))


def test_buffer_is_kept_in_the_run_state() -> None:
    """The waiting events live in the stage's entry of the run's state dict."""
    from riverbed._runtime.stream import StreamRun
    from tests.runtime.runs import execute, stream_run

    seen: list[Any] = []
    run: StreamRun | None = None

    def peek(events: list[int]) -> list[int]:
        assert run is not None
        seen.append(list(run.states["bm"]["buffer"]))
        return events

    run = stream_run(_flow(peek, [1, 2, 3], max_size=5, max_wait=None))
    assert asyncio.run(execute(run)) is None
    assert seen == [[1, 2, 3]]
    assert run.states["bm"]["buffer"] == []


# -- build time --------------------------------------------------------------------------


def _stream() -> rb.Stream:
    return rb.Flow("bad").source([1, 2], name="src")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"max_size": 0}, "max_size must be an int >= 1"),
        ({"max_size": 2.5}, "max_size must be an int >= 1"),
        ({"max_wait": 0}, "max_wait must be a finite number"),
        ({"max_wait": float("nan")}, "max_wait must be a finite number"),
    ],
)
def test_refuses_bad_settings(settings: dict[str, Any], message: str) -> None:
    """Each wrong setting is a FlowDefinitionError saying what is expected."""
    with pytest.raises(rb.FlowDefinitionError, match=message):
        _stream().batch_map(Recorder(), **settings)


def test_refuses_a_non_callable() -> None:
    """A value that is not callable is refused at once, naming the operator."""
    with pytest.raises(rb.NotCallableError, match="batch_map"):
        _stream().batch_map([1, 2])  # type: ignore[arg-type]


def test_refuses_concurrency() -> None:
    """concurrency= does not apply: max_size= is the setting."""
    with pytest.raises(TypeError, match="max_size="):
        _stream().batch_map(Recorder(), concurrency=2)
