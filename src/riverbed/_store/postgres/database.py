"""The connection to a PostgreSQL database: a pool of autocommit connections, its
transactions, its errors as the store's, and the SQL only PostgreSQL speaks (row locks,
the database's clock). The ``Database`` of a ``PostgresStore``."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import psycopg
import psycopg_pool

from riverbed._errors import StoreError, StoreUnavailableError
from riverbed._store.fencing import Tx
from riverbed._store.schema import (
    SCHEMA_VERSION,
    Dialect,
    check_not_newer,
    migrate,
    stored_version,
)
from riverbed._store.url import redact

__all__ = ["TRANSIENT", "PgTx", "PostgresDatabase", "pg"]

POOL_WAIT = 2.0
"""Seconds a call waits for a pooled connection before it counts as a transient failure."""

_MIGRATION_LOCK = "SELECT pg_advisory_xact_lock(hashtext('riverbed_migrate:' || current_schema()))"

TRANSIENT = (
    psycopg.OperationalError,
    psycopg.errors.SerializationFailure,
    psycopg.errors.DeadlockDetected,
    psycopg_pool.PoolTimeout,
)
"""Errors that waiting (and reconnecting) may cure."""


@functools.lru_cache(maxsize=256)
def pg(sql: str) -> str:
    """A statement written with ``?`` placeholders, in psycopg's ``%s`` style."""
    return sql.replace("?", "%s")


class PgTx:
    """A psycopg cursor that takes ``?`` placeholders."""

    __slots__ = ("_cursor",)

    def __init__(self, cursor: psycopg.Cursor[Any]) -> None:
        """Wrap ``cursor``."""
        self._cursor = cursor

    def execute(self, sql: str, params: Sequence[Any] = (), /) -> object:
        """Run one statement."""
        return self._cursor.execute(pg(sql), params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]], /) -> object:
        """Run one statement once per row of parameters."""
        self._cursor.executemany(pg(sql), rows)
        return None

    def fetchone(self) -> Any:
        """The next row of the last statement, or None."""
        return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        """The remaining rows of the last statement."""
        return self._cursor.fetchall()

    @property
    def rowcount(self) -> int:
        """Rows the last statement changed."""
        return self._cursor.rowcount


class PostgresDatabase:
    """A pool of connections to one PostgreSQL database (see the package doc)."""

    dialect = Dialect.POSTGRESQL
    for_update = " FOR UPDATE"
    skip_locked = " FOR UPDATE SKIP LOCKED"
    integrity_errors: tuple[type[Exception], ...] = (psycopg.errors.UniqueViolation,)

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
        """Connect, bring the schema up to date, then open the pool. ``schema_version`` stops
        migrations early, for tests of upgrades. ``read_only``: every session is read-only
        (``default_transaction_read_only``), and the schema is only checked, unless it must
        be created or upgraded."""
        self.url = redact(url)
        self.read_only = read_only
        self._migrate(url, max(1, round(connect_timeout)), schema_version)
        self._pool = psycopg_pool.ConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            kwargs={"autocommit": True, "prepare_threshold": 0},
            configure=_read_only_session if read_only else None,
            # No check as a connection is handed out: it would cost a round trip per call
            # (4 of the 8 of a 3-step workflow). A connection the server dropped (a
            # restart) fails its first statement with an OperationalError instead, before
            # anything reached the server; the pool discards it and the call is retried
            # on another (every write recognizes its own earlier commit: see ``retry``).
            # Short: a call that cannot get a connection is retried with backoff (see
            # ``retry``), which is what bounds how long a run waits for its store.
            timeout=min(connect_timeout, POOL_WAIT),
            open=True,
            name="riverbed-store",
        )

    def _migrate(self, url: str, timeout: int, schema_version: int) -> None:
        """Check the schema, and create or upgrade it unless the store is read-only and
        up to date."""
        # The first connection is made by hand: its error (refused, bad password, no such
        # database) says more than a pool's timeout would.
        try:
            with psycopg.connect(url, connect_timeout=timeout) as conn, conn.transaction():
                tx = PgTx(conn.cursor())
                found = stored_version(tx, Dialect.POSTGRESQL) if self.read_only else 0
                check_not_newer(found, self.url)
                if not self.read_only or found < schema_version:
                    tx.execute(_MIGRATION_LOCK)
                    migrate(tx, Dialect.POSTGRESQL, self.url, target=schema_version)
        except psycopg.Error as exc:
            # Refused, unreachable, out of connections: the server is away, not the URL
            # wrong (the caller cannot tell a down server from a mistyped host).
            error = StoreUnavailableError if isinstance(exc, TRANSIENT) else StoreError
            raise error(
                f"cannot open the PostgreSQL store at {self.url}: {_one_line(exc)}", url=self.url
            ) from exc

    def close(self) -> None:
        """Close the pool's connections. The store cannot be used afterwards."""
        self._pool.close()

    def connection(self) -> AbstractContextManager[psycopg.Connection[Any]]:
        """A pooled autocommit connection; driver errors are the caller's to convert."""
        return self._pool.connection()

    @contextmanager
    def write(self) -> Iterator[Tx]:
        """A transaction on a pooled connection."""
        if self.read_only:
            raise StoreError(
                f"the PostgreSQL store {self.url} was opened read-only (open_store(url, "
                "read_only=True)), so it cannot be written; open it without read_only",
                url=self.url,
            )
        try:
            with self._pool.connection() as conn, conn.transaction():
                yield PgTx(conn.cursor())
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            raise self.error(exc) from exc

    @contextmanager
    def statement(self) -> Iterator[Tx]:
        """A cursor in autocommit: each statement is a transaction of its own (a
        consistent snapshot for a read), without BEGIN/COMMIT round trips."""
        try:
            with self._pool.connection() as conn:
                yield PgTx(conn.cursor())
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            raise self.error(exc) from exc

    def error(self, exc: Exception) -> StoreError:
        """A driver error as the store's: connection-level ones (the server restarting or
        unreachable, the pool out of connections) and serialization failures are
        ``StoreUnavailableError``, which every call retries; the rest are ``StoreError``."""
        if isinstance(exc, TRANSIENT):  # retried; the retry's own error names the store
            return StoreUnavailableError(_one_line(exc) or type(exc).__name__, url=self.url)
        return StoreError(f"PostgreSQL store {self.url}: {_one_line(exc)}", url=self.url)

    def now(self) -> tuple[str, tuple[Any, ...]]:
        """The database's clock: the workers' machines' clocks differ."""
        return "clock_timestamp()", ()

    def lease_end(self, lease_seconds: float) -> tuple[str, tuple[Any, ...]]:
        """Now + ``lease_seconds`` by the database's clock."""
        return "clock_timestamp() + make_interval(secs => ?)", (float(lease_seconds),)


def _one_line(exc: Exception) -> str:
    """A driver error's message on one line: libpq's span several (a hint, a detail)."""
    return "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())


def _read_only_session(conn: psycopg.Connection[Any]) -> None:
    """Make every transaction of a pooled connection read-only (a read-only store)."""
    conn.execute("SET default_transaction_read_only = on")
