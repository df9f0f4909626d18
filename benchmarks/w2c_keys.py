"""W2C-KEYS: what a checkpoint costs when a large state changes a little. W2's keyed
running mean over ``keys`` keys (1,000,000 with the default ``--events``), of which 1%
change between two checkpoints; incremental checkpoints (the keys changed since the last
checkpoint, one row each) against the full-state behaviour (the whole per-key dict pickled
and written at every checkpoint, as riverbed did before), on SQLite and PostgreSQL.

Each variant runs twice per store. A first run fills the state (one event per key),
checkpoints once at the end of the filling, and stops there (its source fails on
purpose). Resumed, it restores that state and reads ``INTERVALS`` intervals of ``keys /
100`` events, one per key of a sliding window of the keys, with a checkpoint every ``keys
/ 100`` events and a pause after each interval (so a checkpoint covers one interval). Per
checkpoint of the resumed attempt but its first and last, measured:

- bytes: the states and key rows it writes (keys and states serialized, not the store's
  own overhead);
- snapshot seconds: serializing the state at the checkpoint's cut, on the event loop;
- commit seconds: the store's transaction, in the thread commits run in;
- and, once per variant, restore seconds: reading the newest checkpoint back and
  rebuilding the per-key dict (what a resume does).

Target: the incremental checkpoint writes >= 10x fewer bytes and costs >= 10x less time
(snapshot + commit) than the full-state one.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import statistics
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import riverbed as rb
from riverbed._runtime import stream as _stream
from riverbed._runtime.chains.executor import ChainExecutor
from riverbed._runtime.restore import RestorePoint

from . import pgstats
from .durability import POSTGRES_URL
from .workloads import MODULUS, Event, RunningMean

INTERVALS = 12
CHANGED = 0.01
"""The fraction of the keys an interval changes."""
PAUSE = 0.4
"""Seconds the source waits after each interval, for its checkpoint to be committed."""
TARGET = 10.0


def fill(keys: int) -> Iterator[Event]:
    """One event per key."""
    for i in range(keys):
        yield {"id": i, "key": i, "value": float(i % MODULUS)}


class Filled(Exception):  # noqa: N818 - not an error: the end of the filling run
    """Raised by ``fill_then_stop`` once every key has its event."""


def fill_then_stop(keys: int) -> Iterator[Event]:
    """``fill``'s events, then a failure: the run stops after its checkpoint at the end of
    the filling, unfinished, so that it can be resumed with more events."""
    yield from fill(keys)
    raise Filled(f"{keys} keys filled")


def fill_then_change(keys: int, intervals: int) -> Iterator[Event]:
    """``fill``'s events, then ``intervals`` intervals of one event for each key of a
    window of ``keys * CHANGED`` keys (the next window each time), a pause after each."""
    yield from fill(keys)
    width = max(1, int(keys * CHANGED))
    for interval in range(intervals):
        start = (interval * width) % keys
        for offset in range(width):
            i = keys + interval * width + offset
            yield {"id": i, "key": (start + offset) % keys, "value": float(i % MODULUS)}
        time.sleep(PAUSE)


class _Spy:
    """A real store that also notes, per checkpoint committed, what it wrote and how long
    the commit took (a measuring wrapper: the writes go to the store it wraps)."""

    def __init__(self, store: rb.Store) -> None:
        self._store = store
        self.commits: list[dict[str, Any]] = []

    def commit_checkpoint(self, checkpoint: rb.Checkpoint, *args: Any, **kwargs: Any) -> None:
        started = time.perf_counter()
        self._store.commit_checkpoint(checkpoint, *args, **kwargs)
        rows = {key: state for rows in checkpoint.keyed.values() for key, state in rows.items()}
        whole = {name: data for name, data in checkpoint.states.items() if ":" not in name}
        self.commits.append(
            {
                "checkpoint_id": checkpoint.checkpoint_id,
                "commit_seconds": time.perf_counter() - started,
                "rows": len(rows),
                "bytes": sum(len(k) + len(v or b"") for k, v in rows.items())
                + sum(len(data) for data in whole.values()),
                "complete": sorted(checkpoint.complete),
            }
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


@contextlib.contextmanager
def _timed_snapshots() -> Iterator[list[float]]:
    """Seconds of every chain snapshot taken meanwhile (instrumentation of the engine's
    ``ChainExecutor.snapshot``, put back afterwards)."""
    seconds: list[float] = []
    original = ChainExecutor.snapshot

    def snapshot(self: ChainExecutor, checkpoint_id: int) -> Any:
        started = time.perf_counter()
        try:
            return original(self, checkpoint_id)
        finally:
            if any(state is not None for state in self.states):
                seconds.append(time.perf_counter() - started)

    ChainExecutor.snapshot = snapshot  # type: ignore[method-assign]
    try:
        yield seconds
    finally:
        ChainExecutor.snapshot = original  # type: ignore[method-assign]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """riverbed's log without the warning of the filling run's planned failure."""
    logger = logging.getLogger("riverbed")
    level = logger.level
    logger.setLevel(logging.ERROR + 10)
    try:
        yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def _full_state() -> Iterator[None]:
    """The full-state behaviour: no stage is kept per key, so every checkpoint pickles and
    writes each stateful stage's whole dict (the engine's table of per-key stage kinds,
    emptied for the run, put back afterwards)."""
    kinds = _stream.KEYED_KINDS
    _stream.KEYED_KINDS = frozenset()  # type: ignore[misc]
    try:
        yield
    finally:
        _stream.KEYED_KINDS = kinds  # type: ignore[misc]


def _flow(source: Any) -> rb.Flow:
    flow = rb.Flow("w2c-keys")
    flow.source(source, name="events").key_by(_key).stateful(
        RunningMean, RunningMean.add, name="means"
    ).sink_batch(_count, name="count")
    return flow


def _key(event: Event) -> int:
    return event["key"]  # type: ignore[no-any-return]


def _count(batch: list[Any]) -> None:
    return None


def _variant(store: rb.Store, keys: int, intervals: int) -> dict[str, Any]:
    """Fill, then re-run with intervals of changes; the re-run's checkpoints measured."""
    width = max(1, int(keys * CHANGED))
    # Batches of a tenth of an interval: the commit's end (noticed between batches) comes
    # in time for the checkpoint of the next interval, not of the one after.
    options: dict[str, Any] = {"batch_size": max(100, width // 10), "progress": False}
    with _quiet():
        filled = _flow(functools.partial(fill_then_stop, keys)).run(
            store=store, checkpoint_events=keys, raise_on_failure=False, **options
        )
    checkpoint = store.latest_checkpoint(filled.run_id)
    if checkpoint is None or checkpoint.positions["events"]["0"] != keys:
        raise RuntimeError(f"the filling run did not checkpoint its {keys} keys")
    spy = _Spy(store)
    with _timed_snapshots() as snapshots:
        changed = _flow(functools.partial(fill_then_change, keys, intervals)).run(
            store=spy,  # type: ignore[arg-type]
            resume=filled.run_id,
            compatible=True,  # the same flow, its source given more events
            checkpoint_events=width,
            **options,
        )
    if not changed.ok:
        raise RuntimeError(changed.summary())
    started = time.perf_counter()
    checkpoint = store.latest_checkpoint(changed.run_id)
    assert checkpoint is not None
    state = RestorePoint(store.get_run(changed.run_id), checkpoint).states()["means"]
    restore = time.perf_counter() - started
    if len(state) != keys:
        raise RuntimeError(f"restored {len(state)} keys, expected {keys}")
    measured = [dict(c, snapshot_seconds=s) for c, s in zip(spy.commits, snapshots, strict=False)]
    steady = measured[1:-1]  # not the re-run's first (whole) nor its last (at the end)
    return {
        "checkpoints": measured,
        "bytes": statistics.median(c["bytes"] for c in steady),
        "rows": statistics.median(c["rows"] for c in steady),
        "snapshot_seconds": statistics.median(c["snapshot_seconds"] for c in steady),
        "commit_seconds": statistics.median(c["commit_seconds"] for c in steady),
        "seconds": statistics.median(c["snapshot_seconds"] + c["commit_seconds"] for c in steady),
        "restore_seconds": restore,
    }


def _both(url: str, keys: int, intervals: int, log: Any, label: str) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for name in ("incremental", "full"):
        with (
            rb.open_store(url) as store,
            _full_state() if name == "full" else contextlib.nullcontext(),
        ):
            figures[name] = _variant(store, keys, intervals)
        log(
            f"  W2C-KEYS {label} {name:<11}: {figures[name]['bytes']:>12,.0f} bytes, "
            f"{figures[name]['snapshot_seconds']:.3f} s snapshot + "
            f"{figures[name]['commit_seconds']:.3f} s commit per checkpoint; restore "
            f"{figures[name]['restore_seconds']:.2f} s"
        )
    full, incremental = figures["full"], figures["incremental"]
    figures["bytes_ratio"] = full["bytes"] / max(incremental["bytes"], 1)
    figures["seconds_ratio"] = full["seconds"] / max(incremental["seconds"], 1e-9)
    return figures


def run_w2c_keys(events_count: int, log: Any, intervals: int = INTERVALS) -> dict[str, Any]:
    """W2C-KEYS on SQLite, then PostgreSQL (a fresh database, dropped afterwards)."""
    keys = events_count
    stores: dict[str, dict[str, Any]] = {}
    failures: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as scratch:
        stores["sqlite"] = _both(f"sqlite:///{scratch}/w2c.db", keys, intervals, log, "sqlite")
    try:
        database = pgstats.create_database(POSTGRES_URL, "rbw2ck")
    except Exception as error:  # any failure to reach it: reported, not raised
        failures["postgres"] = f"PostgreSQL not usable at {POSTGRES_URL}: {error}"
    else:
        try:
            url = pgstats.with_database(POSTGRES_URL, database)
            stores["postgres"] = _both(url, keys, intervals, log, "postgres")
        finally:
            pgstats.drop_database(POSTGRES_URL, database)
    lines = [_line(label, figures, keys) for label, figures in stores.items()]
    met = all(f["bytes_ratio"] >= TARGET and f["seconds_ratio"] >= TARGET for f in stores.values())
    return {
        "workload": "W2C-KEYS",
        "kind": "durability",
        "description": f"{keys:,} keys, {CHANGED:.0%} changed per checkpoint: incremental "
        "against full-state checkpoints",
        "events": keys,
        "riverbed_eps": None,
        "stores": stores,
        "targets": {"bytes_ratio": TARGET, "seconds_ratio": TARGET},
        "targets_met": {"ratios": met},
        "failures": failures,
        "lines": lines
        + ([f"W2C-KEYS postgres: not run ({failures['postgres']})"] if failures else []),
    }


def _met(figures: dict[str, Any]) -> bool:
    return bool(figures["bytes_ratio"] >= TARGET and figures["seconds_ratio"] >= TARGET)


def _line(label: str, figures: dict[str, Any], keys: int) -> str:
    inc, full = figures["incremental"], figures["full"]
    return (
        f"W2C-KEYS {label}: {keys:,} keys, {CHANGED:.0%} changed per checkpoint: "
        f"incremental {inc['bytes'] / 1e6:.2f} MB in {inc['seconds'] * 1000:.0f} ms "
        f"(snapshot {inc['snapshot_seconds'] * 1000:.0f} + commit "
        f"{inc['commit_seconds'] * 1000:.0f}), full state {full['bytes'] / 1e6:.1f} MB in "
        f"{full['seconds'] * 1000:.0f} ms (snapshot {full['snapshot_seconds'] * 1000:.0f} + "
        f"commit {full['commit_seconds'] * 1000:.0f}): {figures['bytes_ratio']:.0f}x fewer "
        f"bytes, {figures['seconds_ratio']:.0f}x less time (target >= {TARGET:.0f}x both: "
        f"{'met' if _met(figures) else 'NOT met'}); "
        f"restore {inc['restore_seconds']:.2f} s against {full['restore_seconds']:.2f} s"
    )
