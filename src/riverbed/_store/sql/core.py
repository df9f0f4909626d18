"""What every part of a SQL store shares: the database's transactions and dialect, the
codec, retries and fenced writes.

A backend provides a ``Database``: ``write()``, a transaction that a concurrent writer of
the same run cannot interleave with, and ``statement()``, a cursor whose statements each
stand alone as their own transaction (reads, and writes of one statement), plus the few
pieces of SQL that differ between SQLite and PostgreSQL (row locks, the clock leases are
measured with). ``SQLCore`` wraps it with what every part of the store does the same way:
retry through transient errors (``retry``), fence a run's writes by its lease and record
its status changes in its history (``fencing``), convert records (``codec``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from riverbed._errors import RunNotFoundError
from riverbed._records import Lease, RunRecord, RunStatus
from riverbed._store.codec import Codec
from riverbed._store.fencing import Tx, fence, record_transition, wrote
from riverbed._store.retry import new_token, retrying
from riverbed._store.schema import Dialect

__all__ = ["MIN_PREFIX", "Database", "SQLCore"]

T = TypeVar("T")

MIN_PREFIX = 6
"""The shortest run id prefix ``get_run`` looks up (like git's short hashes)."""


class Database(Protocol):
    """One backend's connection to its database, and the SQL only that database speaks."""

    url: str
    """Where the database is, without any password."""
    dialect: Dialect
    for_update: str
    """Appended to the SELECT that reads a run before changing its status: the row lock on
    PostgreSQL; empty on SQLite, whose ``BEGIN IMMEDIATE`` already excludes other writers."""
    skip_locked: str
    """Appended to the queue's SELECTs: ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so that
    concurrent workers pass over each other's rows instead of waiting or taking them."""
    integrity_errors: tuple[type[Exception], ...]
    """The driver's errors for a violated unique key (a run id taken)."""

    def write(self) -> AbstractContextManager[Tx]:
        """A write transaction, committed when the block ends and rolled back on error.
        Transient failures (connection lost, database locked) raise
        ``StoreUnavailableError``, which ``SQLCore.retrying`` retries."""

    def statement(self) -> AbstractContextManager[Tx]:
        """A cursor whose every statement is its own transaction."""

    def now(self) -> tuple[str, tuple[Any, ...]]:
        """SQL for "now" and its parameters. Leases are compared with one clock: the
        database's on PostgreSQL, since the machines' clocks differ; this machine's on
        SQLite, which only this machine's processes share."""

    def lease_end(self, lease_seconds: float) -> tuple[str, tuple[Any, ...]]:
        """SQL for "now + lease_seconds" and its parameters."""

    def close(self) -> None:
        """Release the connections."""


class SQLCore:
    """The database, the codec, retries and fenced writes, shared by every part of a
    ``SQLStore``."""

    def __init__(self, database: Database) -> None:
        """Wrap ``database``; records are converted for its dialect."""
        self.database = database
        self.url = database.url
        self.codec = Codec(database.dialect)
        self.retry_seconds: float | None = None
        """How long a call keeps trying through transient errors (None: ``RETRY_SECONDS``)."""

    def retrying(self, attempt: Callable[[bool], T]) -> T:
        """``attempt(retry)``, retried through transient errors (see ``retry``)."""
        return retrying(f"the store {self.url}", attempt, url=self.url, seconds=self.retry_seconds)

    def read(self, read: Callable[[Tx], T]) -> T:
        """``read(tx)`` in a statement cursor, retried through transient errors."""

        def attempt(retry: bool) -> T:
            with self.database.statement() as tx:
                return read(tx)

        return self.retrying(attempt)

    def write(self, write: Callable[[Tx], T]) -> T:
        """``write(tx)`` in one write transaction, retried through transient errors: for
        writes that are idempotent (applying twice changes nothing more)."""

        def attempt(retry: bool) -> T:
            with self.database.write() as tx:
                return write(tx)

        return self.retrying(attempt)

    def fenced(self, run_id: str, lease: Lease | None, write: Callable[[Tx], object]) -> None:
        """``write(tx)`` in one transaction fenced by ``lease``, retried through transient
        errors without applying twice."""
        token = new_token()

        def attempt(retry: bool) -> None:
            with self.database.write() as tx:
                if retry and lease is not None and wrote(tx, run_id, token):
                    return
                fence(tx, lease, token, self.url)
                write(tx)

        self.retrying(attempt)

    def record(self, tx: Tx, run: RunRecord) -> None:
        """Append ``run``'s current status to its history, inside ``tx``."""
        record_transition(
            tx,
            self.codec,
            run.run_id,
            run.attempt,
            run.status,
            datetime.now(UTC),
            run.worker,
            run.error if run.status is RunStatus.FAILED else None,
        )

    def not_found(self, run_id: str, candidates: Sequence[str] = ()) -> RunNotFoundError:
        """The error for a run id (or prefix) that matches no run, or several."""
        if candidates:
            listed = ", ".join(candidates[:5]) + (", ..." if len(candidates) > 5 else "")
            message = (
                f"run id prefix {run_id!r} is ambiguous in {self.url}: it matches {listed}; "
                "give more characters"
            )
        else:
            message = (
                f"no run {run_id!r} in {self.url}; `riverbed runs list` shows the stored runs "
                f"(ids, or unique prefixes of at least {MIN_PREFIX} characters, are accepted)"
            )
        return RunNotFoundError(message, run_id=run_id, url=self.url, candidates=tuple(candidates))
