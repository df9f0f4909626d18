"""Tools to test flows: run a flow on lists, scripted sources, capturing sinks, a clock.

>>> import riverbed as rb
>>> from riverbed.testing import run_flow
>>> flow = rb.Flow("shout")
>>> flow.source(["placeholder"], name="words").map(str.upper).sink(print, name="out")
>>> run_flow(flow, ["a", "b"])
{'out': ['A', 'B']}

Riverbed's own tests use exactly these.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import pickle
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from riverbed._model.flow import Flow
from riverbed._model.process import ProcessorSpec
from riverbed._model.sinks import Capture
from riverbed._model.sources import IterableSource, PartitionReader
from riverbed._model.stages import SinkMode, SinkStage, StageKind
from riverbed._model.streams import Stream
from riverbed._runtime.clock import Clock, SystemClock

__all__ = ["END", "Capture", "Crash", "Pause", "TestClock", "TestSource", "drive", "run_flow"]


class TestClock:
    """A clock that moves only when told: ``advance(seconds)``, or by itself on every
    ``sleep`` when ``auto_advance`` (the default), so retries' backoff takes no real time.

    ``sleeps`` records every sleep asked of it, e.g. to check a backoff schedule.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, start: float = 0.0, *, auto_advance: bool = True) -> None:
        self._time = start
        self.auto_advance = auto_advance
        self.sleeps: list[float] = []
        self._waiters: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> float:
        """The clock's time, in seconds."""
        return self._time

    def monotonic(self) -> float:
        """The same as ``now``: this clock never goes back."""
        return self._time

    async def sleep(self, seconds: float) -> None:
        """Advance (auto mode) or wait until ``advance`` has moved time past the deadline."""
        self.sleeps.append(seconds)
        if self.auto_advance:
            self._time += max(0.0, seconds)
            await asyncio.sleep(0)
            return
        deadline = self._time + seconds
        if deadline <= self._time:
            await asyncio.sleep(0)
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((deadline, waiter))
        await waiter

    def advance(self, seconds: float) -> None:
        """Move time forward and wake the sleepers whose deadline has come."""
        if seconds < 0:
            raise ValueError("a clock cannot go back: advance() takes seconds >= 0")
        self._time += seconds
        due = [(d, w) for d, w in self._waiters if d <= self._time]
        self._waiters = [(d, w) for d, w in self._waiters if d > self._time]
        for _, waiter in due:
            if not waiter.done():
                waiter.set_result(None)


@dataclass(frozen=True)
class Pause:
    """A step of a ``TestSource`` script: wait ``seconds`` (of the source's clock)."""

    seconds: float


@dataclass(frozen=True)
class Crash:
    """A step of a ``TestSource`` script: raise ``error`` there (a crash point)."""

    error: BaseException = dataclasses.field(
        default_factory=lambda: RuntimeError("TestSource crash point")
    )


class _End:
    def __repr__(self) -> str:
        return "END"


END: Any = _End()
"""A step of a ``TestSource`` script: end of stream here; later steps are never read."""


class TestSource:
    """A source that plays a script: each list is one batch, exactly as given; ``Pause``
    waits, ``Crash`` raises, ``END`` ends the stream (as does the script's end).

    >>> TestSource([[1, 2], Pause(0.5), [3], END])  # doctest: +ELLIPSIS
    TestSource(...)

    Its position is the number of script steps done, so a run resumed at a position goes
    on with the next step.
    """

    __test__ = False

    def __init__(self, script: Sequence[Any], *, clock: Clock | None = None) -> None:
        for step in script:
            if not isinstance(step, list | Pause | Crash | _End):
                raise TypeError(
                    f"TestSource script steps are lists (batches), Pause, Crash or END; "
                    f"got {type(step).__name__} {step!r:.60}"
                )
        self.script = list(script)
        self.clock = clock or SystemClock()

    def partitions(self) -> list[str]:
        """One partition."""
        return ["0"]

    def open(self, partition: str, position: Any | None) -> PartitionReader:
        """A reader starting after ``position`` steps."""
        return _ScriptReader(self, int(position or 0))

    def __repr__(self) -> str:
        return f"TestSource({len(self.script)} steps)"


class _ScriptReader:
    def __init__(self, source: TestSource, start: int) -> None:
        self._source = source
        self._step = start

    async def read(self, max_events: int) -> list[Any] | None:
        script = self._source.script
        while self._step < len(script):
            step = script[self._step]
            self._step += 1
            if isinstance(step, list):
                return list(step)
            if isinstance(step, Pause):
                await self._source.clock.sleep(step.seconds)
            elif isinstance(step, Crash):
                raise step.error
            else:
                self._step = len(script)
        return None

    def position(self) -> int:
        return self._step

    def close(self) -> None:
        pass


def run_flow(
    flow: Flow,
    inputs: Iterable[Any] | Mapping[str, Iterable[Any]] | None = None,
    **options: Any,
) -> dict[str, list[Any]]:
    """Run ``flow`` with every sink replaced by a ``Capture``; return each sink's events.

    ``inputs`` replaces sources: a list for a flow with one source, or a mapping from
    source name to events (or to a ``TestSource``). Sources not named keep their own
    events. The flow itself is not changed. Options are those of ``Flow.run``; progress
    is off. A failing run raises ``RunFailedError``.
    """
    sources = [stage for stage in flow.stages if stage.kind is StageKind.SOURCE]
    if inputs is None:
        replacements: Mapping[str, Any] = {}
    elif isinstance(inputs, Mapping):
        unknown = set(inputs) - {s.name for s in sources}
        if unknown:
            raise LookupError(
                f"run_flow: flow {flow.name!r} has no source(s) {sorted(unknown)}; its "
                f"sources are {[s.name for s in sources]}"
            )
        replacements = inputs
    else:
        if len(sources) != 1:
            raise ValueError(
                f"run_flow: flow {flow.name!r} has {len(sources)} sources; pass inputs as "
                f"a mapping from source name to events: {[s.name for s in sources]}"
            )
        replacements = {sources[0].name: inputs}
    copy = Flow(flow.name, on_error=flow.on_error, retry=flow.retry)
    for stage in flow.stages:
        if stage.name in replacements:
            given = replacements[stage.name]
            new_source = given if isinstance(given, TestSource) else IterableSource(list(given))
            stage = dataclasses.replace(stage, fn=new_source)
        elif isinstance(stage, SinkStage):
            stage = dataclasses.replace(stage, fn=Capture(), sink_mode=SinkMode.OBJECT)
        copy.add_stage(stage)
    options.setdefault("progress", False)
    options.setdefault("store", False)  # a test run is not recorded unless asked
    result = copy.run(**options)
    return {name: list(events) for name, events in result.outputs.items()}


def drive(
    spec: ProcessorSpec | Stream,
    steps: Iterable[Any],
    *,
    start: float = 0.0,
    checkpoint_at: int | None = None,
    finish: bool = True,
) -> list[Any]:
    """Run one processor by hand, without a flow, and return everything it emitted.

    ``spec`` is a ``ProcessorSpec``, or the stream a processor stage returned (e.g.
    ``stream.window(...)``). ``steps`` are events (``(key, value)`` pairs for keyed
    processors), each processed at the current processing time, and ``Pause(seconds)``
    steps, which move that time on, calling ``tick`` every ``spec.tick`` seconds on the
    way as the engine does. ``finish()`` runs at the end unless ``finish=False``.

    ``checkpoint_at=i`` pickles the state after the first ``i`` steps, throws the
    processor away and goes on with a new one made over the unpickled copy: what a
    resumed run does. Comparing with an uninterrupted ``drive`` proves the processor
    checkpointable.

    >>> import riverbed as rb
    >>> from riverbed.testing import Pause, drive
    >>> flow = rb.Flow("demo")
    >>> sizes = flow.source([]).collect(max_size=2)
    >>> drive(sizes, [1, 2, 3])
    [[1, 2], [3]]
    """
    if isinstance(spec, Stream):
        spec = spec.flow.stage(spec.port.stage).fn
    if not isinstance(spec, ProcessorSpec):
        raise TypeError(f"drive() takes a ProcessorSpec or a processor's stream, got {spec!r:.60}")
    state: dict[str, Any] = {}
    processor = spec.create(state)
    every = spec.tick
    now = start
    next_tick = start + every if every is not None else math.inf
    emitted: list[Any] = []
    index = -1
    for index, step in enumerate(steps):
        if checkpoint_at is not None and index == checkpoint_at:
            state = pickle.loads(pickle.dumps(state))
            processor = spec.create(state)
        if isinstance(step, Pause):
            until = now + step.seconds
            while every is not None and next_tick <= until:
                now = next_tick
                emitted.extend(processor.tick(now) or ())
                next_tick += every
            now = until
            continue
        emitted.extend(processor.process(step, now) or ())
    if checkpoint_at is not None and checkpoint_at == index + 1:
        processor = spec.create(pickle.loads(pickle.dumps(state)))
    if finish:
        emitted.extend(processor.finish() or ())
    return emitted
