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

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from riverbed._errors import StoreError, StoreUnavailableError
from riverbed._store.codec import Codec
from riverbed._store.schema import (
    SCHEMA_VERSION,
    Dialect,
    check_not_newer,
    migrate,
    stored_version,
)
from riverbed._store.sql import SQLCore, SQLStore, Tx

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
        _create_private(self.path, self.url)
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
        advice = _advice(primary, self.path)
        if advice is None:
            return StoreError(f"SQLite store {self.path}: {exc}", url=self.url)
        return StoreError(f"{advice} (SQLite says: {exc})", url=self.url)


def _advice(code: int | None, path: Path) -> str | None:
    """What an error with SQLite's primary result ``code`` means for the store at ``path``,
    and what to do; None for errors that need no more than SQLite's own words."""
    elsewhere = "point --store (or RIVERBED_STORE) at another file"
    if code == sqlite3.SQLITE_NOTADB:
        return (
            f"{path} is not a SQLite database: it is some other file, or its header is "
            f"overwritten. Check the path; {elsewhere}, or move the file away and riverbed "
            "creates a new store there"
        )
    if code == sqlite3.SQLITE_CORRUPT:
        return (
            f"the SQLite store {path} is damaged (truncated or partly overwritten: a full "
            "disk, an incomplete copy). Restore it from a backup, or save what is left with "
            f"`sqlite3 {path} .recover | sqlite3 recovered.db` and use that file; or move "
            f"it away and riverbed creates a new store there"
        )
    if code in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM):
        return (
            f"the SQLite store {path} cannot be written by this process: the file or its "
            f"directory {path.parent} is read-only for it (SQLite also writes {path.name}-wal "
            f"and {path.name}-shm beside the file). Commands that only read (`riverbed runs "
            "list`, `runs show`, `dead-letters list`) work on it; to run or change runs, "
            f"give this user write access to both, or {elsewhere}"
        )
    if code == sqlite3.SQLITE_CANTOPEN:
        return (
            f"cannot open the SQLite store {path}: check that its directory {path.parent} "
            f"exists and that this user may read it (and write it, to record runs), or "
            f"{elsewhere}"
        )
    return None


def _create_private(path: Path, url: str) -> None:
    """Create the store's file, empty and readable by its owner only (0600), unless it
    exists: SQLite would create it with the umask's mode, often world-readable."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    except OSError as exc:
        raise StoreError(
            f"cannot create the SQLite store {path}: {exc.strerror}; check that its "
            f"directory {path.parent} exists and this user may write it, or point --store "
            "(or RIVERBED_STORE) at another file",
            url=url,
        ) from exc
    os.close(descriptor)
