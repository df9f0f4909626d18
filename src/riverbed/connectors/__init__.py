"""Connectors: sources and sinks for the systems people already run.

Each states its guarantee (docs/connectors.md has them in one table) and is tested against
the real server. Everything read is decoded at the boundary (``decode=``: bytes, text,
JSON, msgpack or a function; never unpickled), and what cannot be decoded becomes a dead
letter with its raw bytes.

- ``FileSource``, ``FileSink``: lines, JSON Lines, CSV; files, globs, watched directories.
- ``JetStreamSource`` (durable pull consumer, acked on checkpoint commit), ``JetStreamSink``
  (message ids for JetStream's de-duplication).
- ``RabbitMQSource`` (a queue, acked on checkpoint commit), ``RabbitMQSink`` (publisher
  confirms).
- ``MQTTSource`` (QoS 1, persistent session, PUBACK on checkpoint commit), ``MQTTSink``
  (QoS 1).
- ``PostgresTable``: rows into a PostgreSQL table, exactly once with checkpoints;
  ``PostgresTableSource``: a table's new rows by a growing column (polled, or woken by
  LISTEN/NOTIFY).
- ``HTTPSink``: JSON batches POSTed with retries, backoff and a timeout.
- ``RedisStreamSource`` (consumer group, XACK on checkpoint commit), ``RedisStreamSink``
  (XADD, at-least-once), ``RedisStreamTransactionalSink`` (exactly once per checkpoint).

Each connector imports its client library only when it is used, and says which extra to
install when it is missing.
"""

from riverbed.connectors._common import ConnectorError, Decode, DecodeError
from riverbed.connectors.files import FileSink, FileSource
from riverbed.connectors.http import HTTPSink
from riverbed.connectors.mqtt import MQTTSink, MQTTSource
from riverbed.connectors.nats_jetstream import JetStreamSink, JetStreamSource
from riverbed.connectors.postgres import PostgresTable
from riverbed.connectors.postgres_source import PostgresTableSource
from riverbed.connectors.rabbitmq import RabbitMQSink, RabbitMQSource
from riverbed.connectors.redis_streams import (
    RedisStreamSink,
    RedisStreamSource,
    RedisStreamTransactionalSink,
)

__all__ = [
    "ConnectorError",
    "Decode",
    "DecodeError",
    "FileSink",
    "FileSource",
    "HTTPSink",
    "JetStreamSink",
    "JetStreamSource",
    "MQTTSink",
    "MQTTSource",
    "PostgresTable",
    "PostgresTableSource",
    "RabbitMQSink",
    "RabbitMQSource",
    "RedisStreamSink",
    "RedisStreamSource",
    "RedisStreamTransactionalSink",
]
