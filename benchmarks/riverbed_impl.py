"""The workloads as riverbed flows on the local engine (``flow.run(batch_size=1000)``).

Each flow calls the shared user functions of ``benchmarks.workloads``. A run that does not
SUCCEED, or whose sink counters disagree with what the sink received, raises RuntimeError
with the run's summary.
"""

from __future__ import annotations

import functools

import riverbed as rb

from .workloads import (
    Counter,
    LastMeans,
    Produced,
    RunningMean,
    SlowSink,
    add_v2,
    endless_events,
    events,
    get_key,
    is_even,
    keep,
    on_even,
    on_odd,
    project,
)

BATCH_SIZE = 1000


def _run(flow: rb.Flow) -> rb.RunResult:
    # The engine alone: recording a run costs a few milliseconds per run (W2C measures
    # runs recorded in a store).
    result = flow.run(batch_size=BATCH_SIZE, progress=False, store=False)
    if not result.ok:
        raise RuntimeError(f"riverbed run did not succeed:\n{result.summary()}")
    return result


def _check_sink_counter(result: rb.RunResult, stage: str, delivered: int) -> None:
    """The sink stage's ``events_in`` must match what the sink function received."""
    stats = result.stages.get(stage)
    if stats is None:
        raise RuntimeError(f"RunResult has no stage {stage!r}; it has {list(result.stages)}")
    if stats.events_in != delivered:
        raise RuntimeError(
            f"RunResult.stages[{stage!r}].events_in = {stats.events_in}, but the sink "
            f"function received {delivered} events"
        )


def riverbed_w1(n: int) -> Counter:
    """W1: source, map(add_v2), filter(keep), map(project), sink_batch(count)."""
    counter = Counter()
    flow = rb.Flow("w1")
    flow.source(functools.partial(events, n), name="events").map(add_v2).filter(keep).map(
        project
    ).sink_batch(counter.add_batch, name="count")
    result = _run(flow)
    _check_sink_counter(result, "count", counter.count)
    return counter


def riverbed_w2(n: int) -> LastMeans:
    """W2: source, key_by(get_key), stateful(RunningMean, RunningMean.add), sink_batch."""
    last = LastMeans()
    flow = rb.Flow("w2")
    flow.source(functools.partial(events, n), name="events").key_by(get_key).stateful(
        RunningMean, RunningMean.add
    ).sink_batch(last.update_batch, name="last")
    _run(flow)
    return last


def riverbed_w4(n: int) -> Counter:
    """W4: source, branch(is_even), map on each side, merge, sink_batch(count)."""
    counter = Counter()
    flow = rb.Flow("w4")
    branches = flow.source(functools.partial(events, n), name="events").branch(is_even)
    evens = branches.trues.map(on_even)
    odds = branches.falses.map(on_odd)
    rb.merge(evens, odds).sink_batch(counter.add_batch, name="count")
    result = _run(flow)
    _check_sink_counter(result, "count", counter.count)
    return counter


def riverbed_w6(seconds: float) -> tuple[Produced, SlowSink]:
    """W6: an endless fast source (stopping itself after ``seconds``) into a sink that
    sleeps 1 ms per batch. Returns what the source produced and what the sink took."""
    produced = Produced()
    sink = SlowSink()
    flow = rb.Flow("w6")
    flow.source(functools.partial(endless_events, seconds, produced), name="endless").sink_batch(
        sink.write, name="slow"
    )
    _run(flow)
    return produced, sink


def version() -> str:
    """riverbed's version."""
    return str(rb.__version__)
