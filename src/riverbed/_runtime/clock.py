"""Time as the runners see it: a clock they ask for the time and sleep on.

The system clock is the default; ``riverbed.testing.TestClock`` replaces it in tests so that
retries' backoff, source pauses and (later) windows run without real waiting.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """What runners need of time."""

    def now(self) -> float:
        """Seconds since the epoch (wall time, for records and event time)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for durations and deadlines)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
