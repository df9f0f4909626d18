"""The connection to one SQLite file: its settings, opening it writable or read-only,
its transactions, and its errors as the store's (see the package doc for why)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from riverbed._errors import StoreError, StoreUnavailableError
from riverbed._store.codec import Codec
from riverbed._store.fencing import Tx
from riverbed._store.schema import (
    SCHEMA_VERSION,
    Dialect,
    check_not_newer,
    migrate,
    stored_version,
)
from riverbed._store.sqlite.files import advice, create_private

__all__ = ["IN_MEMORY", "SQLiteDatabase"]

IN_MEMORY = ":memory:"
"""The path of SQLite's in-memory database (``sqlite:///:memory:``): one per process,
gone when the store is closed; for examples and tests."""


class SQLiteDatabase:
    """The connection to one SQLite file, shared by the threads of a process behind a lock
    (the ``Database`` of a ``SQLiteStore``)."""

    dialect = Dialect.SQLITE
    for_update = ""  # BEGIN IMMEDIATE already excludes other writers
    skip_locked = ""
    integrity_errors: tuple[type[Exception], ...] = (sqlite3.IntegrityError,)

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout: float = 10.0,
        synchronous: str = "FULL",
        schema_version: int = SCHEMA_VERSION,
        read_only: bool = False,
    ) -> None:
        """Open (creating if needed) the database file at ``path`` and bring its schema up
        to date. ``synchronous`` is SQLite's pragma (FULL, NORMAL, OFF): change it only to
        measure. ``schema_version`` stops migrations early, for tests of upgrades.
        ``read_only``: never write to the file (a missing store, or one of an older
        schema, is created or upgraded first, which needs write access)."""
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        self.read_only = read_only
        self._codec = Codec(Dialect.SQLITE)  # for the times of leases (this machine's clock)
        self._lock = threading.Lock()
        self._busy_timeout = busy_timeout
        if synchronous.upper() not in ("FULL", "NORMAL", "OFF", "EXTRA"):
            raise ValueError(f"synchronous={synchronous!r}: use FULL, NORMAL, OFF or EXTRA")
        if read_only and str(path) == IN_MEMORY:
            raise StoreError(
                "an in-memory SQLite store (sqlite:///:memory:) starts empty and is "
                "written by this process only: opened read-only, nothing could ever be "
                "read from it; open it writable, or name a file",
                url=self.url,
            )
        if read_only:
            self._conn = self._open_read_only(schema_version)
        else:
            self._conn = self._open_writable(synchronous.upper(), schema_version)

    def _connect(self, database: str, *, uri: bool = False) -> sqlite3.Connection:
        try:
            # isolation_level=None: the driver opens no transactions of its own; we BEGIN.
            conn = sqlite3.connect(
                database,
                timeout=self._busy_timeout,
                isolation_level=None,
                check_same_thread=False,
                uri=uri,
            )
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
        return conn

    def _open_writable(self, synchronous: str, schema_version: int) -> sqlite3.Connection:
        if str(self.path) != IN_MEMORY:  # else SQLite would see a file of that name
            create_private(self.path, self.url)
        self._conn = conn = self._connect(str(self.path))
        try:
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute(f"PRAGMA synchronous = {synchronous}")
            except sqlite3.Error as exc:
                raise self._error(exc) from exc
            with self.write() as tx:
                migrate(tx, Dialect.SQLITE, self.url, target=schema_version)
        except BaseException:
            conn.close()
            raise
        return conn

    def _open_read_only(self, schema_version: int) -> sqlite3.Connection:
        """A connection that cannot write; the store is created or upgraded first if it
        must be (by a writable opening, closed at once)."""
        if not self.path.exists():
            SQLiteDatabase(self.path, busy_timeout=self._busy_timeout).close()
        uri = self.path.resolve().as_uri() + "?mode=ro"
        self._conn = conn = self._connect(uri, uri=True)
        try:
            found = self._read_version(conn)
            if found is None:  # no -shm can be made beside the file: read it as immutable
                conn.close()
                self._conn = conn = self._connect(uri + "&immutable=1", uri=True)
                found = self._read_version(conn)
            assert found is not None
            check_not_newer(found, self.url)
        except BaseException:
            conn.close()
            raise
        if found < schema_version:
            conn.close()
            self._upgrade(found, schema_version)
            return self._open_read_only(schema_version)
        return conn

    def _upgrade(self, found: int, target: int) -> None:
        """Bring an older store's schema up to ``target`` (a writable opening), for a
        read-only opening that found version ``found``."""
        try:
            SQLiteDatabase(
                self.path, busy_timeout=self._busy_timeout, schema_version=target
            ).close()
        except StoreUnavailableError:
            raise
        except StoreError as error:
            raise StoreError(
                f"the SQLite store {self.path} has schema version {found}, older than this "
                f"riverbed's {target}, and this process cannot upgrade it ({error}). Open it "
                "once with a process that may write it (any riverbed command that writes "
                "upgrades it); then it can be read here",
                url=self.url,
            ) from error

    def _read_version(self, conn: sqlite3.Connection) -> int | None:
        """The store's schema version, or None if this read-only connection cannot read
        the file because SQLite cannot create its ``-shm`` file in a read-only directory
        (and, with no write-ahead log beside it, immutable reading is exact)."""
        cursor = conn.cursor()
        try:
            return stored_version(cursor, Dialect.SQLITE)
        except sqlite3.Error as exc:
            code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
            wal = Path(f"{self.path}-wal")
            wal_empty = not wal.exists() or wal.stat().st_size == 0
            if code in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN) and wal_empty:
                return None
            raise self._error(exc) from exc
        finally:
            cursor.close()

    def close(self) -> None:
        """Close the connection. The store cannot be used afterwards."""
        with self._lock:
            self._conn.close()

    def now(self) -> tuple[str, tuple[Any, ...]]:
        """This machine's clock, which only this machine's processes share."""
        return "?", (self._codec.time_in(datetime.now(UTC), "now"),)

    def lease_end(self, lease_seconds: float) -> tuple[str, tuple[Any, ...]]:
        """Now + ``lease_seconds`` by this machine's clock."""
        until = datetime.now(UTC) + timedelta(seconds=lease_seconds)
        return "?", (self._codec.time_in(until, "lease_until"),)

    @contextmanager
    def write(self) -> Iterator[Tx]:
        """A ``BEGIN IMMEDIATE`` transaction: it holds the database's write lock."""
        if self.read_only:
            raise StoreError(
                f"the SQLite store {self.path} was opened read-only (open_store(url, "
                "read_only=True)), so it cannot be written; open it without read_only",
                url=self.url,
            )
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
    def statement(self) -> Iterator[Tx]:
        """A cursor outside any transaction: each statement commits alone."""
        with self._lock:
            cursor = self._conn.cursor()
            try:
                yield cursor
            except sqlite3.Error as exc:
                raise self._error(exc) from exc
            finally:
                cursor.close()

    def _error(self, exc: sqlite3.Error) -> StoreError:
        """A driver error as the store's, naming the file and what to do: one that waiting
        may cure (the file locked by another process past ``busy_timeout``) is
        ``StoreUnavailableError``, retried."""
        code = getattr(exc, "sqlite_errorcode", None)
        primary = code & 0xFF if code is not None else None
        if primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or "locked" in str(exc):
            return StoreUnavailableError(f"SQLite store {self.path}: {exc}", url=self.url)
        meaning = advice(primary, self.path)
        if meaning is None:
            return StoreError(f"SQLite store {self.path}: {exc}", url=self.url)
        return StoreError(f"{meaning} (SQLite says: {exc})", url=self.url)
