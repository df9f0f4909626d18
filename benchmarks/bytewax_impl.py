"""The workloads on Bytewax 0.21 (``bytewax.testing.run_main``, one worker, in this thread).

Events come from ``TestingSource(events(n), batch_size=1000)`` and go to a sink that gets
whole batches, like riverbed's ``sink_batch``. Bytewax needs string keys, so W2's key
function is wrapped in ``str``; everything else calls the shared user functions as they are.
If Bytewax cannot be imported, ``UNAVAILABLE`` says why and the harness reports it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .workloads import (
    Checksum,
    EvenOdd,
    Event,
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
    touch,
)

BATCH_SIZE = 1000

UNAVAILABLE: str | None = None
"""Why Bytewax cannot run here (None when it can)."""

try:
    import bytewax.operators as op
    from bytewax.dataflow import Dataflow
    from bytewax.outputs import DynamicSink, StatelessSinkPartition
    from bytewax.testing import TestingSource, run_main
except Exception as error:  # any failure to import is reported, never hidden
    UNAVAILABLE = f"cannot import bytewax: {type(error).__name__}: {error}"


def version() -> str | None:
    """The installed Bytewax version, or None."""
    from importlib import metadata

    try:
        return metadata.version("bytewax")
    except metadata.PackageNotFoundError:
        return None


if UNAVAILABLE is None:

    class _BatchPartition(StatelessSinkPartition[Any]):
        def __init__(self, fn: Callable[[list[Any]], None]) -> None:
            self._fn = fn

        def write_batch(self, items: list[Any]) -> None:
            self._fn(items)

    class BatchSink(DynamicSink[Any]):
        """A Bytewax sink that hands each batch to ``fn``, like riverbed's ``sink_batch``."""

        def __init__(self, fn: Callable[[list[Any]], None]) -> None:
            self._fn = fn

        def build(self, step_id: str, worker_index: int, worker_count: int) -> _BatchPartition:
            return _BatchPartition(self._fn)


def _input(flow: Any, n: int) -> Any:
    return op.input("source", flow, TestingSource(events(n), batch_size=BATCH_SIZE))


def bytewax_w1(n: int) -> Checksum:
    """W1 on Bytewax: input, map, filter, map, batch sink."""
    checksum = Checksum()
    flow = Dataflow("w1")
    stream = _input(flow, n)
    stream = op.map("add_v2", stream, add_v2)
    stream = op.filter("keep", stream, keep)
    stream = op.map("project", stream, project)
    op.output("checksum", stream, BatchSink(checksum.add_batch))
    run_main(flow)
    return checksum


def bytewax_w1a(n: int) -> Checksum:
    """W1A on Bytewax: W1 with a map of ``touch`` between the first map and the filter.
    Bytewax has no async operators: its map runs the same work synchronously, as the
    plain loop does."""
    checksum = Checksum()
    flow = Dataflow("w1a")
    stream = _input(flow, n)
    stream = op.map("add_v2", stream, add_v2)
    stream = op.map("touch", stream, touch)
    stream = op.filter("keep", stream, keep)
    stream = op.map("project", stream, project)
    op.output("checksum", stream, BatchSink(checksum.add_batch))
    run_main(flow)
    return checksum


def _str_key(event: Event) -> str:
    return str(get_key(event))


def _running_mean(state: RunningMean | None, event: Event) -> tuple[RunningMean, float]:
    if state is None:
        state = RunningMean()
    return state, RunningMean.add(state, event)


def bytewax_w2(n: int) -> LastMeans:
    """W2 on Bytewax: key_on, stateful_map with a ``RunningMean`` per key, batch sink."""
    last = LastMeans()
    flow = Dataflow("w2")
    keyed = op.key_on("key_by", _input(flow, n), _str_key)
    means = op.stateful_map("running_mean", keyed, _running_mean)
    op.output("last", means, BatchSink(last.update_batch))
    run_main(flow)
    return last


def _fixed_now() -> Any:
    """A fixed "system time" for the event clocks of W3 (see ``benchmarks.w3``)."""
    import datetime

    return datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)


def bytewax_w4(n: int) -> EvenOdd:
    """W4 on Bytewax: branch, a map on each side, merge, batch sink."""
    counter = EvenOdd()
    flow = Dataflow("w4")
    branches = op.branch("branch", _input(flow, n), is_even)
    evens = op.map("on_even", branches.trues, on_even)
    odds = op.map("on_odd", branches.falses, on_odd)
    merged = op.merge("merge", evens, odds)
    op.output("count", merged, BatchSink(counter.add_batch))
    run_main(flow)
    return counter
