"""W3, event-time windows per key, in three variants: riverbed, Bytewax, their checks.

- W3: ``rb.Tumbling(1.0)``, ``rb.Count()``, event time ``event_seconds`` (``t / 1000``);
- W3-SLIDING: ``rb.Sliding(10.0, every=1.0)``, ``rb.Fold(float, add_value)`` (a sum),
  ``event_seconds``;
- W3-SESSION: ``rb.Session(gap=2.0)``, ``Mean`` (a user class), ``burst_seconds`` (the
  same times, with a pause of 5 s after every 10 s).

With ``key = i % 1000`` and ``t = i`` ms, a key has one event a second: each tumbling
window holds one event per key, each sliding window ten, each session the ten events of
a burst. Every implementation (riverbed, the plain loop and naive asyncio of
``baselines``, Bytewax) hands its results to a ``workloads.WindowResults`` sink as
``(key, ((start, end), value))``, which counts them and sums their hashes; the check
compares both with what ``expected`` computes from the definitions (each key's events
grouped by window directly, no watermark, no heap), so a result that is missing, doubled
or wrong in its key, window or value fails the run.

The user functions (``event_seconds``, ``burst_seconds``, ``add_value``, ``Mean``...) are
in ``workloads`` and the plain loops in ``baselines``, beside the other workloads'.
"""

from __future__ import annotations

import datetime
import functools
import operator
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import riverbed as rb

from . import baselines, bytewax_impl
from .riverbed_impl import BATCH_SIZE
from .workloads import (
    KEYS,
    MODULUS,
    SESSION_GAP,
    SLIDING_SECONDS,
    WINDOW_SECONDS,
    Mean,
    WindowResults,
    add_value,
    burst_datetime,
    burst_milliseconds,
    burst_seconds,
    event_datetime,
    event_seconds,
    events,
    get_key,
)

# -- what every implementation must give ---------------------------------------------------


@functools.lru_cache(maxsize=8)
def expected(variant: str, n: int) -> tuple[int, int]:
    """``(results, checksum)`` of ``variant`` over ``events(n)``, from the definitions."""
    windows: dict[tuple[int, tuple[float, float]], list[float]] = defaultdict(list)
    if variant == "session":
        return _expected_sessions(n)
    for i in range(n):
        second = float(i // 1000)  # the start of the 1 s window of t = i ms
        key, value = i % KEYS, float(i % MODULUS)
        if variant == "tumbling":
            windows[(key, (second, second + WINDOW_SECONDS))].append(value)
            continue
        for back in range(int(SLIDING_SECONDS / WINDOW_SECONDS)):  # the windows holding t
            start = second - back * WINDOW_SECONDS
            windows[(key, (start, start + SLIDING_SECONDS))].append(value)
    aggregate: Callable[[list[float]], Any] = len if variant == "tumbling" else _sum
    return _checksum(
        (key, (window, aggregate(values))) for (key, window), values in windows.items()
    )


def _sum(values: list[float]) -> float:
    total = 0.0  # in arrival order, as a fold adds them
    for value in values:
        total += value
    return total


def _expected_sessions(n: int) -> tuple[int, int]:
    """Each key's events split where two are ``SESSION_GAP`` or more apart."""
    by_key: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for i in range(n):
        by_key[i % KEYS].append((burst_milliseconds({"t": i}), float(i % MODULUS)))
    results = []
    gap_ms = SESSION_GAP * 1000
    for key, timed in by_key.items():
        session = [timed[0]]
        for entry in [*timed[1:], None]:
            if entry is not None and entry[0] - session[-1][0] < gap_ms:
                session.append(entry)
                continue
            window = (session[0][0] / 1000, session[-1][0] / 1000 + SESSION_GAP)
            results.append((key, (window, _sum([v for _, v in session]) / len(session))))
            session = [entry] if entry is not None else []
    return _checksum(results)


def _checksum(results: Any) -> tuple[int, int]:
    sink = WindowResults()
    sink.add_batch(list(results))
    return sink.results, sink.checksum


def _check(variant: str) -> Callable[[int, Any], str | None]:
    def check(n: int, sink: Any) -> str | None:
        if not isinstance(sink, WindowResults):
            return f"W3 sink is {sink!r}, expected WindowResults"
        results, checksum = expected(variant, n)
        if (sink.results, sink.checksum) != (results, checksum):
            return (
                f"{sink.results} window results with checksum {sink.checksum:#x}; expected "
                f"{results} with checksum {checksum:#x}"
            )
        return None

    return check


# -- riverbed -------------------------------------------------------------------------------


def _riverbed(n: int, name: str, window: Any, aggregate: Any, getter: Any) -> WindowResults:
    results = WindowResults()
    flow = rb.Flow(name)
    flow.source(functools.partial(events, n), name="events").key_by(get_key).window(
        window, aggregate, event_time=getter
    ).sink_batch(results.add_batch, name="results")
    # The engine alone, as the other workloads: recording a run costs milliseconds.
    run = flow.run(batch_size=BATCH_SIZE, progress=False, store=False)
    if not run.ok:
        raise RuntimeError(f"riverbed run did not succeed:\n{run.summary()}")
    if run.stages["results"].events_in != results.results:
        raise RuntimeError("the sink stage's events_in differs from what the sink received")
    return results


def riverbed_w3(n: int) -> WindowResults:
    """W3: key_by(get_key), window(Tumbling(1 s), Count(), event_time=t in s), sink_batch."""
    return _riverbed(n, "w3", rb.Tumbling(WINDOW_SECONDS), rb.Count(), event_seconds)


def riverbed_w3_sliding(n: int) -> WindowResults:
    """W3-SLIDING: window(Sliding(10 s, every=1 s), Fold(float, add_value))."""
    window = rb.Sliding(SLIDING_SECONDS, every=WINDOW_SECONDS)
    return _riverbed(n, "w3-sliding", window, rb.Fold(float, add_value), event_seconds)


def riverbed_w3_session(n: int) -> WindowResults:
    """W3-SESSION: window(Session(gap=2 s), Mean, event_time=burst_seconds)."""
    return _riverbed(n, "w3-session", rb.Session(SESSION_GAP), Mean, burst_seconds)


# -- Bytewax --------------------------------------------------------------------------------

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_MS = datetime.timedelta(milliseconds=1)


def _no_system_time(_timestamp: datetime.datetime) -> None:
    """``EventClock.to_system_utc``: these event times are not system times, so there is
    no system time to wake up at to close a window; new items and the end close them."""


def _bytewax_clock(getter: Callable[[Any], datetime.datetime]) -> Any:
    """An ``EventClock`` on ``getter``, no wait for late events (riverbed's max_delay=0).

    ``now_getter`` is fixed: Bytewax otherwise moves the watermark on with system time
    between events, which on a loaded machine runs ahead of these synthetic event times
    (1 ms apart) and drops events as late. Fixed, the watermark is the greatest event time
    seen, as riverbed's. With a sense of time of its own, the clock gets the matching
    ``to_system_utc``, as the ``EventClock`` docs ask: the default passes the window close
    times through as if they were system times."""
    from bytewax.operators import windowing

    return windowing.EventClock(
        ts_getter=getter,
        wait_for_system_duration=datetime.timedelta(0),
        now_getter=bytewax_impl._fixed_now,
        to_system_utc=_no_system_time,
    )


def _bytewax_windows(size: float, every: float) -> Any:
    from bytewax.operators import windowing

    return windowing.SlidingWindower(
        length=datetime.timedelta(seconds=size),
        offset=datetime.timedelta(seconds=every),
        align_to=_EPOCH,
    )


def _by_window_id(results: WindowResults, size: float) -> Callable[[list[Any]], None]:
    """A sink of Bytewax's ``(str key, (window id, value))`` for windows aligned to the
    epoch, one starting every second: id ``i`` is ``[i, i + size)``."""

    def write(batch: list[Any]) -> None:
        results.add_batch(
            [(int(key), ((float(i), float(i) + size), value)) for key, (i, value) in batch]
        )

    return write


def bytewax_w3(n: int) -> WindowResults:
    """W3 on Bytewax: ``count_window``, a ``TumblingWindower`` of 1 s aligned to the
    epoch; the ``down`` stream into a batch sink."""
    from bytewax.dataflow import Dataflow
    from bytewax.operators import windowing

    results = WindowResults()
    flow = Dataflow("w3")
    clock = _bytewax_clock(event_datetime)
    windower = windowing.TumblingWindower(
        length=datetime.timedelta(seconds=WINDOW_SECONDS), align_to=_EPOCH
    )
    up = bytewax_impl._input(flow, n)
    windows = windowing.count_window("count", up, clock, windower, bytewax_impl._str_key)
    sink = bytewax_impl.BatchSink(_by_window_id(results, WINDOW_SECONDS))
    bytewax_impl.op.output("results", windows.down, sink)
    bytewax_impl.run_main(flow)
    return results


def bytewax_w3_sliding(n: int) -> WindowResults:
    """W3-SLIDING on Bytewax: ``fold_window`` (``float``, ``add_value``, sums merged by
    ``+``) over a ``SlidingWindower`` of 10 s every 1 s aligned to the epoch."""
    from bytewax.dataflow import Dataflow
    from bytewax.operators import windowing

    results = WindowResults()
    flow = Dataflow("w3_sliding")
    keyed = bytewax_impl.op.key_on("key", bytewax_impl._input(flow, n), bytewax_impl._str_key)
    windows = windowing.fold_window(
        "sum",
        keyed,
        _bytewax_clock(event_datetime),
        _bytewax_windows(SLIDING_SECONDS, WINDOW_SECONDS),
        float,
        add_value,
        operator.add,
    )
    sink = bytewax_impl.BatchSink(_by_window_id(results, SLIDING_SECONDS))
    bytewax_impl.op.output("results", windows.down, sink)
    bytewax_impl.run_main(flow)
    return results


def _mean_add(mean: Mean, event: Any) -> Mean:
    mean.add(event)
    return mean


def _mean_merge(mean: Mean, other: Mean) -> Mean:
    mean.total += other.total
    mean.count += other.count
    return mean


def bytewax_w3_session(n: int) -> WindowResults:
    """W3-SESSION on Bytewax: ``fold_window`` of ``Mean``s over a ``SessionWindower`` of
    gap 2 s; a session's window (``meta``: first and last event time) and its mean
    (``down``) come in two streams, joined by key and window id when the run ends."""
    from bytewax.dataflow import Dataflow
    from bytewax.operators import windowing

    flow = Dataflow("w3_session")
    keyed = bytewax_impl.op.key_on("key", bytewax_impl._input(flow, n), bytewax_impl._str_key)
    gap = datetime.timedelta(seconds=SESSION_GAP)
    clock = _bytewax_clock(burst_datetime)
    windower = windowing.SessionWindower(gap=gap)
    windows = windowing.fold_window("mean", keyed, clock, windower, Mean, _mean_add, _mean_merge)
    means: dict[tuple[str, int], float] = {}
    spans: dict[tuple[str, int], Any] = {}

    def keep_means(batch: list[Any]) -> None:
        means.update(((key, i), mean.result()) for key, (i, mean) in batch)

    def keep_spans(batch: list[Any]) -> None:
        spans.update(((key, i), meta) for key, (i, meta) in batch)

    bytewax_impl.op.output("means", windows.down, bytewax_impl.BatchSink(keep_means))
    bytewax_impl.op.output("spans", windows.meta, bytewax_impl.BatchSink(keep_spans))
    bytewax_impl.run_main(flow)
    results = WindowResults()
    batch = []
    for (key, i), mean in means.items():
        meta = spans[(key, i)]
        # The close time is the last event's (inclusive); riverbed's window ends a gap on.
        start = (meta.open_time - _EPOCH) // _MS / 1000
        end = (meta.close_time - _EPOCH) // _MS / 1000 + SESSION_GAP
        batch.append((int(key), ((start, end), mean)))
    results.add_batch(batch)
    return results


# -- the variants, registered by ``harness`` -----------------------------------------------

TARGETS = {"ratio_plain": 0.5}
"""Every variant: at least half the plain loop's events per second."""

VARIANTS: tuple[tuple[str, str, dict[str, Callable[[int], Any]], Any, dict[str, float]], ...] = (
    (
        "W3",
        "tumbling event-time windows of 1 s, count per key per window",
        {
            "riverbed": riverbed_w3,
            "plain": baselines.plain_w3,
            "naive_asyncio": baselines.asyncio_w3,
            "bytewax": bytewax_w3,
        },
        _check("tumbling"),
        TARGETS,
    ),
    (
        "W3-SLIDING",
        "sliding event-time windows of 10 s every 1 s, sum per key per window",
        {
            "riverbed": riverbed_w3_sliding,
            "plain": baselines.plain_w3_sliding,
            "naive_asyncio": baselines.asyncio_w3_sliding,
            "bytewax": bytewax_w3_sliding,
        },
        _check("sliding"),
        TARGETS,
    ),
    (
        "W3-SESSION",
        "event-time sessions (gap 2 s), a user class's mean per key per session",
        {
            "riverbed": riverbed_w3_session,
            "plain": baselines.plain_w3_session,
            "naive_asyncio": baselines.asyncio_w3_session,
            "bytewax": bytewax_w3_session,
        },
        _check("session"),
        TARGETS,
    ),
)
"""``(id, description, runners, check, targets)``: the fields of ``harness.Workload``."""
