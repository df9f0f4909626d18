"""The flow the connector crash tests kill: events from a connector, per-key running
counts and sums, and every event again into a connector's sink.

``python -m tests.connectors.crash_app KIND STORE RESULTS RUN_ID TARGET`` runs run RUN_ID
(or resumes it, if the store has it) with checkpoints every ``CHECKPOINT_EVENTS`` events.
KIND is ``files`` (TARGET: a directory with ``in/`` to read and ``out/`` for FileSink's
parts) or ``redis`` (TARGET: ``URL#STREAM``; the events go again to ``STREAM:out`` through
RedisStreamTransactionalSink, and to ``STREAM:plain`` through the at-least-once
RedisStreamSink). The per-key results are upserted into the SQLite file RESULTS, as in
``tests.durability.crash_flow``: exact exactly when the state is.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import riverbed as rb
from riverbed.connectors import (
    FileSink,
    FileSource,
    JetStreamSink,
    JetStreamSource,
    MQTTSource,
    PostgresTable,
    PostgresTableSource,
    RabbitMQSink,
    RabbitMQSource,
    RedisStreamSink,
    RedisStreamSource,
    RedisStreamTransactionalSink,
)
from tests.durability.crash_flow import ResultsTable, RunningSum, flatten

EVENTS = 3_000
KEYS = 13
CHECKPOINT_EVENTS = 300
PACE_EVERY = 50
PACE_SECONDS = 0.02
"""A pause every PACE_EVERY events, so that a run lasts long enough to be killed mid-way."""


def event(i: int) -> dict[str, Any]:
    """The i-th event."""
    return {"id": i, "key": i % KEYS, "value": float(i % 17)}


def events_for(kind: str) -> int:
    """How many events the crash test of ``kind`` sends: for MQTT, fewer than the broker
    keeps for a session whose run is down (Mosquitto's max_queued_messages is 1,000:
    beyond it, the broker drops messages, as docs/connectors.md says)."""
    return 900 if kind == "mqtt" else EVENTS


def expected(events: int = EVENTS) -> dict[int, tuple[int, float]]:
    """Per key, (count, sum) after each of ``events`` events once."""
    sums: dict[int, tuple[int, float]] = {}
    for i in range(events):
        e = event(i)
        count, total = sums.get(e["key"], (0, 0.0))
        sums[e["key"]] = (count + 1, total + e["value"])
    return sums


def pace(e: dict[str, Any]) -> dict[str, Any]:
    """The event, after a short pause every PACE_EVERY events."""
    if e["id"] % PACE_EVERY == 0:
        time.sleep(PACE_SECONDS)
    return e


def unwrap(e: dict[str, Any]) -> dict[str, Any]:
    """The event (a PostgreSQL row holds it as its ``payload`` column)."""
    return e.get("payload", e)  # type: ignore[no-any-return]


def get_key(e: dict[str, Any]) -> int:
    """The event's key."""
    return e["key"]  # type: ignore[no-any-return]


def connectors(kind: str, target: str) -> tuple[Any, list[Any]]:
    """The source, and the sinks that get every event, for ``kind``."""
    if kind == "files":
        return FileSource(f"{target}/in", format="jsonl"), [FileSink(f"{target}/out")]
    if kind == "postgres":
        url, _, table = target.partition("#")
        rows = PostgresTableSource(
            url, table, column="id", columns=["id", "payload"], poll=0.1, idle_timeout=0.8
        )
        return rows, [PostgresTable(url, f"{table}_out", ["id"])]
    if kind == "mqtt":
        url, topic, client_id = target.split("#")
        mqtt = MQTTSource(url, f"{topic}/#", client_id=client_id, wait=0.1, idle_timeout=0.8)
        return mqtt, []
    url, _, stream = target.partition("#")
    if kind == "nats":
        nats_source = JetStreamSource(
            url,
            stream,
            durable="crash",
            subject=f"{stream}.in",
            fetch_timeout=0.1,
            idle_timeout=0.8,
        )
        return nats_source, [JetStreamSink(url, f"{stream}.out", msg_id=lambda e: e["id"])]
    if kind == "rabbitmq":
        rabbit = RabbitMQSource(url, stream, wait=0.1, idle_timeout=0.8)
        return rabbit, [RabbitMQSink(url, f"{stream}-out", msg_id=lambda e: e["id"])]
    source = RedisStreamSource(url, stream, group="crash", block=0.1, idle_timeout=0.8)
    sinks = [
        RedisStreamTransactionalSink(url, f"{stream}:out"),
        RedisStreamSink(url, f"{stream}:plain"),
    ]
    return source, sinks


def build(kind: str, results: str, target: str) -> rb.Flow:
    """The flow (see the module docstring)."""
    source, sinks = connectors(kind, target)
    flow = rb.Flow(f"crash-{kind}")
    read = flow.source(source, name="read").map(unwrap).map(pace)
    sums = read.key_by(get_key).stateful(RunningSum, RunningSum.add)
    sums.map(flatten).sink(ResultsTable(results), name="results")
    for index, sink in enumerate(sinks):
        read.sink(sink, name=f"copy{index}")
    return flow


def main(kind: str, store_url: str, results: str, run_id: str, target: str) -> int:
    """Run (or resume) run ``run_id``; exit 0 when it succeeded."""
    flow = build(kind, results, target)
    with rb.open_store(store_url) as store:
        try:
            if store.get_run(run_id).status is rb.RunStatus.SUCCEEDED:
                return 0
            resume: dict[str, Any] = {"resume": run_id}
        except rb.RunNotFoundError:
            resume = {"run_id": run_id}
        result = flow.run(
            store=store,
            checkpoint_events=CHECKPOINT_EVENTS,
            batch_size=100,
            progress=False,
            **resume,
        )
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:6]))
