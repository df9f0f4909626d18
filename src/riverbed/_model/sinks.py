"""The sink protocol: an object that takes events a batch at a time."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Protocol, runtime_checkable

__all__ = ["Sink"]


@runtime_checkable
class Sink(Protocol):
    """A connector's output. ``write_batch`` may be a coroutine function; ``close``, if the
    object has one, is called once when the run ends (also after errors).

    >>> class Printer:
    ...     def write_batch(self, events): print(*events, sep="\\n")
    """

    def write_batch(self, events: list[Any]) -> None | Awaitable[None]:
        """Write one batch of events, in order."""
        ...


def is_sink_object(obj: Any) -> bool:
    """True if ``obj`` keeps the sink protocol."""
    return callable(getattr(obj, "write_batch", None))
