"""W6: backpressure and checkpoint barriers, riverbed alone (a memory check, not a race).

The flow is what a user's streaming job looks like: a source of several partitions, one
of them quiet (its async ``read`` waits for data that does not come), the others as fast
as they are read; checkpoints every second into an SQLite store; and a sink that awaits
I/O (an async ``write_batch`` sleeping 1 ms per batch). The engine cannot fuse source and
sink into one loop (several partitions, an async sink): batches cross a bounded channel,
and the sources must slow down to what the sink takes while checkpoints go on.

Figures: RSS growth over the run (the largest RSS minus the RSS after the warm-up), the
checkpoints committed while the sources ran and in all, and the events the sink took. A
run whose memory grows past ``ABORT_GROWTH_MB`` is stopped early (the sources end), so
that a runaway run does not take the shared machine's memory; the record says so.
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
import time
import traceback
import uuid
from typing import Any

import riverbed as rb

from .measure import MB, RssSampler
from .workloads import KEYS, MODULUS, Event

TARGET_GROWTH_MB = 50.0
ABORT_GROWTH_MB = 1024.0
"""Stop the sources when RSS has grown this much since the start."""
BUSY_PARTITIONS = 3
CHECKPOINT_INTERVAL = 1.0
BATCH_SIZE = 1000
SINK_SLEEP = 0.001


class Stop:
    """When the sources stop: at ``deadline``, or earlier once ``abort`` is set."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds
        self.abort = threading.Event()
        self.stopped_at: float | None = None

    def due(self) -> bool:
        """True once the sources should end."""
        if self.abort.is_set() or time.monotonic() >= self.deadline:
            if self.stopped_at is None:
                self.stopped_at = time.monotonic()
            return True
        return False


class BusyReader:
    """A partition with events whenever asked: ``max_events`` per read until ``stop``."""

    def __init__(self, index: int, stop: Stop, start: int) -> None:
        self.index = index
        self.stop = stop
        self.read_count = start

    def read(self, max_events: int) -> list[Event] | None:
        """The next ``max_events`` events, or None when the run is over."""
        if self.stop.due():
            return None
        first = self.read_count
        self.read_count += max_events
        index = self.index
        return [
            {"id": i, "part": index, "key": i % KEYS, "value": float(i % MODULUS), "t": i}
            for i in range(first, first + max_events)
        ]

    def position(self) -> int:
        """Events read so far."""
        return self.read_count

    def close(self) -> None:
        """Nothing to release."""


class QuietReader:
    """A partition with no data: its async ``read`` waits (as a reader of an idle socket or
    topic does) until the run is over, then ends the stream."""

    def __init__(self, stop: Stop) -> None:
        self.stop = stop

    async def read(self, max_events: int) -> list[Event] | None:
        """Wait for data that does not come; None when the run is over."""
        while not self.stop.due():
            await asyncio.sleep(0.05)
        return None

    def position(self) -> int:
        """Nothing read."""
        return 0

    def close(self) -> None:
        """Nothing to release."""


class Partitions:
    """W6's source: ``BUSY_PARTITIONS`` busy partitions and one quiet one."""

    def __init__(self, stop: Stop) -> None:
        self.stop = stop
        self.readers: list[BusyReader] = []

    def partitions(self) -> list[str]:
        """The partition names."""
        return [f"busy-{i}" for i in range(BUSY_PARTITIONS)] + ["quiet"]

    def open(self, partition: str, position: Any | None) -> BusyReader | QuietReader:
        """A reader for ``partition`` starting after ``position``."""
        if partition == "quiet":
            return QuietReader(self.stop)
        reader = BusyReader(int(partition.split("-")[1]), self.stop, position or 0)
        self.readers.append(reader)
        return reader

    @property
    def produced(self) -> int:
        """Events read from every busy partition."""
        return sum(reader.read_count for reader in self.readers)


class SlowAsyncSink:
    """W6 sink: awaits 1 ms per batch (an I/O call), counts events."""

    def __init__(self) -> None:
        self.count = 0
        self.batches = 0

    async def write_batch(self, batch: list[Event]) -> None:
        """Take one batch, slowly."""
        await asyncio.sleep(SINK_SLEEP)
        self.count += len(batch)
        self.batches += 1


class CheckpointWatch:
    """Polls the store for the run's newest checkpoint every 0.5 s, from a thread, and
    notes when each new one was first seen (seconds since the run started)."""

    def __init__(self, store: str, run_id: str) -> None:
        self.store = store
        self.run_id = run_id
        self.seen: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="w6-checkpoints", daemon=True)
        self._start = time.monotonic()

    def _loop(self) -> None:
        store: rb.Store | None = None
        try:
            while not self._stop.wait(0.5):
                try:
                    if store is None:  # opened once the run has made it: no schema race
                        store = rb.open_store(self.store)
                    latest = store.latest_checkpoint(self.run_id)
                except rb.RiverbedError:  # e.g. the run is not recorded yet
                    continue
                if latest is not None and (
                    not self.seen or self.seen[-1][1] != latest.checkpoint_id
                ):
                    self.seen.append((time.monotonic() - self._start, latest.checkpoint_id))
        finally:
            if store is not None:
                store.close()

    def __enter__(self) -> CheckpointWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def _abort_when_growing(sampler: RssSampler, stop: Stop) -> threading.Thread:
    """A thread that sets ``stop.abort`` once RSS has grown ``ABORT_GROWTH_MB``."""

    def watch() -> None:
        while stop.stopped_at is None:
            if (
                sampler.samples
                and (sampler.samples[-1][1] - sampler.samples[0][1]) / MB > ABORT_GROWTH_MB
            ):
                stop.abort.set()
                return
            time.sleep(0.2)

    thread = threading.Thread(target=watch, name="w6-abort", daemon=True)
    thread.start()
    return thread


def run_w6(seconds: float, log: Any) -> dict[str, Any]:
    """W6: the record (riverbed only)."""
    warmup = min(2.0, seconds / 2)
    reason = "W6 runs riverbed only: it checks memory under backpressure"
    record: dict[str, Any] = {
        "workload": "W6",
        "riverbed_eps": None,
        "plain_eps": None,
        "bytewax_eps": None,
        "ratio_plain": None,
        "ratio_bytewax": None,
        "peak_rss_mb": None,
        "naive_asyncio_eps": None,
        "description": (
            f"backpressure and barriers: {BUSY_PARTITIONS} busy partitions and a quiet one "
            "(async read waiting), checkpoints every 1 s (SQLite), an async sink awaiting "
            "1 ms per batch"
        ),
        "seconds": seconds,
        "warmup_seconds": warmup,
        "plain_reason": reason,
        "naive_asyncio_reason": reason,
        "bytewax_reason": reason,
        "rss_growth_mb": None,
        "targets": {"rss_growth_mb_below": TARGET_GROWTH_MB},
        "targets_met": {"rss_growth_mb_below": None},
        "failures": {},
    }
    stop = Stop(seconds)
    source = Partitions(stop)
    sink = SlowAsyncSink()
    run_id = uuid.uuid4().hex[:16]
    flow = rb.Flow("w6")
    flow.source(source, name="partitions").sink(sink, name="slow")
    with tempfile.TemporaryDirectory() as scratch:
        store = f"sqlite:///{scratch}/w6.db"
        try:
            with RssSampler(0.2) as sampler, CheckpointWatch(store, run_id) as watch:
                _abort_when_growing(sampler, stop)
                started = time.monotonic()
                result = flow.run(
                    store=store,
                    run_id=run_id,
                    checkpoint_interval=CHECKPOINT_INTERVAL,
                    batch_size=BATCH_SIZE,
                    progress=False,
                )
                ended = time.monotonic()
            if not result.ok:
                raise RuntimeError(f"riverbed run did not succeed:\n{result.summary()}")
            with rb.open_store(store) as opened:
                latest = opened.latest_checkpoint(run_id)
        except Exception as error:
            record["failures"]["riverbed"] = "".join(traceback.format_exception(error)).rstrip()
            record["riverbed_reason"] = f"raised {type(error).__name__}: {error}".splitlines()[0]
            log(f"  W6 riverbed: FAILED ({record['riverbed_reason']})")
            return record
    sources_ran = (stop.stopped_at or ended) - started
    during = [cid for t, cid in watch.seen if t <= sources_ran]
    growth, baseline = sampler.growth_after(warmup)
    record.update(
        peak_rss_mb=sampler.peak_mb,
        rss_growth_mb=growth,
        rss_after_warmup_mb=baseline,
        rss_growth_from_start_mb=sampler.peak_mb - sampler.start_mb,
        produced=source.produced,
        delivered=sink.count,
        sink_batches=sink.batches,
        sources_seconds=sources_ran,
        drain_seconds=ended - (started + sources_ran),
        stopped_early=stop.abort.is_set(),
        checkpoints_during_sources=max(during, default=0),
        checkpoints_total=latest.checkpoint_id if latest is not None else 0,
        checkpoints_seen=watch.seen,
        rss_samples_mb=[(round(t, 2), round(rss / MB, 1)) for t, rss in sampler.samples],
    )
    record["targets_met"]["rss_growth_mb_below"] = growth < TARGET_GROWTH_MB
    if source.produced == 0 or sink.count != source.produced:
        wrong = f"the sources produced {source.produced} events, the sink received {sink.count}"
        record["riverbed_reason"] = f"wrong result: {wrong}"
        record["failures"]["riverbed"] = wrong
        log(f"  W6 riverbed: WRONG RESULT ({wrong})")
    else:
        record["riverbed_eps"] = sink.count / (ended - started)
    early = (
        f"; STOPPED EARLY after {sources_ran:.1f} s: RSS grew past {ABORT_GROWTH_MB:g} MB"
        if stop.abort.is_set()
        else ""
    )
    line = (
        f"W6: RSS grew {sampler.peak_mb - sampler.start_mb:,.1f} MB over the run, "
        f"{growth:,.1f} MB after a {warmup:g} s warm-up (target < {TARGET_GROWTH_MB:g} MB: "
        f"{'met' if growth < TARGET_GROWTH_MB else 'NOT met'}; peak "
        f"{sampler.peak_mb:,.0f} MB); {record['checkpoints_during_sources']} checkpoints "
        f"committed while the sources ran ({sources_ran:.1f} s, one due every "
        f"{CHECKPOINT_INTERVAL:g} s), {record['checkpoints_total']} in all; the sink took "
        f"{sink.count:,} events in {ended - started:.1f} s, {ended - started - sources_ran:.1f} s "
        f"of it draining after the sources ended{early}"
    )
    record["lines"] = [line]
    log(f"  {line}")
    return record
