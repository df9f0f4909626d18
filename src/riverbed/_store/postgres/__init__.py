"""The PostgreSQL store: shared by many workers on many machines.

- A ``psycopg_pool.ConnectionPool`` (1 to 8 connections) serves the engine's threads.
  Connections are in autocommit mode: a lone statement is its own transaction (one round
  trip, e.g. a workflow's step), and multi-statement writes open one explicitly.
  Connection-level errors (``OperationalError``: the server restarting, the network cut, a
  pooled connection the server dropped) are ``StoreUnavailableError``s, which every call
  retries on a fresh connection (``retry``): a restart costs a reconnect, not the run.
  (``database``)
- Statements are prepared on first use (``prepare_threshold=0``): the store runs the same
  few statements over and over.
- A status transition reads the run ``FOR UPDATE``: two concurrent transitions of one run
  are serialized, and the second sees the first's result.
- ``claim`` selects ``FOR UPDATE SKIP LOCKED``, so that workers pass over rows that others
  are claiming instead of waiting for them or taking them too, and compares leases with the
  database's clock (``clock_timestamp()``), since the workers' machines' clocks differ.
  It is one statement, its history entries written by the same statement; so is a group
  commit of workflow steps (``queue``).
- Migrations run under a transaction-scoped advisory lock keyed by the schema, so two
  processes starting at once migrate once.
- A trigger on the runs table notifies channel ``riverbed_runs`` when a run is queued or
  a step run changes status; while someone waits on the store's ``run_changes``, a
  thread listens for it on a connection of its own (``listen``), so that an idle worker
  takes a run queued by another process at once, and a workflow hears at once that its
  step run ended.

psycopg is imported by this package only, which ``open_store`` loads on demand: ``import
riverbed`` stays light, and riverbed installs without it (``pip install
'riverbed[postgres]'`` adds it).
"""

from __future__ import annotations

import functools

from riverbed._store.postgres.database import PostgresDatabase
from riverbed._store.postgres.listen import Listeners
from riverbed._store.postgres.queue import PostgresQueue
from riverbed._store.schema import SCHEMA_VERSION
from riverbed._store.sql import SQLCore, SQLStore

__all__ = ["PostgresDatabase", "PostgresStore"]


class PostgresStore(SQLStore):
    """A store in a PostgreSQL database (see the module doc for how it is used).

    ``url`` is a libpq URI: ``postgresql://user:password@host:5432/dbname``, optionally with
    ``?options=-c%20search_path%3Dmyschema`` to keep riverbed's tables in their own schema.
    """

    def __init__(
        self,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 8,
        connect_timeout: float = 10.0,
        schema_version: int = SCHEMA_VERSION,
        read_only: bool = False,
    ) -> None:
        """Connect, bring the schema up to date, then open the pool (see
        ``PostgresDatabase``)."""
        database = PostgresDatabase(
            url,
            min_size=min_size,
            max_size=max_size,
            connect_timeout=connect_timeout,
            schema_version=schema_version,
            read_only=read_only,
        )
        core = SQLCore(database)
        super().__init__(core, queue=PostgresQueue(core, database))
        # Waiters hear other processes' changes through a listener of this database.
        self._changes.on_wait = functools.partial(Listeners.ensure, url, self.url, self._changes)
