"""Riding out a store's short outages: a database restarting, a network cut, a file locked
by another process.

Every store call is attempted again, with exponential backoff, while the store answers
with a transient error, for at most ``RETRY_SECONDS``; then ``StoreUnavailableError``
names the store and says the run stays resumable. Retrying is safe because every write is
idempotent or recognizes itself: a write to a run's row stamps it with a fresh token, and
a retry whose earlier try's commit went through (the connection dropped while the commit
was acknowledged) finds its token and does not apply twice.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable
from typing import TypeVar

from riverbed._errors import StoreUnavailableError

__all__ = ["RETRY_SECONDS", "new_token", "retrying"]

logger = logging.getLogger("riverbed")

T = TypeVar("T")

RETRY_SECONDS = float(os.environ.get("RIVERBED_STORE_RETRY_SECONDS", "30"))
"""How long a store call keeps trying through transient errors (RIVERBED_STORE_RETRY_SECONDS,
30 s by default): longer than a database restart or a fail-over, shorter than anyone would
wait for a run that cannot write."""

FIRST_DELAY = 0.05
MAX_DELAY = 2.0


def new_token() -> str:
    """A token that marks one logical write (kept across its retries)."""
    return uuid.uuid4().hex


def retrying(
    url: str,
    attempt: Callable[[bool], T],
    *,
    seconds: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``attempt(retry)`` until it returns, retried on ``StoreUnavailableError`` with
    exponential backoff for at most ``seconds`` (``RETRY_SECONDS``); ``retry`` is True
    from the second call on, so that a write can first look for its own earlier commit."""
    limit = RETRY_SECONDS if seconds is None else seconds
    started = time.monotonic()
    delay = FIRST_DELAY
    tries = 0
    while True:
        try:
            return attempt(tries > 0)
        except StoreUnavailableError as error:
            tries += 1
            waited = time.monotonic() - started
            if waited + delay > limit:
                raise StoreUnavailableError(
                    f"the store {url} stayed unreachable for {waited:.0f} s ({tries} "
                    f"tries): {error}. Check that it is up; runs that were writing to it "
                    "stay resumable (`riverbed runs recover`)",
                    url=url,
                ) from error
            if tries == 1:
                logger.warning("store %s unreachable (%s): retrying for %g s", url, error, limit)
            sleep(delay)
            delay = min(delay * 2, MAX_DELAY)
