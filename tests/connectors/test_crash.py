"""Connectors across SIGKILLs (10 per connector here, 100 in ``make soak``): no event
lost, per-key state exact, the exactly-once sinks hold every event once, an at-least-once
sink at least once (its duplicates counted and reported)."""

from __future__ import annotations

import pytest

from tests.connectors import crash
from tests.services import (
    require_mqtt,
    require_nats,
    require_postgres,
    require_rabbitmq,
    require_redis,
)

KILLS = 10


@pytest.mark.slow
def test_files_source_and_sink_across_kills() -> None:
    """FileSource resumes at its byte offsets, FileSink commits each part once."""
    report = crash.run("files", KILLS, seed=3)
    assert report.failures == []
    assert report.kills == KILLS


@pytest.mark.slow
def test_redis_streams_across_kills() -> None:
    """RedisStreamSource acks on commit and resumes exactly; the transactional sink
    writes every event once, the plain one at least once."""
    require_redis()
    report = crash.run("redis", KILLS, seed=5)
    assert report.failures == []
    assert report.kills == KILLS
    print(f"at-least-once duplicates after {KILLS} kills: {report.duplicates}")


@pytest.mark.slow
def test_nats_jetstream_across_kills() -> None:
    """JetStreamSource resumes exactly after its checkpoint (the consumer re-made from
    there); the sink's message ids make its writes once within the duplicate window."""
    require_nats()
    report = crash.run("nats", KILLS, seed=9)
    assert report.failures == []
    assert report.kills == KILLS


@pytest.mark.slow
def test_rabbitmq_across_kills() -> None:
    """RabbitMQSource acks on commit and drops, after a resume, the messages its
    checkpoint holds (by message id): state exact; the confirmed sink at least once."""
    require_rabbitmq()
    report = crash.run("rabbitmq", KILLS, seed=13)
    assert report.failures == []
    assert report.kills == KILLS
    print(f"at-least-once duplicates after {KILLS} kills: {report.duplicates}")


@pytest.mark.slow
def test_mqtt_across_kills() -> None:
    """MQTTSource, its events published (QoS 1) while runs are killed: the persistent
    session keeps them, unacknowledged ones come again, and the resumed run drops those
    its checkpoint holds: state exact."""
    require_mqtt()
    report = crash.run("mqtt", KILLS, seed=17)
    assert report.failures == []
    assert report.kills == KILLS


@pytest.mark.slow
def test_postgres_table_source_across_kills() -> None:
    """PostgresTableSource resumes right after its checkpoint's id; PostgresTable copies
    every row once."""
    require_postgres()
    report = crash.run("postgres", KILLS, seed=19)
    assert report.failures == []
    assert report.kills == KILLS
