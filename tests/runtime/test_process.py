"""PROCESS stages on the local engine: processors called per event, on ticks, at the end,
under the stage's failure policy, with their state in the run's dict."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pytest

import riverbed as rb
from riverbed._model.process import Processor, ProcessorSpec
from riverbed.testing import Capture, Pause, TestClock, TestSource, run_flow
from tests import runners

pytestmark = pytest.mark.usefixtures("on_runner")


class _Counter:
    def __init__(self, state: dict[str, Any], fail_on: Any) -> None:
        self.counts: dict[Any, int] = state.setdefault("counts", {})
        self.fail_on = fail_on

    def process(self, event: Any, now: float) -> Iterable[Any] | None:
        key, value = event
        if value == self.fail_on:
            raise ValueError(f"bad value {value}")
        self.counts[key] = self.counts.get(key, 0) + 1
        return None

    def tick(self, now: float) -> Iterable[Any] | None:
        return [("tick", now)]

    def finish(self) -> Iterable[Any] | None:
        return sorted(self.counts.items())


@dataclass(frozen=True)
class CountAtEnd(ProcessorSpec):
    """Counts events per key; emits the counts when the stream ends."""

    fail_on: Any = None
    every: float | None = None
    operator = "count_at_end"

    @property
    def tick(self) -> float | None:
        return self.every

    def create(self, state: dict[str, Any]) -> Processor:
        return _Counter(state, self.fail_on)


def _flow(spec: CountAtEnd, **policy: Any) -> rb.Flow:
    flow = rb.Flow("counting")
    keyed = flow.source(["a", "b", "a", "c", "a"], name="letters").key_by(str)
    keyed.process(spec, **policy).sink(print, name="out")
    return flow


def test_processor_emits_at_end_of_stream() -> None:
    """A processor sees every event and emits its totals when the inputs end."""
    assert run_flow(_flow(CountAtEnd())) == {"out": [("a", 3), ("b", 1), ("c", 1)]}


def test_processor_error_follows_the_stage_policy() -> None:
    """A raising ``process`` is the stage's error on that event: SKIP drops just it."""
    flow = _flow(CountAtEnd(fail_on="b"), on_error=rb.OnError.SKIP)
    assert run_flow(flow) == {"out": [("a", 3), ("c", 1)]}


def test_processor_error_stops_by_default() -> None:
    """With the default policy, a raising processor fails the run, naming the stage."""
    with pytest.raises(rb.RunFailedError, match="count_at_end"):
        run_flow(_flow(CountAtEnd(fail_on="c")))


def test_processor_counters() -> None:
    """The stage counts what came in and what went out, and its errors."""
    flow = _flow(CountAtEnd(fail_on="b"), on_error=rb.OnError.SKIP)
    result = flow.run(progress=False)
    stats = result.stages["count_at_end"]
    assert (stats.events_in, stats.events_out, stats.errors, stats.skipped) == (5, 2, 1, 1)


def test_processor_on_unkeyed_stream_is_refused() -> None:
    """A keyed processor after an unkeyed stream is a build-time error."""
    flow = rb.Flow("bad")
    with pytest.raises(rb.FlowDefinitionError, match="key_by"):
        flow.source([1]).process(CountAtEnd())


def test_process_takes_only_specs() -> None:
    """``process`` names what it got when it is not a ProcessorSpec."""
    flow = rb.Flow("bad")
    with pytest.raises(rb.FlowDefinitionError, match="ProcessorSpec"):
        flow.source([1]).key_by(str).process(len)


@runners.test_clock
def test_processor_gets_ticks_from_the_run_clock() -> None:
    """A processor with a tick interval is ticked by the run's clock while events wait."""
    clock = TestClock(auto_advance=False)
    out = Capture()
    flow = rb.Flow("ticking")
    source = TestSource([["a"], Pause(10.0), ["b"]], clock=clock)
    flow.source(source, name="letters").key_by(str).process(CountAtEnd(every=1.0)).sink(
        out, name="out"
    )

    async def scenario() -> rb.RunResult:
        run = asyncio.ensure_future(flow.arun(clock=clock, progress=False))
        for _ in range(30):
            await asyncio.sleep(0.01)
            clock.advance(0.5)
        return await run

    result = asyncio.run(scenario())
    assert result.ok
    ticks = [event for event in out.items if event[0] == "tick"]
    assert len(ticks) >= 3
    assert [now for _, now in ticks] == sorted(now for _, now in ticks)
    assert out.items[-2:] == [("a", 1), ("b", 1)]


def test_processor_flow_serializes_and_versions() -> None:
    """A processor's spec goes to JSON by reference and comes back equal."""
    flow = _flow(CountAtEnd(fail_on=3))
    back = rb.Flow.from_json(flow.to_json())
    assert back.stage("count_at_end").fn == CountAtEnd(fail_on=3)
    assert back.version == flow.version
    assert _flow(CountAtEnd(fail_on=4)).version != flow.version


def test_processor_without_timers_is_fused_with_its_neighbours() -> None:
    """A processor with no tick runs inside the fused loop of the stages around it; one
    with a tick runs alone (its channel carries the ticks)."""
    from riverbed._model.plan import make_plan

    fused = _flow(CountAtEnd())
    plan = make_plan(fused.name, fused.stages)
    assert [[s.name for s in chain.stages] for chain in plan.chains] == [
        ["str", "count_at_end", "out"]
    ]
    ticking = _flow(CountAtEnd(every=1.0))
    plan = make_plan(ticking.name, ticking.stages)
    assert [[s.name for s in chain.stages] for chain in plan.chains] == [
        ["str"],
        ["count_at_end"],
        ["out"],
    ]
