"""Hearing other processes' changes to runs: ``LISTEN`` on the channel that the runs
table's trigger notifies (schema 8: a run queued, a step run changing status), on a
connection of its own, in a thread that bumps the database's ``Changes`` by the topic
each notification names.

A listener lives while someone waits: the first waiter of a database in this process
starts it (``Changes.on_wait``), and it stops once no one has waited for ``IDLE``
seconds, so a store that is never closed keeps no connection open for nothing. A lost
connection (the server restarting) is made again with backoff; until then waiters fall
back on their timeouts, and once it is back every waiter looks again, since changes may
have been missed (so too when a listener starts).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import psycopg

from riverbed._store.changes import Changes

__all__ = ["CHANNEL", "IDLE", "Listeners"]

CHANNEL = "riverbed_runs"
"""The channel of the runs table's trigger (named in the schema's migration 8)."""

IDLE = 10.0
"""Seconds without a waiter after which a listener stops."""

_WAIT = 0.5
"""Seconds of one wait for notifications, between two looks at whether to stop."""

logger = logging.getLogger("riverbed.store")


class Listeners:
    """The listeners of this process, one per database."""

    _running: dict[str, threading.Thread] = {}
    _lock = threading.Lock()

    @classmethod
    def ensure(cls, url: str, name: str, changes: Changes) -> None:
        """Start the listener of ``url`` (``name``: the URL without its password, for
        logs) unless it runs."""
        with cls._lock:
            running = cls._running.get(url)
            # Not alive: in a process forked from one that listened, or after a crash.
            if running is None or not running.is_alive():
                thread = threading.Thread(
                    target=cls._listen, args=(url, name, changes), name="riverbed-listen",
                    daemon=True,
                )  # fmt: skip
                cls._running[url] = thread
                thread.start()

    @classmethod
    def _idle(cls, url: str, changes: Changes) -> bool:
        """Whether no one waited for ``IDLE`` seconds: if so, the listener is gone from
        the registry (the next waiter starts another)."""
        with cls._lock:
            if changes.waiting or time.monotonic() - changes.last_wait < IDLE:
                return False
            del cls._running[url]
            return True

    @classmethod
    def _listen(cls, url: str, name: str, changes: Changes) -> None:
        backoff = 0.1
        while not cls._idle(url, changes):
            try:
                with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    changes.bump(None)  # what came while no one listened: look again
                    backoff = 0.1
                    if _hear(conn, changes, lambda: cls._idle(url, changes)):
                        return
            # Whatever went wrong, waiters fall back on their timeouts meanwhile.
            except Exception as error:  # noqa: BLE001
                logger.info("store %s: not hearing changes (%s); retrying", name, error)
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)


def _hear(conn: psycopg.Connection[Any], changes: Changes, idle: Any) -> bool:
    """Bump ``changes`` by each notification's topic until ``idle()``; True then."""
    while True:
        for notification in conn.notifies(timeout=_WAIT):
            changes.bump(notification.payload)
        if idle():
            return True
