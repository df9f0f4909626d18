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

    def write_batch(self, events: list[Any]) -> Awaitable[None] | None:
        """Write one batch of events, in order."""
        ...


Sink.__module__ = "riverbed"  # set after the body, where a Protocol would count it a member


@runtime_checkable
class TransactionalSink(Protocol):
    """A sink whose writes commit with the run's checkpoints: exactly-once output.

    Between checkpoints, ``write_batch`` only buffers. At a checkpoint, ``prepare`` hands
    over what was buffered since the last one (a picklable value, stored in the
    checkpoint) and starts a new buffer; once the checkpoint is committed, ``commit`` writes
    it. ``commit`` must be idempotent per ``key`` (unique per run, stage and checkpoint):
    after a crash the run resumes from its last checkpoint and commits that checkpoint's
    writes again, which may have been committed once already (record the key in the same
    transaction as the writes, and do nothing if it is there). Without checkpoints, what is
    buffered is prepared and committed once when the run ends.
    """

    def write_batch(self, events: list[Any]) -> Awaitable[None] | None:
        """Buffer one batch of events."""
        ...

    def prepare(self) -> Any:
        """What was buffered since the last checkpoint; the buffer starts anew."""
        ...

    def commit(self, key: str, prepared: Any) -> None:
        """Write ``prepared`` durably, once per ``key`` however often called."""
        ...


TransactionalSink.__module__ = "riverbed"


def is_sink_object(obj: Any) -> bool:
    """True if ``obj`` keeps the sink protocol."""
    return callable(getattr(obj, "write_batch", None))


class Capture:
    """A sink that keeps every event it receives, in order; for tests and notebooks.

    A run's ``RunResult.outputs`` maps the stage name of each capturing sink to what it
    received in that run.

    >>> from riverbed.testing import Capture
    >>> seen = Capture()
    >>> seen.write_batch([1, 2]); seen.items
    [1, 2]
    """

    __module__ = "riverbed.testing"

    def __init__(self) -> None:
        self.items: list[Any] = []

    def write_batch(self, events: list[Any]) -> None:
        """Keep ``events``."""
        self.items.extend(events)

    def __repr__(self) -> str:
        return f"Capture({len(self.items)} events)"


def is_transactional_sink(stage: Any) -> bool:
    """True for a sink stage whose target keeps the ``TransactionalSink`` protocol."""
    target = getattr(stage, "fn", None)
    return bool(getattr(stage, "is_sink", False)) and all(
        callable(getattr(target, name, None)) for name in ("write_batch", "prepare", "commit")
    )
