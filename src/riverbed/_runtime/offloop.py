"""Store writes made off the event loop: a checkpoint's commit runs in another thread
while the loop goes on processing events.

A thread that waits on I/O gives up the GIL, and must get it back to go on. Python hands it
over only every switch interval (5 ms by default) while another thread keeps it busy, and a
loop running a fused chain always does: a commit of a dozen statements then took ten times
as long in a thread as on the loop (measured: 21 ms instead of 2 for SQLite, seconds for
thousands of rows). While a commit is in flight, the interval is made ``SWITCH_SECONDS``,
so the committing thread gets the GIL back promptly; the loop pays a switch per interval
only while a thread actually waits for the GIL. The interval the process had is put back
when the last commit in flight ends.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["SWITCH_SECONDS", "let_commits_run", "off_loop"]

T = TypeVar("T")

SWITCH_SECONDS = 0.001
"""The GIL switch interval while a commit is in flight (measured: a 12-statement SQLite
commit beside a busy loop took 6 to 21 ms at 5 ms, 4 ms at 1 ms, no less below)."""


class _PromptSwitches:
    """Counts the commits in flight; the first lowers the switch interval, the last puts
    the process's own back."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active = 0
        self._saved = 0.0

    @property
    def active(self) -> bool:
        """True while a commit is in flight."""
        return self._active > 0

    def __enter__(self) -> None:
        with self._lock:
            if self._active == 0:
                self._saved = sys.getswitchinterval()
                sys.setswitchinterval(min(self._saved, SWITCH_SECONDS))
            self._active += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._active -= 1
            if self._active == 0:
                sys.setswitchinterval(self._saved)


_PROMPT = _PromptSwitches()


def let_commits_run() -> None:
    """Called by a runner between two batches: while a commit is in flight, give up the
    GIL for a moment, so that the committing thread runs now. The switch interval alone
    did not do it beside a fused loop: a commit due one second into a run of several was
    committed when the run ended (measured on SQLite and PostgreSQL; with this, in
    milliseconds). Costs nothing while no commit is in flight."""
    if _PROMPT.active:
        time.sleep(0)


async def off_loop(write: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``write(*args, **kwargs)`` in another thread, with prompt GIL switches while it
    runs; its result, or its error."""
    with _PROMPT:
        return await asyncio.to_thread(write, *args, **kwargs)
