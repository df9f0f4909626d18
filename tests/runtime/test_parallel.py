"""``parallel_map`` on the local engine: order kept or not, the gap policy, results flowing
across batch boundaries, failures under each policy, timeouts, real process pools, pools
released at the end, and the build-time checks."""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
import time
from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import riverbed as rb
from riverbed.testing import Capture, TestSource, run_flow
from tests import runners

pytestmark = pytest.mark.usefixtures("on_runner")

PROPERTY = settings(max_examples=25, deadline=None)


def _square(x: int) -> int:
    """Module level, so that worker processes can import it by name."""
    return x * x


def _fails_on_three(x: int) -> int:
    if x == 3:
        raise ValueError(f"no threes ({x})")
    return x * 10


def _flow(fn: Any, events: list[Any], **options: Any) -> rb.Flow:
    flow = rb.Flow("parallel")
    flow.source(events, name="src").parallel_map(fn, name="pm", **options).sink(
        Capture(), name="out"
    )
    return flow


def _sleepy(delays: list[float]) -> Any:
    def sleepy(x: int) -> int:
        time.sleep(delays[x])
        return x

    return sleepy


def _async_sleepy(delays: list[float]) -> Any:
    async def sleepy(x: int) -> int:
        await asyncio.sleep(delays[x])
        return x

    return sleepy


_DELAYS = st.lists(st.sampled_from([0.0, 0.0005, 0.001, 0.003]), min_size=1, max_size=40)


# -- order -------------------------------------------------------------------------------


@PROPERTY
@given(delays=_DELAYS, workers=st.integers(1, 6), batch=st.integers(1, 8), is_async=st.booleans())
def test_ordered_keeps_input_order_under_random_delays(
    delays: list[float], workers: int, batch: int, is_async: bool
) -> None:
    """With ordered=True, calls finishing in any order still leave in input order."""
    fn = _async_sleepy(delays) if is_async else _sleepy(delays)
    mode = "async" if is_async else "thread"
    events = list(range(len(delays)))
    flow = _flow(fn, events, workers=workers, mode=mode)
    assert run_flow(flow, batch_size=batch) == {"out": events}


@PROPERTY
@given(delays=_DELAYS, workers=st.integers(1, 6), batch=st.integers(1, 8), is_async=st.booleans())
def test_unordered_emits_the_same_multiset(
    delays: list[float], workers: int, batch: int, is_async: bool
) -> None:
    """With ordered=False, every result leaves exactly once, in whatever order."""
    fn = _async_sleepy(delays) if is_async else _sleepy(delays)
    mode = "async" if is_async else "thread"
    events = list(range(len(delays)))
    flow = _flow(fn, events, workers=workers, mode=mode, ordered=False)
    assert Counter(run_flow(flow, batch_size=batch)["out"]) == Counter(events)


def test_ordered_keeps_per_key_order_on_a_keyed_stream() -> None:
    """On a keyed stream, fn gets the (key, value) pair and each key's order holds."""
    delays = [0.002 if i % 3 == 0 else 0.0 for i in range(30)]

    def tag(pair: tuple[int, int]) -> tuple[int, int]:
        time.sleep(delays[pair[1]])
        return pair

    flow = rb.Flow("keyed")
    keyed = flow.source(list(range(30)), name="src").key_by(lambda x: x % 4)
    keyed.parallel_map(tag, workers=4, name="pm").sink(Capture(), name="out")
    out = run_flow(flow, batch_size=5)["out"]
    for key in range(4):
        assert [v for k, v in out if k == key] == [v for v in range(30) if v % 4 == key]


class _Gate:
    """An async function whose call on ``stuck`` waits until ``release`` is called (or a
    safety timeout, which fails the call rather than hang the test)."""

    def __init__(self, stuck: int) -> None:
        self.stuck = stuck
        self.event: asyncio.Event | None = None
        self.seen: list[Any] = []

    async def __call__(self, x: int) -> int:
        if self.event is None:
            self.event = asyncio.Event()
        if x == self.stuck:
            await asyncio.wait_for(self.event.wait(), 10)
        return x

    def release(self) -> None:
        if self.event is None:
            self.event = asyncio.Event()
        self.event.set()


@runners.shared_objects
def test_skip_ahead_emits_past_a_stuck_event_and_the_stuck_one_later() -> None:
    """gap="skip": past max_buffered waiting results they leave; the stuck one follows."""
    gate = _Gate(stuck=0)

    def sink(x: int) -> None:
        gate.seen.append(x)
        if len(gate.seen) == 6:  # only reachable if results got past the stuck event
            gate.release()

    flow = rb.Flow("skip")
    flow.source(list(range(20)), name="src").parallel_map(
        gate, workers=2, mode="async", gap="skip", max_buffered=5, name="pm"
    ).sink(sink, name="out")
    result = flow.run(progress=False, batch_size=4)
    assert result.ok
    assert sorted(gate.seen) == list(range(20))
    assert gate.seen.index(0) >= 6
    rest = [x for x in gate.seen if x != 0]
    assert rest == sorted(rest)  # the others keep their order


def test_wait_gap_holds_results_behind_a_slow_event() -> None:
    """gap="wait" (the default): a slow first event holds the others back; order holds."""
    gate = _Gate(stuck=0)

    async def fn(x: int) -> int:
        if x == 7:
            gate.release()  # a later event frees the first one
        return await gate(x)

    out = run_flow(_flow(fn, list(range(12)), workers=3, mode="async"), batch_size=2)
    assert out == {"out": list(range(12))}


@runners.shared_objects
def test_ordered_window_bounds_the_events_taken_behind_a_slow_one() -> None:
    """gap="wait": behind a slow event, at most workers * 4 events are taken (and called)."""
    started: list[int] = []
    seen_while_slow: list[int] = []

    async def slow_first(x: int) -> int:
        started.append(x)
        if x == 0:
            for _ in range(300):  # many turns of the loop: the run takes what it may
                await asyncio.sleep(0)
            seen_while_slow.append(len(started))
        return x

    out = run_flow(_flow(slow_first, list(range(100)), workers=2, mode="async"), batch_size=1)
    assert out == {"out": list(range(100))}
    assert seen_while_slow[0] <= 2 * 4


@runners.shared_objects
def test_unordered_results_flow_across_batch_boundaries() -> None:
    """ordered=False: a later batch's results leave while an earlier batch's call runs."""
    gate = _Gate(stuck=0)

    def sink(x: int) -> None:
        gate.seen.append(x)
        if x == 3:  # from the second batch: only reachable without a stall on the first
            gate.release()

    flow = rb.Flow("flowing")
    source = TestSource([[0, 1], [2, 3]])
    flow.source(source, name="src").parallel_map(
        gate, workers=4, mode="async", ordered=False, name="pm"
    ).sink(sink, name="out")
    assert flow.run(progress=False).ok
    assert gate.seen[-1] == 0
    assert sorted(gate.seen) == [0, 1, 2, 3]


# -- failures ----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["thread", "async"])
def test_skip_drops_the_failing_event_and_keeps_order(mode: str) -> None:
    """on_error=SKIP: the failing event is dropped and counted; the rest stay in order."""
    fn = _fails_on_three
    if mode == "async":

        async def fn(x: int) -> int:  # type: ignore[misc]
            return _fails_on_three(x)

    flow = _flow(fn, list(range(8)), workers=3, mode=mode, on_error=rb.OnError.SKIP)
    result = flow.run(progress=False, batch_size=3)
    assert result.outputs["out"] == [0, 10, 20, 40, 50, 60, 70]
    stats = result.stages["pm"]
    assert (stats.events_in, stats.events_out, stats.errors, stats.skipped) == (8, 7, 1, 1)


def test_dead_letter_keeps_the_failing_event() -> None:
    """on_error=DEAD_LETTER: the event and its error are kept; the rest go on."""
    flow = _flow(_fails_on_three, list(range(6)), workers=2, on_error=rb.OnError.DEAD_LETTER)
    result = flow.run(progress=False)
    assert result.outputs["out"] == [0, 10, 20, 40, 50]
    [letter] = result.dead_letters
    assert (letter.stage, letter.event, letter.error_type) == ("pm", 3, "ValueError")


def test_continue_passes_the_failing_event_unchanged() -> None:
    """on_error=CONTINUE: the failing event leaves as it came, in its place."""
    flow = _flow(_fails_on_three, list(range(6)), workers=2, on_error=rb.OnError.CONTINUE)
    assert run_flow(flow) == {"out": [0, 10, 20, 3, 40, 50]}


def test_stop_fails_the_run_naming_the_stage() -> None:
    """The default policy: a failing event fails the run, naming the stage and event."""
    with pytest.raises(rb.RunFailedError, match=r"'pm'.*no threes"):
        run_flow(_flow(_fails_on_three, list(range(10)), workers=2))


@runners.shared_objects
def test_retry_with_backoff_recovers() -> None:
    """retry=: a call failing twice succeeds on its third attempt; retries are counted."""
    calls: Counter[int] = Counter()
    lock = threading.Lock()

    def flaky(x: int) -> int:
        with lock:
            calls[x] += 1
            count = calls[x]
        if x % 2 and count < 3:
            raise ConnectionError(f"attempt {count}")
        return x

    retry = rb.Retry(attempts=3, backoff=0.001, jitter=False)
    flow = _flow(flaky, list(range(6)), workers=3, retry=retry)
    result = flow.run(progress=False)
    assert result.outputs["out"] == list(range(6))
    stats = result.stages["pm"]
    assert (stats.errors, stats.retries) == (6, 6)


def test_async_timeout_is_a_failure_under_the_policy() -> None:
    """timeout= is per event: an async call past it is a StageTimeoutError, then SKIP."""

    async def hangs_on_two(x: int) -> int:
        if x == 2:
            await asyncio.Event().wait()  # never set
        return x

    flow = _flow(
        hangs_on_two,
        list(range(5)),
        workers=2,
        mode="async",
        timeout=0.05,
        on_error=rb.OnError.SKIP,
    )
    result = flow.run(progress=False)
    assert result.outputs["out"] == [0, 1, 3, 4]
    assert [e.error_type for e in result.errors] == ["StageTimeoutError"]


@runners.shared_objects
def test_thread_timeout_does_not_stall_the_events_behind() -> None:
    """A blocked thread call times out; the events behind it still leave."""
    blocked = threading.Event()

    def blocks_on_one(x: int) -> int:
        if x == 1:
            blocked.wait(10)
        return x

    flow = _flow(
        blocks_on_one,
        list(range(6)),
        workers=2,
        timeout=0.05,
        on_error=rb.OnError.DEAD_LETTER,
    )
    try:
        result = flow.run(progress=False)
    finally:
        blocked.set()
    assert result.outputs["out"] == [0, 2, 3, 4, 5]
    assert [d.event for d in result.dead_letters] == [1]


# -- pools -------------------------------------------------------------------------------


def test_process_mode_runs_on_a_real_pool_and_shuts_it_down() -> None:
    """mode="process": calls run in worker processes, in order; none is left after."""
    flow = _flow(_square, list(range(30)), workers=2, mode="process")
    assert run_flow(flow, batch_size=7) == {"out": [x * x for x in range(30)]}
    assert multiprocessing.active_children() == []


def test_process_mode_failure_follows_the_policy_with_the_worker_traceback() -> None:
    """In a worker process, a failing event is retried alone, then dead-lettered with the
    traceback from the worker; the events sent with it are unaffected."""
    retry = rb.Retry(attempts=2, backoff=0.001)
    flow = _flow(
        _fails_on_three,
        list(range(20)),
        workers=2,
        mode="process",
        retry=retry,
        on_error=rb.OnError.DEAD_LETTER,
    )
    result = flow.run(progress=False)
    assert result.outputs["out"] == [x * 10 for x in range(20) if x != 3]
    [letter] = result.dead_letters
    assert (letter.event, letter.attempts, letter.error_type) == (3, 2, "ValueError")
    assert "_fails_on_three" in letter.traceback
    stats = result.stages["pm"]
    assert (stats.errors, stats.retries, stats.dead_lettered) == (2, 1, 1)


def test_thread_pool_is_shut_down_after_a_failed_run() -> None:
    """The stage's threads end with the run, also when the run fails."""
    flow = rb.Flow("failing")
    flow.source(list(range(40)), name="src").parallel_map(
        _fails_on_three, workers=3, name="threads_of_a_failed_run"
    ).sink(Capture(), name="out")
    with pytest.raises(rb.RunFailedError):
        run_flow(flow)

    def ours() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if "threads_of_a_failed_run" in t.name]

    for _ in range(500):  # the pool was told to shut down; its threads exit as they see it
        if not ours():
            break
        time.sleep(0.01)
    assert ours() == []


# -- build time --------------------------------------------------------------------------


def _stream() -> rb.Stream:
    return rb.Flow("bad").source([1, 2], name="src")


def test_refuses_a_non_callable() -> None:
    """A value that is not callable is refused at once, naming the stage."""
    with pytest.raises(rb.NotCallableError, match="parallel_map"):
        _stream().parallel_map(42)  # type: ignore[arg-type]


def test_refuses_a_lambda_in_process_mode() -> None:
    """mode="process" needs a function importable by name; a lambda is refused with the fix."""
    with pytest.raises(rb.FlowDefinitionError, match="module level"):
        _stream().parallel_map(lambda x: x, mode="process")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"workers": 0}, "workers must be an int >= 1"),
        ({"workers": True}, "workers must be an int >= 1"),
        ({"mode": "fibers"}, "mode must be one of"),
        ({"mode": "async"}, "needs an async def"),
        ({"gap": "jump"}, "gap must be"),
        ({"max_buffered": 0}, "max_buffered must be"),
        ({"ordered": "yes"}, "ordered must be True or False"),
    ],
)
def test_refuses_bad_settings(settings: dict[str, Any], message: str) -> None:
    """Each wrong setting is a FlowDefinitionError saying what is expected."""
    with pytest.raises(rb.FlowDefinitionError, match=message):
        _stream().parallel_map(_square, **settings)


def test_refuses_an_async_function_outside_async_mode() -> None:
    """An async def function with mode="thread" is refused, pointing at mode="async"."""

    async def fn(x: int) -> int:
        return x

    with pytest.raises(rb.FlowDefinitionError, match="mode='async'"):
        _stream().parallel_map(fn)


def test_refuses_concurrency() -> None:
    """concurrency= does not apply: workers= is the setting."""
    with pytest.raises(TypeError, match="workers="):
        _stream().parallel_map(_square, concurrency=3)


def _printing(workers: int) -> rb.Flow:
    flow = rb.Flow("printing")
    flow.source([1], name="src").parallel_map(_square, workers=workers, mode="process").sink(
        print, name="out"
    )
    return flow


def test_serializes_and_versions() -> None:
    """The stage goes to JSON and back equal; its settings are part of the version."""
    flow = _printing(3)
    back = rb.Flow.from_json(flow.to_json())
    assert back.stage("square").fn == flow.stage("square").fn
    assert back.version == flow.version
    assert _printing(4).version != flow.version


def _sleeps(x: int) -> int:
    time.sleep(30)
    return x


def test_cancelled_run_terminates_its_worker_processes() -> None:
    """Cancelling a run (a second Ctrl-C) shuts the pool down, its busy workers too."""
    flow = _flow(_sleeps, list(range(4)), workers=2, mode="process")

    async def scenario() -> None:
        run = asyncio.ensure_future(flow.arun(progress=False))
        for _ in range(500):  # until the pool has started its workers
            if multiprocessing.active_children():
                break
            await asyncio.sleep(0.02)
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run

    asyncio.run(scenario())
    for _ in range(500):  # terminated workers are reaped as they exit
        if not multiprocessing.active_children():
            break
        time.sleep(0.01)
    assert multiprocessing.active_children() == []


def test_events_in_flight_in_the_state_are_called_again() -> None:
    """Events a checkpoint held in flight (state["taken"]) are called first on resume."""
    from tests.runtime.runs import execute, stream_run

    flow = _flow(_square, [5, 6], workers=2)
    run = stream_run(flow)
    run.states["pm"]["taken"] = {7: 3, 8: 4}
    assert asyncio.run(execute(run)) is None
    assert flow.stage("out").fn.items == [9, 16, 25, 36]
    assert run.states["pm"]["taken"] == {}
