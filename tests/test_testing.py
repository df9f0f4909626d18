"""riverbed.testing: scripted sources, the controllable clock, capturing sinks, run_flow."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import riverbed as rb
from riverbed.testing import END, Capture, Crash, Pause, TestClock, TestSource, run_flow


def _batches(source: TestSource, **options: Any) -> tuple[list[list[Any]], rb.RunResult]:
    """Run ``source`` through an inspect stage into a batch sink; return the batches seen."""
    batches: list[list[Any]] = []
    flow = rb.Flow("script")
    flow.source(source, name="src").inspect(lambda x: None, name="look").sink_batch(
        lambda events: batches.append(list(events)), name="out"
    )
    options.setdefault("progress", False)
    return batches, flow.run(**options)


# -- TestSource --------------------------------------------------------------------------


def test_script_batches_arrive_exactly_as_given() -> None:
    """Each list of the script is one batch, whatever the run's batch_size."""
    batches, result = _batches(TestSource([[1, 2, 3], [4], [5, 6, 7, 8, 9]]), batch_size=2)
    assert batches == [[1, 2, 3], [4], [5, 6, 7, 8, 9]]
    assert result.ok
    assert result.stages["src"].events_out == 9


def test_empty_batch_in_a_script_means_nothing_yet() -> None:
    """An empty list is "nothing yet": the engine polls again on its clock."""
    clock = TestClock()
    batches, result = _batches(TestSource([[1], [], [2]]), clock=clock)
    assert batches == [[1], [2]]
    assert len(clock.sleeps) == 1
    assert result.positions == {"src": {"0": 3}}


def test_pause_sleeps_on_the_sources_clock() -> None:
    """Pause(s) sleeps s seconds of the source's clock (no real waiting with TestClock)."""
    clock = TestClock()
    source = TestSource([[1], Pause(30.0), [2], Pause(0.5), [3]], clock=clock)
    batches, _ = _batches(source)
    assert batches == [[1], [2], [3]]
    assert clock.sleeps == [30.0, 0.5]
    assert clock.now() == 30.5


def test_pause_waits_for_a_manual_clock() -> None:
    """With a manual TestClock, events after a Pause come only once time is advanced."""
    clock = TestClock(auto_advance=False)
    seen = Capture()
    flow = rb.Flow("manual")
    flow.source(TestSource([[1], Pause(10.0), [2]], clock=clock), name="src").sink(seen, name="out")

    async def main() -> rb.RunResult:
        run = asyncio.create_task(flow.arun(progress=False, store=False))
        for _ in range(100):
            await asyncio.sleep(0)
        assert seen.items == [1]
        assert not run.done()
        clock.advance(9.0)
        for _ in range(100):
            await asyncio.sleep(0)
        assert seen.items == [1]
        clock.advance(1.0)
        return await asyncio.wait_for(run, 5)

    result = asyncio.run(main())
    assert result.ok
    assert seen.items == [1, 2]


def test_crash_fails_the_run_at_that_point_with_the_given_error() -> None:
    """Crash(error) raises that error when the script reaches it; the run FAILS there."""
    source = TestSource([[1, 2], [3], Crash(KeyError("boom")), [4]])
    batches, result = _batches(source, raise_on_failure=False)
    assert result.status is rb.RunStatus.FAILED
    assert result.error is not None
    assert (result.error.stage, result.error.error_type) == ("src", "KeyError")
    assert "boom" in result.error.message
    assert 4 not in [x for batch in batches for x in batch]
    assert result.positions == {"src": {"0": 2}}


def test_crash_has_a_default_error() -> None:
    """A bare Crash() raises a RuntimeError naming the crash point."""
    source = TestSource([[1], Crash()])
    with pytest.raises(rb.RunFailedError) as caught:
        _batches(source)
    error = caught.value.result.error
    assert error is not None
    assert error.error_type == "RuntimeError"
    assert "crash point" in error.message


def test_end_ends_the_stream_and_later_steps_are_never_read() -> None:
    """END ends the stream there, even with steps (a Crash too) after it."""
    batches, result = _batches(TestSource([[1], END, [2], Crash()]))
    assert batches == [[1]]
    assert result.ok


def test_script_end_ends_the_stream() -> None:
    """The script's last step ends the stream as END would."""
    batches, result = _batches(TestSource([[1], [2]]))
    assert batches == [[1], [2]]
    assert result.ok


def test_positions_count_steps_and_resume_after_them() -> None:
    """The position is the number of script steps done; opening at a position goes on
    with the next step."""
    source = TestSource([[1], Pause(1.0), [2], [3]], clock=TestClock())
    _, result = _batches(source)
    assert result.positions == {"src": {"0": 4}}

    async def read_all(position: int) -> list[Any]:
        reader = source.open("0", position)
        read: list[Any] = []
        while (batch := await reader.read(100)) is not None:
            read.append(batch)
            assert reader.position() > position
        reader.close()
        return read

    assert asyncio.run(read_all(0)) == [[1], [2], [3]]
    assert asyncio.run(read_all(1)) == [[2], [3]]
    assert asyncio.run(read_all(3)) == [[3]]
    assert asyncio.run(read_all(4)) == []


def test_resuming_past_a_crash_point_goes_on() -> None:
    """A reader opened after a Crash step (a resumed run) reads on past it."""
    source = TestSource([[1], Crash(), [2]])
    _, result = _batches(source, raise_on_failure=False)
    assert result.status is rb.RunStatus.FAILED

    async def resume() -> list[Any] | None:
        return await source.open("0", 2).read(10)

    assert asyncio.run(resume()) == [2]


def test_test_source_can_be_run_twice() -> None:
    """A TestSource replays its whole script on every run."""
    source = TestSource([[1, 2], [3]])
    assert _batches(source)[0] == _batches(source)[0] == [[1, 2], [3]]


def test_test_source_rejects_unknown_steps() -> None:
    """A script step that is not a list, Pause, Crash or END is a TypeError."""
    with pytest.raises(TypeError, match="Pause, Crash or END"):
        TestSource([[1], (2, 3)])


# -- TestClock ---------------------------------------------------------------------------


def test_clock_auto_advances_on_sleep() -> None:
    """In auto mode a sleep moves time forward at once and is recorded."""
    clock = TestClock(start=100.0)

    async def main() -> None:
        await clock.sleep(2.5)
        await clock.sleep(0.5)

    asyncio.run(main())
    assert clock.now() == clock.monotonic() == 103.0
    assert clock.sleeps == [2.5, 0.5]


def test_manual_clock_wakes_sleepers_when_advanced_past_their_deadline() -> None:
    """In manual mode sleepers wake, in deadline order, only when advance() reaches them."""
    clock = TestClock(auto_advance=False)
    woke: list[str] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append(name)

    async def settle() -> None:
        for _ in range(5):
            await asyncio.sleep(0)

    async def main() -> None:
        tasks = [
            asyncio.create_task(sleeper("five", 5.0)),
            asyncio.create_task(sleeper("two", 2.0)),
        ]
        await settle()
        assert woke == []
        clock.advance(1.0)
        await settle()
        assert woke == []
        clock.advance(1.0)
        await settle()
        assert woke == ["two"]
        clock.advance(10.0)
        await settle()
        assert woke == ["two", "five"]
        await asyncio.gather(*tasks)

    asyncio.run(main())
    assert clock.now() == 12.0
    assert clock.sleeps == [5.0, 2.0]


def test_manual_clock_zero_sleep_returns_at_once() -> None:
    """A sleep of 0 (or less) never waits, even in manual mode."""
    clock = TestClock(auto_advance=False)

    async def main() -> None:
        await asyncio.wait_for(clock.sleep(0), 1)
        await asyncio.wait_for(clock.sleep(-1), 1)

    asyncio.run(main())
    assert clock.now() == 0.0


def test_clock_cannot_go_back() -> None:
    """advance() with a negative number is a ValueError."""
    with pytest.raises(ValueError, match="cannot go back"):
        TestClock().advance(-1)


def test_clock_is_a_riverbed_clock() -> None:
    """TestClock keeps the runners' Clock protocol."""
    from riverbed._runtime.clock import Clock

    assert isinstance(TestClock(), Clock)


# -- Capture -----------------------------------------------------------------------------


def test_capture_keeps_events_in_order_across_runs() -> None:
    """A Capture keeps everything it got; each run's outputs hold only that run's events."""
    seen = Capture()
    flow = rb.Flow("capture")
    flow.source([1, 2, 3], name="src").sink(seen, name="out")
    first = flow.run(progress=False, batch_size=2)
    second = flow.run(progress=False)
    assert first.outputs == {"out": [1, 2, 3]}
    assert second.outputs == {"out": [1, 2, 3]}
    assert seen.items == [1, 2, 3, 1, 2, 3]
    assert repr(seen) == "Capture(6 events)"


# -- run_flow ----------------------------------------------------------------------------


def _shout() -> rb.Flow:
    flow = rb.Flow("shout")
    flow.source(["placeholder"], name="words").map(str.upper, name="upper").sink(print, name="out")
    return flow


def test_run_flow_with_a_list_replaces_the_only_source() -> None:
    """run_flow(flow, list) feeds the list to the one source and captures every sink."""
    assert run_flow(_shout(), ["a", "b"]) == {"out": ["A", "B"]}


def test_run_flow_without_inputs_uses_the_flows_own_sources(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """run_flow(flow) keeps the sources, and captures sinks instead of calling them."""
    assert run_flow(_shout()) == {"out": ["PLACEHOLDER"]}
    assert capsys.readouterr().out == ""


def test_run_flow_does_not_change_the_flow() -> None:
    """The flow given to run_flow keeps its own sources and sinks."""
    flow = _shout()
    before = flow.stages
    run_flow(flow, ["x"])
    assert flow.stages == before


def _two_sources() -> rb.Flow:
    flow = rb.Flow("two")
    left = flow.source([1], name="left")
    right = flow.source([2], name="right")
    left.map(lambda x: x * 10, name="tens").sink(print, name="tens_out")
    rb.merge(left, right, name="both").sink(print, name="all_out")
    return flow


def test_run_flow_with_a_mapping_replaces_named_sources() -> None:
    """A mapping replaces the sources it names (lists or TestSources); others keep theirs."""
    out = run_flow(_two_sources(), {"left": [5, 6], "right": TestSource([[7], [8]])})
    assert out["tens_out"] == [50, 60]
    assert sorted(out["all_out"]) == [5, 6, 7, 8]
    partial = run_flow(_two_sources(), {"right": [9]})
    assert partial["tens_out"] == [10]
    assert sorted(partial["all_out"]) == [1, 9]


def test_run_flow_unknown_source_name_is_a_lookup_error() -> None:
    """A mapping naming no source of the flow is a LookupError listing the sources."""
    with pytest.raises(LookupError, match=r"no source\(s\) \['nope'\].*'left', 'right'"):
        run_flow(_two_sources(), {"nope": [1]})


def test_run_flow_list_with_several_sources_is_a_value_error() -> None:
    """A plain list is ambiguous when the flow has several sources."""
    with pytest.raises(ValueError, match="has 2 sources"):
        run_flow(_two_sources(), [1, 2])


def test_run_flow_raises_on_failure_and_passes_options() -> None:
    """run_flow raises RunFailedError for a failing flow, and passes run options on."""
    flow = rb.Flow("fails")
    flow.source([1], name="src").map(lambda x: 1 / x, name="inv").sink(print, name="out")
    with pytest.raises(rb.RunFailedError):
        run_flow(flow, [0])
    clock = TestClock()
    flow2 = rb.Flow("retries")
    calls: list[int] = []

    def flaky(x: int) -> int:
        calls.append(x)
        if len(calls) < 3:
            raise ConnectionError("again")
        return x

    flow2.source([1], name="src").map(
        flaky, name="m", retry=rb.Retry(attempts=3, backoff=1.0, jitter=False)
    ).sink(print, name="out")
    assert run_flow(flow2, [4], clock=clock) == {"out": [4]}
    assert clock.sleeps == [1.0, 2.0]
