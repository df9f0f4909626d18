"""What a run's source readers hear of it beyond ``read``: two optional reader methods,
runner-neutral (every runner calls them the same way, through ``StreamRun``).

- ``committed(position)``: a checkpoint that holds ``position`` for the reader's partition
  has been committed to the store. A broker source acknowledges there what it read up to
  that position (XACK, a JetStream ack, a RabbitMQ ack): acking only then means a crash
  never loses what the store does not have, and a resume drops what a checkpoint covers.
  It may be a coroutine function; it runs on the runner's event loop, possibly while a
  ``read`` of the same reader waits. A reader that has it is closed only after the run's
  last checkpoint, so that it hears of that one too.
- ``rejected()``: what the reader could not decode since it was last asked, as
  ``(raw, error)`` pairs. The runner asks after every batch and stores each as a dead
  letter of the source's stage (the raw bytes as the event): an undecodable message never
  crashes a run, and is never lost.

A runner registers each reader it opens (``register``) and forgets it when closed
(``forget``); ``StreamRun.commit_checkpoint`` calls ``committed`` after each commit.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

__all__ = ["Readers"]

Hook = Callable[[Any], Any]
"""A reader's ``committed``: takes a position, may return an awaitable."""


class Readers:
    """The ``committed`` hooks of a run's open readers, by (source, partition)."""

    def __init__(self) -> None:
        self._hooks: dict[tuple[str, str], Hook] = {}
        self._later: dict[tuple[str, str], Any] = {}

    def register(self, source: str, partition: str, reader: Any) -> bool:
        """Remember ``reader``'s ``committed``, if it has one; True if it has."""
        hook = getattr(reader, "committed", None)
        if not callable(hook):
            return False
        self._hooks[source, partition] = hook
        return True

    def forget(self, source: str, partition: str) -> None:
        """The reader of ``partition`` is closed: it hears of no more commits."""
        self._hooks.pop((source, partition), None)

    def close_later(self, source: str, partition: str, reader: Any) -> None:
        """``reader`` has ended, but is closed only by ``close_all``, after the run's last
        checkpoint (which it hears of)."""
        self._later[source, partition] = reader

    async def close_all(self) -> None:
        """Close the readers kept open by ``close_later``; the first that fails to close
        raises ``HookFailedError`` once every one was closed."""
        failed: HookFailedError | None = None
        for (source, partition), reader in list(self._later.items()):
            self.forget(source, partition)
            del self._later[source, partition]
            try:
                await close(reader)
            except Exception as error:  # noqa: BLE001 - the source's failure: named by the caller
                failed = failed or HookFailedError(source, partition, error)
        if failed is not None:
            raise failed

    async def committed(self, positions: dict[str, dict[str, Any]]) -> None:
        """Tell every registered reader its position in a committed checkpoint. A hook
        that raises is re-raised as ``HookFailedError`` naming its source and partition."""
        for (source, partition), hook in list(self._hooks.items()):
            where = positions.get(source, {})
            if partition not in where:
                continue
            try:
                done = hook(where[partition])
                if inspect.isawaitable(done):
                    await done
            except Exception as error:
                raise HookFailedError(source, partition, error) from error


class HookFailedError(Exception):
    """A reader's ``committed`` raised (carried to ``StreamRun``, which names it)."""

    def __init__(self, source: str, partition: str, error: Exception) -> None:
        super().__init__(source, partition, error)
        self.source = source
        self.partition = partition
        self.error = error


async def close(reader: Any) -> None:
    """Close ``reader`` (its ``close`` may be a coroutine function)."""
    closing = reader.close()
    if inspect.isawaitable(closing):
        await closing


def take_rejected(reader: Any) -> list[tuple[Any, BaseException]]:
    """What ``reader`` could not decode since last asked (none if it cannot say)."""
    rejected = getattr(reader, "rejected", None)
    if not callable(rejected):
        return []
    return list(rejected())
