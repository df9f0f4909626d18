"""The SQLite store: one file, zero set-up, shared safely by the processes of one machine.

Settings, and why:

- ``journal_mode=WAL``: readers never block the writer nor the writer them, and a commit
  appends to the log instead of rewriting pages.
- ``synchronous=FULL``: every commit fsyncs the log, so a committed checkpoint or workflow
  step survives power loss, as docs/durability.md promises. ``NORMAL`` would survive a killed
  process (kill -9) but could lose the last commits to a power cut; docs/store.md has the
  measured cost of the difference.
- ``busy_timeout`` (10 s): a process that finds the database locked by another waits for it
  instead of failing at once.
- Every write transaction starts with ``BEGIN IMMEDIATE``, which takes the database's write
  lock up front: a read-then-write (a status transition, a claim) cannot interleave with
  another process's, and no deadlock can arise from two readers upgrading at once.

One connection serves all threads of a process, behind a lock: SQLite runs one writer at a
time anyway, and the engine's calls are short.

The file is created 0600 (SQLite gives its ``-wal`` and ``-shm`` files the same mode): runs
hold pickles, and whoever can write them can run code in the processes that read them.
A store opened ``read_only`` is opened with SQLite's ``mode=ro`` and never writes a byte;
in a directory this process cannot write (where SQLite cannot create the ``-shm`` file a
reader of a WAL database needs) it is read as ``immutable``, which is exact when no
write-ahead log is waiting to be folded in, and only then is it used. A damaged file, a
file that is no database, or a store this process may not write are ``StoreError``s naming
the file and what to do.
"""

from __future__ import annotations

from pathlib import Path

from riverbed._store.schema import SCHEMA_VERSION
from riverbed._store.sql import SQLCore, SQLStore
from riverbed._store.sqlite.database import SQLiteDatabase

__all__ = ["SQLiteDatabase", "SQLiteStore"]


class SQLiteStore(SQLStore):
    """A store in one SQLite file (see the module doc for its settings).

    >>> import tempfile, pathlib
    >>> with SQLiteStore(pathlib.Path(tempfile.mkdtemp()) / "runs.db") as store:
    ...     store.list_runs()
    []
    """

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout: float = 10.0,
        synchronous: str = "FULL",
        schema_version: int = SCHEMA_VERSION,
        read_only: bool = False,
    ) -> None:
        """Open (creating if needed) the database file at ``path`` (see ``SQLiteDatabase``)."""
        database = SQLiteDatabase(
            path,
            busy_timeout=busy_timeout,
            synchronous=synchronous,
            schema_version=schema_version,
            read_only=read_only,
        )
        super().__init__(SQLCore(database))
