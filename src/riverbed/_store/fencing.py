"""Fenced writes and the run history, in SQL both databases share.

A run is written by the one process that holds its lease (``Lease``: the run is RUNNING,
under this worker, in this attempt). Each write a run makes runs ``fence`` first, in the
same transaction: an UPDATE of the run's row that matches only while the lease is held,
which also locks the row until the commit, so that no takeover can slip in between the
check and the write. A write under a lost lease changes nothing and raises
``LeaseLostError`` saying where the run stands.

The same UPDATE stamps the row with the write's token (``retry``): a write retried after
its commit's acknowledgement was lost recognizes its own earlier commit (``wrote``).

Every status change appends a ``RunTransition`` to ``riverbed_run_history``
(``record_transition``), in the transaction that makes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from riverbed._errors import LeaseLostError, RunNotFoundError
from riverbed._records import Lease, RunStatus, StageError
from riverbed._store.codec import HISTORY_COLUMNS, Codec

if TYPE_CHECKING:
    from datetime import datetime

__all__ = [
    "INSERT_HISTORY",
    "Tx",
    "fence",
    "lease_lost",
    "record_transition",
    "wrote",
]

INSERT_HISTORY = (
    f"INSERT INTO riverbed_run_history ({', '.join(HISTORY_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(HISTORY_COLUMNS))})"
)

HOLDS = "run_id = ? AND worker = ? AND attempt = ? AND status = 'running'"
"""The WHERE clause that matches a run's row only while ``Lease`` holds it."""


class Tx(Protocol):
    """A cursor inside one transaction, with ``?`` placeholders whatever the dialect."""

    def execute(self, sql: str, params: Sequence[Any] = (), /) -> object:
        """Run one statement."""

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]], /) -> object:
        """Run one statement once per row of parameters."""

    def fetchone(self) -> Any:
        """The next row of the last statement (a tuple), or None."""

    def fetchall(self) -> list[Any]:
        """The remaining rows of the last statement (tuples)."""

    @property
    def rowcount(self) -> int:
        """Rows the last statement changed."""


def holds(lease: Lease) -> tuple[Any, ...]:
    """The parameters of ``HOLDS`` for ``lease``."""
    return (lease.run_id, lease.worker, lease.attempt)


def fence(tx: Tx, lease: Lease | None, token: str, url: str) -> None:
    """Check, inside ``tx``, that ``lease`` still holds its run, and lock and stamp the
    run's row with ``token``; ``LeaseLostError`` if it does not hold it. No lease: an
    unfenced write (tests, tools), nothing checked."""
    if lease is None:
        return
    tx.execute(f"UPDATE riverbed_runs SET write_token = ? WHERE {HOLDS}", (token, *holds(lease)))
    if tx.rowcount != 1:
        raise lease_lost(tx, lease, url)


def lease_lost(tx: Tx, lease: Lease, url: str) -> LeaseLostError | RunNotFoundError:
    """The error saying why ``lease`` no longer holds its run (read inside ``tx``)."""
    tx.execute(
        "SELECT status, worker, attempt FROM riverbed_runs WHERE run_id = ?", (lease.run_id,)
    )
    row = tx.fetchone()
    if row is None:
        return RunNotFoundError(f"no run {lease.run_id!r} in {url}", run_id=lease.run_id, url=url)
    status, worker, attempt = RunStatus(row[0]), row[1], row[2]
    if status is RunStatus.RUNNING:
        why = f"its lease expired and {worker} took it over (attempt {attempt})"
    elif status is RunStatus.SCHEDULED:
        why = "it was put back into the queue"
    else:
        why = f"it is {status.value} now" + (
            " (cancelled: `riverbed runs cancel`)" if status is RunStatus.CANCELLED else ""
        )
    return LeaseLostError(
        f"run {lease.run_id}: this process ({lease.worker}, attempt {lease.attempt}) no "
        f"longer holds it: {why}; it stops without changing the run",
        run_id=lease.run_id,
        status=status,
        holder=worker if status is RunStatus.RUNNING else None,
    )


def wrote(tx: Tx, run_id: str, token: str) -> bool:
    """True if the write marked ``token`` is committed on run ``run_id``'s row (an earlier
    try of a retried write went through)."""
    tx.execute("SELECT 1 FROM riverbed_runs WHERE run_id = ? AND write_token = ?", (run_id, token))
    return tx.fetchone() is not None


def record_transition(
    tx: Tx,
    codec: Codec,
    run_id: str,
    attempt: int,
    status: RunStatus,
    at: datetime,
    worker: str | None,
    error: StageError | None = None,
) -> None:
    """Append one entry to the run's history, inside ``tx``."""
    tx.execute(
        INSERT_HISTORY,
        (run_id, attempt, status.value, codec.time_in(at, "at"), worker, codec.error_in(error)),
    )
