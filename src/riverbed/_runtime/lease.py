"""Keeping a run's lease while the run goes on, whatever its stages do.

The lease is renewed from a thread of its own, not from the run's event loop: a
synchronous stage or workflow step that runs longer than the lease blocks the loop, and a
renewal waiting behind it would let another worker take over a run whose process is alive
(and then both would run it). The thread needs the GIL only for a moment per renewal,
which a busy Python stage gives up every few milliseconds.

When a renewal finds that the lease no longer holds the run (cancelled with
``riverbed runs cancel``, or taken over after the process was cut off from the store for
longer than the lease), the keeper calls ``on_lost`` on the run's event loop, once; the
run stops, and its fenced writes could not have changed anything anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Callable

from riverbed._errors import StoreError
from riverbed._store.protocol import Store
from riverbed._store.records import Lease

__all__ = ["LEASE_SECONDS", "LeaseKeeper"]

logger = logging.getLogger("riverbed")

LEASE_SECONDS = float(os.environ.get("RIVERBED_LEASE_SECONDS", "30"))
"""How long a run's lease lasts without a renewal (RIVERBED_LEASE_SECONDS, 30 s by
default); renewals come every third of it. A worker that died is noticed when it ends."""


class LeaseKeeper:
    """Renews ``lease`` every third of ``seconds`` from a daemon thread until ``stop``."""

    def __init__(
        self,
        store: Store,
        lease: Lease,
        *,
        on_lost: Callable[[], None],
        loop: asyncio.AbstractEventLoop | None = None,
        seconds: float = LEASE_SECONDS,
    ) -> None:
        self.store = store
        self.lease = lease
        self.seconds = seconds
        self.lost = False
        """Set once a renewal found that the lease no longer holds the run."""
        self._on_lost = on_lost
        self._loop = loop
        self._stopped = threading.Event()
        self._thread = threading.Thread(
            target=self._keep, name=f"riverbed-lease-{lease.run_id}", daemon=True
        )

    def start(self) -> LeaseKeeper:
        """Start renewing; returns the keeper."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop renewing (the run ended, or is handing its lease back)."""
        self._stopped.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def _keep(self) -> None:
        while not self._stopped.wait(self.seconds / 3):
            try:
                held = self.store.renew_lease(self.lease, self.seconds)
            except StoreError:  # the store stays away: the fenced writes will tell
                logger.exception("run %s: could not renew its lease", self.lease.run_id)
                continue
            if not held:
                self.lost = True
                logger.warning(
                    "run %s: this process no longer holds its lease (cancelled, or taken "
                    "over): stopping",
                    self.lease.run_id,
                )
                self._notify()
                return

    def _notify(self) -> None:
        if self._loop is None:
            self._on_lost()
            return
        with contextlib.suppress(RuntimeError):  # the loop closed: the run has ended anyway
            self._loop.call_soon_threadsafe(self._on_lost)
