"""The SQLite store: one file, zero set-up, shared safely by the processes of one machine.

Settings, and why:

- ``journal_mode=WAL``: readers never block the writer nor the writer them, and a commit
  appends to the log instead of rewriting pages.
- ``synchronous=FULL``: every commit fsyncs the log, so a committed checkpoint or workflow
  step survives power loss, as DESIGN.md §3 promises. ``NORMAL`` would survive a killed
  process (kill -9) but could lose the last commits to a power cut; docs/store.md has the
  measured cost of the difference.
- ``busy_timeout`` (10 s): a process that finds the database locked by another waits for it
  instead of failing at once.
- Every write transaction starts with ``BEGIN IMMEDIATE``, which takes the database's write
  lock up front: a read-then-write (a status transition, a claim) cannot interleave with
  another process's, and no deadlock can arise from two readers upgrading at once.

One connection serves all threads of a process, behind a lock: SQLite runs one writer at a
time anyway, and the engine's calls are short.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from riverbed._errors import StoreError, StoreUnavailableError
from riverbed._store.codec import Codec
from riverbed._store.schema import SCHEMA_VERSION, Dialect, migrate
from riverbed._store.sql import SQLStore, Tx

__all__ = ["SQLiteStore"]


class SQLiteStore(SQLStore):
    """A store in one SQLite file (see the module doc for its settings).

    >>> import tempfile, pathlib
    >>> with SQLiteStore(pathlib.Path(tempfile.mkdtemp()) / "runs.db") as store:
    ...     store.list_runs()
    []
    """

    _integrity_errors = (sqlite3.IntegrityError,)

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout: float = 10.0,
        synchronous: str = "FULL",
        schema_version: int = SCHEMA_VERSION,
    ) -> None:
        """Open (creating if needed) the database file at ``path`` and bring its schema up
        to date. ``synchronous`` is SQLite's pragma (FULL, NORMAL, OFF): change it only to
        measure. ``schema_version`` stops migrations early, for tests of upgrades."""
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        self._codec = Codec(Dialect.SQLITE)
        self._lock = threading.Lock()
        if synchronous.upper() not in ("FULL", "NORMAL", "OFF", "EXTRA"):
            raise ValueError(f"synchronous={synchronous!r}: use FULL, NORMAL, OFF or EXTRA")
        try:
            # isolation_level=None: the driver opens no transactions of its own; we BEGIN.
            self._conn = sqlite3.connect(
                self.path,
                timeout=busy_timeout,
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            raise StoreError(
                f"cannot open the SQLite store at {self.path}: {exc}; check that its "
                "directory exists and is writable",
                url=self.url,
            ) from exc
        try:
            self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute(f"PRAGMA synchronous = {synchronous.upper()}")
            with self._write() as tx:
                migrate(tx, Dialect.SQLITE, self.url, target=schema_version)
        except BaseException:
            self._conn.close()
            raise

    def close(self) -> None:
        """Close the connection. The store cannot be used afterwards."""
        with self._lock:
            self._conn.close()

    @contextmanager
    def _write(self) -> Iterator[Tx]:
        with self._lock:
            cursor = self._conn.cursor()
            try:
                cursor.execute("BEGIN IMMEDIATE")
                yield cursor
                cursor.execute("COMMIT")
            except BaseException as exc:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise self._error(exc) from exc
                raise
            finally:
                cursor.close()

    @contextmanager
    def _statement(self) -> Iterator[Tx]:
        with self._lock:
            cursor = self._conn.cursor()
            try:
                yield cursor
            except sqlite3.Error as exc:
                raise self._error(exc) from exc
            finally:
                cursor.close()

    def _error(self, exc: sqlite3.Error) -> StoreError:
        """A driver error as the store's: one that waiting may cure (the file locked by
        another process past ``busy_timeout``) is ``StoreUnavailableError``, retried."""
        message = f"SQLite store {self.path}: {exc}"
        if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
            return StoreUnavailableError(message, url=self.url)
        return StoreError(message, url=self.url)
