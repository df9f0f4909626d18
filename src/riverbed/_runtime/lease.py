"""Keeping runs' leases while they go on, whatever their stages do.

Leases are renewed from a thread of the process's own, not from a run's event loop: a
synchronous stage or workflow step that runs longer than the lease blocks the loop, and a
renewal waiting behind it would let another worker take over a run whose process is alive
(and then both would run it). The thread needs the GIL only for a moment per renewal,
which a busy Python stage gives up every few milliseconds. One thread serves every run of
the process (many concurrent workflows cost one thread, not one each), renewing each lease
every third of its length.

When a renewal finds that the lease no longer holds the run (cancelled with ``riverbed
runs cancel``, or taken over after the process was cut off from the store for longer
than the lease), the keeper calls the run's ``on_lost`` on the run's event loop, once; the
run stops, and its fenced writes could not have changed anything anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from riverbed._errors import StoreError
from riverbed._records import Lease
from riverbed._store.protocol import Store

__all__ = ["LEASE_SECONDS", "Keeping", "keep"]

logger = logging.getLogger("riverbed")

LEASE_SECONDS = float(os.environ.get("RIVERBED_LEASE_SECONDS", "30"))
"""How long a run's lease lasts without a renewal (RIVERBED_LEASE_SECONDS, 30 s by
default); renewals come every third of it. A worker that died is noticed when it ends."""


@dataclass(eq=False)
class Keeping:
    """One lease being kept; ``stop`` it when the run ends."""

    store: Store
    lease: Lease
    on_lost: Callable[[], None]
    loop: asyncio.AbstractEventLoop | None
    seconds: float
    due: float = field(default=0.0)
    lost: bool = False
    """Set once a renewal found that the lease no longer holds the run."""

    def stop(self) -> None:
        """Stop keeping the lease (the run ended, or handed it back)."""
        _KEEPER.remove(self)

    def renew(self) -> None:
        """Renew the lease now (on the keeper's thread)."""
        try:
            held = self.store.renew_lease(self.lease, self.seconds)
        except StoreError as error:  # the store stays away: the fenced writes will tell
            logger.warning("run %s: could not renew its lease: %s", self.lease.run_id, error)
            return
        if held or not _KEEPER.holds(self):
            return
        self.lost = True
        _KEEPER.remove(self)
        logger.warning(
            "run %s: this process no longer holds its lease (cancelled, or taken over): stopping",
            self.lease.run_id,
        )
        if self.loop is None:
            self.on_lost()
            return
        with contextlib.suppress(RuntimeError):  # the loop closed: the run has ended anyway
            self.loop.call_soon_threadsafe(self.on_lost)


class _Keeper:
    """The process's thread that renews every kept lease when it is due."""

    def __init__(self) -> None:
        self._kept: set[Keeping] = set()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def add(self, keeping: Keeping) -> None:
        with self._changed:
            keeping.due = time.monotonic() + keeping.seconds / 3
            self._kept.add(keeping)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="riverbed-leases", daemon=True
                )
                self._thread.start()
            self._changed.notify()

    def remove(self, keeping: Keeping) -> None:
        with self._changed:
            self._kept.discard(keeping)

    def holds(self, keeping: Keeping) -> bool:
        with self._changed:
            return keeping in self._kept

    def _run(self) -> None:
        while True:
            with self._changed:
                now = time.monotonic()
                due = [k for k in self._kept if k.due <= now]
                for keeping in due:
                    keeping.due = now + keeping.seconds / 3
                if not due:
                    soonest = min((k.due for k in self._kept), default=now + 60)
                    self._changed.wait(soonest - now)
                    continue
            for keeping in due:  # outside the lock: a renewal waits for the store
                keeping.renew()


_KEEPER = _Keeper()


def keep(
    store: Store,
    lease: Lease,
    *,
    on_lost: Callable[[], None],
    loop: asyncio.AbstractEventLoop | None = None,
    seconds: float = LEASE_SECONDS,
) -> Keeping:
    """Renew ``lease`` every third of ``seconds`` until the returned ``Keeping`` is
    stopped; ``on_lost`` (on ``loop``, if given) once it no longer holds its run."""
    keeping = Keeping(store, lease, on_lost, loop, seconds)
    _KEEPER.add(keeping)
    return keeping
