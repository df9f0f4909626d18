"""What a stage does when its function raises: retry, then an action.

A stage's own policy beats the flow's, which beats the default (no retries, STOP).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from riverbed._records.kinds import OnError

__all__ = ["OnError", "Retry"]


@dataclass(frozen=True)
class Retry:
    """Retry a failing call with exponential backoff and jitter.

    ``attempts`` counts every call, the first included: ``Retry(attempts=3)`` calls at most
    three times. Only exceptions that are instances of ``on`` are retried; others go straight
    to the stage's ``on_error`` action.

    >>> Retry(attempts=4, backoff=0.1).delay(2, random.Random(0)) <= 0.2
    True
    """

    attempts: int = 3
    backoff: float = 0.1
    """Seconds before the second attempt; doubles (``multiplier``) for each one after."""
    multiplier: float = 2.0
    max_backoff: float = 30.0
    jitter: bool = True
    """Randomize each delay in [delay/2, delay] so that many failing calls don't retry in step."""
    on: tuple[type[BaseException], ...] = field(default=(Exception,))

    __module__ = "riverbed"

    def __post_init__(self) -> None:
        if not isinstance(self.attempts, int) or self.attempts < 1:
            raise ValueError(f"Retry(attempts={self.attempts!r}): attempts must be an int >= 1")
        if self.backoff < 0 or self.max_backoff < 0:
            raise ValueError("Retry: backoff and max_backoff must be >= 0 seconds")
        if self.multiplier < 1:
            raise ValueError(f"Retry(multiplier={self.multiplier!r}): must be >= 1")
        on = self.on if isinstance(self.on, tuple) else (self.on,)
        for kind in on:
            if not (isinstance(kind, type) and issubclass(kind, BaseException)):
                raise TypeError(f"Retry(on=...): {kind!r} is not an exception class")
        object.__setattr__(self, "on", on)

    def retryable(self, error: BaseException) -> bool:
        """True if ``error`` is of a type this policy retries."""
        return isinstance(error, self.on)

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        base = min(self.max_backoff, self.backoff * self.multiplier ** (attempt - 1))
        return rng.uniform(base / 2, base) if self.jitter else base

    def to_json(self) -> dict[str, Any]:
        """The policy as JSON-able data (exception types by import reference)."""
        return {
            "attempts": self.attempts,
            "backoff": self.backoff,
            "multiplier": self.multiplier,
            "max_backoff": self.max_backoff,
            "jitter": self.jitter,
            "on": [f"{t.__module__}:{t.__qualname__}" for t in self.on],
        }


NO_RETRY = Retry(attempts=1)


@dataclass(frozen=True)
class Policy:
    """The resolved failure policy of one stage."""

    on_error: OnError = OnError.STOP
    retry: Retry = NO_RETRY
    timeout: float | None = None


def resolve(
    stage_on_error: OnError | None,
    stage_retry: Retry | None,
    flow_on_error: OnError | None,
    flow_retry: Retry | None,
    timeout: float | None,
) -> Policy:
    """The stage's setting if it has one, else the flow's, else the default."""
    on_error = stage_on_error or flow_on_error or OnError.STOP
    retry = stage_retry or flow_retry or NO_RETRY
    return Policy(on_error=on_error, retry=retry, timeout=timeout)
