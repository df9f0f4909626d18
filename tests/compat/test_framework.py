"""``riverbed.compat.framework``: the seed's quickstarts run unchanged but for the import
line, and the behaviours its document states hold (routing, phases, utilities)."""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

import pytest

import riverbed as rb
from riverbed.compat.framework import (
    AbstractProcessor,
    Collector,
    Context,
    Event,
    Grouper,
    Pipeline,
    ReactiveBuilder,
    ReactiveEvent,
    ReservoirSampler,
    StreamGrouper,
    StreamSampler,
    caching,
)

CORE_QUICKSTART = """\
from riverbed.compat.framework import AbstractProcessor, Context, Event, Pipeline


class Greeter(AbstractProcessor):
    def process(self, context: Context, event: Event):
        match event:
            case Event(name="start", who=who):
                context.submit(Event(name="greet", who=who))
            case Event(name="greet", who=who):
                print(f"hello {who}")


pipeline = Pipeline([Greeter()], strict_interest_inference=True)
pipeline.submit(Event(name="start", who="world"))
pipeline.run()
"""

REACTIVE_QUICKSTART = """\
from riverbed.compat.framework import AbstractProcessor, Pipeline
from riverbed.compat.framework import ReactiveBuilder, ReactiveEvent


class Numbers(ReactiveBuilder):
    def __init__(self):
        super().__init__(provides="numbers", requires=[], persist=False)

    def build(self, context):
        yield from [1, 2, 3]


class Doubles(ReactiveBuilder):
    def __init__(self):
        super().__init__(provides="doubles", requires=["numbers"], persist=False)

    def build(self, context, x):
        yield x * 2


class Sink(AbstractProcessor):
    def process(self, context, event):
        match event:
            case ReactiveEvent(name="built", target="doubles", artifact=value):
                print(value)


pipeline = Pipeline([Numbers(), Doubles(), Sink()])
pipeline.submit(ReactiveEvent(name="resolve", target="doubles"))
pipeline.run()
"""


@pytest.mark.parametrize(
    ("script", "printed"),
    [(CORE_QUICKSTART, "hello world\n"), (REACTIVE_QUICKSTART, "2\n4\n6\n")],
    ids=["core", "reactive"],
)
def test_the_quickstarts_run_unchanged(
    script: str, printed: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The document's two quickstarts, their import lines changed, print what it says."""
    path = tmp_path / "quickstart.py"
    path.write_text(script)
    runpy.run_path(str(path), run_name="__main__")
    assert capsys.readouterr().out == printed


class Greeter(AbstractProcessor):
    def __init__(self) -> None:
        self.greeted: list[str] = []

    def process(self, context: Context, event: Event) -> None:
        match event:
            case Event(name="hello", who=who):
                self.greeted.append(who)
                context.submit(Event(name="reply", who=who))


class Logger(AbstractProcessor):
    """No match: its interests cannot be inferred."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def process(self, context: Context, event: Event) -> None:
        self.seen.append(event.name)


class Urgent(Event):
    """A subclass of Event: routed to processors that match Event(...)."""


def test_lenient_routing_sends_unwanted_events_to_processors_without_interests() -> None:
    """By default a processor without inferable interests gets what nobody else wants
    (and the phase and shutdown signals); ``submit`` counts the recipients."""
    greeter, logger = Greeter(), Logger()
    pipeline = Pipeline([greeter, logger])
    assert pipeline.submit(Event(name="hello", who="ann")) == 1
    assert pipeline.submit(Urgent(name="hello", who="bob")) == 1
    assert pipeline.submit(Event(name="other")) == 1
    result = pipeline.run()
    assert result.status is rb.RunStatus.SUCCEEDED
    assert greeter.greeted == ["ann", "bob"]
    assert "hello" not in logger.seen
    assert logger.seen == ["reply", "reply", "other", "__PHASE__", "__POISON__"]


def test_strict_routing_routes_only_inferred_interests() -> None:
    """strict_interest_inference=True: an event nobody matches reaches nobody, and a
    processor whose interests cannot be inferred is an error naming it."""
    pipeline = Pipeline([Greeter()], strict_interest_inference=True)
    assert pipeline.submit(Event(name="other")) == 0
    assert pipeline.submit(Event(name="hello", who="ann")) == 1
    with pytest.raises(rb.FlowDefinitionError, match=r"Logger\.process"):
        Pipeline([Greeter(), Logger()], strict_interest_inference=True)


class PhaseWatcher(AbstractProcessor):
    """Counts phases, submits one event in the first, and sees the shutdown."""

    def __init__(self) -> None:
        self.phases = 0
        self.poisoned = 0
        self.late: list[str] = []

    def process(self, context: Context, event: Event) -> None:
        match event:
            case Event(name="__PHASE__"):
                self.phases += 1
                if self.phases == 1:
                    context.submit(Event(name="late"))
            case Event(name="late"):
                self.late.append("late")
            case Event(name="__POISON__"):
                self.poisoned += 1


class Recorder(AbstractProcessor):
    """Records the artifacts built for its target."""

    def __init__(self, target: str, priority: int = 0, log: list[Any] | None = None) -> None:
        self.target, self.priority = target, priority
        self.log = log if log is not None else []

    def process(self, context: Context, event: Event) -> None:
        match event:
            case ReactiveEvent(name="built", target=target, artifact=artifact):
                if target == self.target:
                    self.log.append(artifact)


def test_phases_repeat_while_they_emit_then_shutdown() -> None:
    """After quiescence, ``__PHASE__`` goes to the processors; an event submitted in a
    phase is handled and another phase follows; ``__POISON__`` comes once, at the end."""
    watcher = PhaseWatcher()
    pipeline = Pipeline([watcher])
    pipeline.submit(Event(name="go"))
    pipeline.run()
    assert (watcher.phases, watcher.late, watcher.poisoned) == (2, ["late"], 1)


class Numbers(ReactiveBuilder):
    def __init__(self, provides: str = "numbers", requires: Any = ()) -> None:
        super().__init__(provides, requires)

    def build(self, context: Context) -> Any:
        yield from [1, 2, 3, 4, 5, 6]


def test_utilities_flush_on_the_phase() -> None:
    """Collector, Grouper, StreamGrouper, StreamSampler and ReservoirSampler take
    ``(provides, requires, ...)`` and run as riverbed's group, sample and reservoir."""
    recorders = {name: Recorder(name) for name in ["batch", "groups", "runs", "sampled", "sample"]}
    pipeline = Pipeline(
        [
            Numbers(),
            Collector("batch", ["numbers"]),
            Grouper("groups", ["numbers"], key=lambda n: n % 2),
            StreamGrouper("runs", ["numbers"], key=lambda n: n < 3),
            StreamSampler("sampled", ["numbers"], probability=0.5, seed=3),
            ReservoirSampler("sample", ["numbers"], size=2),
            *recorders.values(),
        ]
    )
    for target in recorders:
        pipeline.submit(ReactiveEvent(name="resolve", target=target))
    pipeline.run()
    assert recorders["batch"].log == [[1, 2, 3, 4, 5, 6]]
    assert sorted(recorders["groups"].log) == [(0, [2, 4, 6]), (1, [1, 3, 5])]
    assert recorders["runs"].log == [(True, [1, 2]), (False, [3, 4, 5, 6])]
    assert set(recorders["sampled"].log) < {1, 2, 3, 4, 5, 6}
    ((sample,),) = [recorders["sample"].log]
    assert len(sample) == 2
    assert set(sample) < {1, 2, 3, 4, 5, 6}


def test_priorities_order_ready_processors() -> None:
    """Of the processors ready for one event, the lower priority runs first."""
    log: list[Any] = []
    pipeline = Pipeline(
        [Numbers(), Recorder("numbers", priority=2, log=log), Recorder("numbers", 1, log)]
    )
    pipeline.submit(ReactiveEvent(name="resolve", target="numbers"))
    pipeline.run()
    assert log == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6]


class Echo(AbstractProcessor):
    calls = 0

    @caching
    def process(self, context: Context, event: Event) -> None:
        match event:
            case Event(name="ping", n=n):
                Echo.calls += 1
                context.submit(Event(name="pong", n=n))


def test_caching_replays_what_an_equal_event_emitted() -> None:
    """``@caching``: an equal event later is answered from the cache, without a call."""
    watcher = Logger()
    pipeline = Pipeline([Echo(), watcher])
    Echo.calls = 0
    for _ in range(3):
        pipeline.submit(Event(name="ping", n=1))
    pipeline.run()
    assert Echo.calls == 1
    assert watcher.seen.count("pong") == 3


def test_a_pipeline_runs_on_every_runner(on_runner: str) -> None:
    """A pipeline is a riverbed flow: on the local runner and on Ray alike, the processors'
    stage emits the replies and the collector's stage its one batch."""
    pipeline = Pipeline([Greeter(), Numbers(), Collector("batch", ["numbers"]), Recorder("x")])
    for who in ["ann", "bob", "cy"]:
        pipeline.submit(Event(name="hello", who=who))
    pipeline.submit(ReactiveEvent(name="resolve", target="batch"))
    result = pipeline.run()
    assert result.status is rb.RunStatus.SUCCEEDED
    assert result.stages["processors"].events_out == 3
    assert result.stages["batch"].events_out == 1


def test_a_builder_without_build_is_refused_when_made() -> None:
    """``build`` is abstract: a ReactiveBuilder subclass that forgot it cannot be made."""

    class Forgot(ReactiveBuilder):
        pass

    with pytest.raises(TypeError, match="build"):
        Forgot("numbers")
