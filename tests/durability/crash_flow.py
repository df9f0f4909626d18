"""The flow the crash harness kills: W2 of the benchmarks, smaller and paced, beside a
branch whose keys' state is removed as often as it is written.

``python -m tests.durability.crash_flow STORE RESULTS RUN_ID`` runs it (or resumes run
RUN_ID if the store has it) with checkpoints every ``CHECKPOINT_EVENTS`` events. Per-key
running counts and sums go to an SQLite table in RESULTS by upsert: the sink is
at-least-once, and replayed events write the same values again, so the table's final
content is exact exactly when the state is (no event lost, none counted twice).

The second branch groups the values of each of its keys in chunks of ``CHUNK``: a chunk's
last value emits the chunk's sum and removes the key's state. Its keys are ``COLD`` keys
that get one value each, then ``HOT`` keys that get the rest, so that its checkpoints
write a few changed keys and removed ones among many unchanged (per key, not whole). Per
hot key, the count of chunks and the sum of their sums go to the same table.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import time
from collections.abc import Iterator
from typing import Any

import riverbed as rb
from riverbed.connectors import PostgresTable

EVENTS = 60_000
KEYS = 100
PACE_EVERY = 500
PACE_SECONDS = 0.004
"""A pause every PACE_EVERY events, so that a run lasts long enough to be killed mid-way."""
CHECKPOINT_EVENTS = 1_500
CHUNK = 3
COLD = 5_000
HOT = 47
"""Prime, so that at any cut some hot keys are mid-chunk and others removed."""
CHUNK_KEYS = 1_000
"""The chunks' keys count from here (the W2 keys are 0 to KEYS - 1)."""


def events() -> Iterator[dict[str, Any]]:
    """The W2 events, paced."""
    for i in range(EVENTS):
        if i % PACE_EVERY == 0:
            time.sleep(PACE_SECONDS)
        yield {"id": i, "key": i % KEYS, "value": float(i % 97)}


def get_key(event: dict[str, Any]) -> int:
    """The event's key."""
    return event["key"]  # type: ignore[no-any-return]


class RunningSum:
    """Per key: how many events, and the sum of their values."""

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0

    def add(self, event: dict[str, Any]) -> tuple[int, float]:
        """Count one event; emit the running (count, total)."""
        self.count += 1
        self.total += event["value"]
        return (self.count, self.total)


def chunk_key(event: dict[str, Any]) -> int:
    """The chunks' key of an event: one of COLD keys for the first COLD events, then one
    of HOT."""
    i: int = event["id"]
    return CHUNK_KEYS + (i if i < COLD else COLD + i % HOT)


def chunk(values: list[float] | None, event: dict[str, Any]) -> tuple[Any, float | None]:
    """Per key, values in chunks of CHUNK: the last one emits the chunk's sum and removes
    the key's state."""
    values = [*(values or []), event["value"]]
    if len(values) == CHUNK:
        return None, sum(values)
    return values, None


class ChunkTally:
    """Per chunk key: how many chunks, and the sum of their sums."""

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0

    def add(self, chunk_sum: float) -> tuple[int, float]:
        """Count one chunk; emit the running (count, total)."""
        self.count += 1
        self.total += chunk_sum
        return (self.count, self.total)


def expected() -> dict[int, tuple[int, float]]:
    """What an uninterrupted run leaves in the results table (computed in plain Python)."""
    sums: dict[int, tuple[int, float]] = {}
    chunks: dict[int, list[float]] = {}
    for i in range(EVENTS):
        count, total = sums.get(i % KEYS, (0, 0.0))
        sums[i % KEYS] = (count + 1, total + float(i % 97))
        key = chunk_key({"id": i})
        values = chunks.setdefault(key, [])
        values.append(float(i % 97))
        if len(values) == CHUNK:
            count, total = sums.get(key, (0, 0.0))
            sums[key] = (count + 1, total + sum(values))
            del chunks[key]
    return sums


class ResultsTable:
    """Upserts each key's latest (count, total) into an SQLite table."""

    def __init__(self, path: str) -> None:
        self.path = path
        with sqlite3.connect(path) as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS results "
                "(key INTEGER PRIMARY KEY, n INTEGER, total REAL)"
            )

    def write_batch(self, rows: list[tuple[int, int, float]]) -> None:
        """Write the latest value of each key in the batch."""
        with sqlite3.connect(self.path) as db:
            db.executemany(
                "INSERT INTO results VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE "
                "SET n = excluded.n, total = excluded.total",
                rows,
            )


def read_results(path: str) -> dict[int, tuple[int, float]]:
    """The results' content: each key's last (count, total). For a PostgreSQL results
    table (``postgresql://...#table``), which gets a row per event, the rows must be
    exactly one per (key, count): a duplicate or a gap is reported as a wrong count."""
    if path.startswith("postgresql://"):
        return _read_rows(path)
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT key, n, total FROM results").fetchall()
    return {key: (n, total) for key, n, total in rows}


def _read_rows(target: str) -> dict[int, tuple[int, float]]:
    import psycopg

    url, _, table = target.partition("#")
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            f"SELECT key, count(*), count(DISTINCT n), max(n), "
            f"(array_agg(total ORDER BY n DESC))[1] FROM {table} GROUP BY key"
        ).fetchall()
    results: dict[int, tuple[int, float]] = {}
    for key, count, distinct, top, total in rows:
        # Exactly once: one row per count 1..top. Duplicates make count > top.
        results[key] = (top if count == distinct == top else -count, total)
    return results


def _sink(results: str) -> Any:
    """An upserting SQLite table (at-least-once made exact by idempotence), or an
    append-only PostgreSQL table written exactly once (``PostgresTable``)."""
    if results.startswith("postgresql://"):
        url, _, table = results.partition("#")
        return PostgresTable(url, table, ["key", "n", "total"])
    return ResultsTable(results)


def build(results: str) -> rb.Flow:
    """The flow, writing into the results at ``results`` (see ``_sink``)."""
    flow = rb.Flow("crash-w2")
    read = flow.source(events, name="events")
    sums = read.key_by(get_key).stateful(RunningSum, RunningSum.add)
    chunks = read.key_by(chunk_key).stateful(chunk).stateful(ChunkTally, ChunkTally.add)
    sums.merge(chunks).map(flatten).sink(_sink(results), name="results")
    return flow


def flatten(pair: tuple[int, tuple[int, float]]) -> tuple[int, int, float]:
    """``(key, (count, total))`` as a row ``(key, count, total)``."""
    key, (count, total) = pair
    return (key, count, total)


def scheduled() -> rb.Flow:
    """The flow for workers (``tests.durability.crash_flow:scheduled``), writing into the
    results table that $CRASH_RESULTS names."""
    return build(os.environ["CRASH_RESULTS"])


def main(store_url: str, results: str, run_id: str) -> int:
    """Run (or resume) run ``run_id``; exit 0 when it succeeded."""
    flow = build(results)
    with rb.open_store(store_url) as store:
        try:
            if store.get_run(run_id).status is rb.RunStatus.SUCCEEDED:
                return 0  # killed after its end was recorded: nothing left to do
            resume: dict[str, Any] = {"resume": run_id}
        except rb.RunNotFoundError:
            resume = {"run_id": run_id}
        result = flow.run(
            store=store, checkpoint_events=CHECKPOINT_EVENTS, progress=False, **resume
        )
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
