"""Whether a stored RUNNING run still runs, for the tools that look after a store's runs
(``riverbed runs``, a dashboard): read from its record alone (``interruption``), or
settled in the store once its process is gone (``crashed_if_dead``). Public as
``riverbed.interruption`` and ``riverbed.crashed_if_dead``.

A RUNNING run whose process died stays RUNNING in the store until something notices: its
lease expires (the process stopped renewing it), or, for a process of this machine, the
process is known to have ended (see ``riverbed._runtime.identity``).
"""

from __future__ import annotations

from datetime import UTC, datetime

from riverbed._records import RunRecord, RunStatus
from riverbed._runtime import restore
from riverbed._runtime.identity import process_gone
from riverbed._store import Store

__all__ = ["crashed_if_dead", "interruption"]


def interruption(run: RunRecord, now: datetime | None = None) -> str | None:
    """Why the RUNNING ``run`` runs no more, read from its record alone (nothing is
    written): ``"lease expired HH:MM:SS"`` (UTC), ``"no lease"``, or ``"process gone"`` (it
    ran on this machine and its process has ended). None if it may still be running, or
    is not RUNNING.

    >>> import riverbed as rb
    >>> from datetime import UTC, datetime
    >>> run = rb.RunRecord(run_id="r1", flow="f", flow_version="v",
    ...                    status=rb.RunStatus.RUNNING, created_at=datetime.now(UTC))
    >>> rb.interruption(run)
    'no lease'
    """
    if run.status is not RunStatus.RUNNING:
        return None
    now = now or datetime.now(UTC)
    if run.lease_until is None:
        return "no lease"
    if run.lease_until < now:
        return f"lease expired {run.lease_until.astimezone(UTC):%H:%M:%S}"
    if process_gone(run.worker):
        return "process gone"
    return None


def crashed_if_dead(store: Store, run: RunRecord) -> RunRecord:
    """``run`` as read a moment ago, settled: if it is RUNNING in a process that is gone
    (``interruption`` says why), it is recorded CRASHED and returned so, only while that
    process still holds it (the write is fenced by the lease that was read). A run still
    running somewhere, or taken over by another process since it was read, is refused
    with ``RunNotResumableError`` saying who has it; other statuses come back as they
    are. What ``riverbed runs resume`` and ``runs recover`` do before resuming a run."""
    return restore.crashed_if_dead(store, run)


for _public in (interruption, crashed_if_dead):
    _public.__module__ = "riverbed"
