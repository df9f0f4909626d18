"""Connectors: sources and sinks for real systems.

- ``PostgresTable``: rows into a PostgreSQL table, exactly once with checkpoints (a
  ``TransactionalSink``).

Each connector imports its client library only when it is used.
"""

from riverbed.connectors.postgres import PostgresTable

__all__ = ["PostgresTable"]
