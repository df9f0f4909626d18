"""The workloads as riverbed flows on the local engine (``flow.run(batch_size=1000)``).

Each flow calls the shared user functions of ``benchmarks.workloads``. A run that does not
SUCCEED, or whose sink counters disagree with what the sink received, raises RuntimeError
with the run's summary.
"""

from __future__ import annotations

import functools

import riverbed as rb

from .workloads import (
    Checksum,
    EvenOdd,
    LastMeans,
    RunningMean,
    add_v2,
    events,
    get_key,
    is_even,
    keep,
    on_even,
    on_odd,
    project,
    touch_async,
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


def riverbed_w1(n: int) -> Checksum:
    """W1: source, map(add_v2), filter(keep), map(project), sink_batch(checksum)."""
    checksum = Checksum()
    flow = rb.Flow("w1")
    flow.source(functools.partial(events, n), name="events").map(add_v2).filter(keep).map(
        project
    ).sink_batch(checksum.add_batch, name="checksum")
    result = _run(flow)
    _check_sink_counter(result, "checksum", checksum.count)
    return checksum


def riverbed_w1a(n: int) -> Checksum:
    """W1A: W1 with ``map(touch_async)``, a coroutine function, between map(add_v2) and
    filter(keep): the chain cannot be fused through it."""
    checksum = Checksum()
    flow = rb.Flow("w1a")
    flow.source(functools.partial(events, n), name="events").map(add_v2).map(touch_async).filter(
        keep
    ).map(project).sink_batch(checksum.add_batch, name="checksum")
    result = _run(flow)
    _check_sink_counter(result, "checksum", checksum.count)
    return checksum


def riverbed_w2(n: int) -> LastMeans:
    """W2: source, key_by(get_key), stateful(RunningMean, RunningMean.add), sink_batch."""
    last = LastMeans()
    flow = rb.Flow("w2")
    flow.source(functools.partial(events, n), name="events").key_by(get_key).stateful(
        RunningMean, RunningMean.add
    ).sink_batch(last.update_batch, name="last")
    _run(flow)
    return last


def riverbed_w4(n: int) -> EvenOdd:
    """W4: source, branch(is_even), map on each side, merge, sink_batch(count by tag)."""
    counter = EvenOdd()
    flow = rb.Flow("w4")
    branches = flow.source(functools.partial(events, n), name="events").branch(is_even)
    evens = branches.trues.map(on_even)
    odds = branches.falses.map(on_odd)
    rb.merge(evens, odds).sink_batch(counter.add_batch, name="count")
    result = _run(flow)
    _check_sink_counter(result, "count", counter.count)
    return counter


def version() -> str:
    """riverbed's version."""
    return str(rb.__version__)
